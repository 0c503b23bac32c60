"""Replies on PostgreSQL: `PostgresStore`'s replies, poll votes and source cursors, the
responder side of replies (states, clusters, reply events, purge) and the audit log.

Contract:
- Statements and row decoding live in `replies_sql` and `responders_sql`; this module runs
  them, in autocommit except where a change and its audit row must commit together: a
  reply's state change and a purge each share one transaction with their audit row, and
  `append_audit` has one of its own. The row is appended after the audit lock
  (`postgres_base.append_audit_in_transaction`), so the hash chain never forks.
- An insert that meets an earlier reply reads it back in a fresh snapshot, which sees the
  earlier reply's commit.
Replies are the inbound half of the service: they read the alert and delivery tables only
to link a reply to the alert it answers, hence their own module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from adapters.store import replies_sql, responders_sql, schema
from adapters.store.postgres_base import (
    PostgresBase,
    append_audit_in_transaction,
    row_count,
    translated,
)
from broadcaster.audit import AuditEntry, AuditRecord
from broadcaster.errors import StoreError
from broadcaster.ports import (
    NewReply,
    ReplyEvent,
    ReplyInsertResult,
    ReplySource,
    ReplyState,
    StoredReply,
)


class PostgresReplies(PostgresBase):
    """Replies, poll votes, cursors, responders and the audit log; a mixin of `PostgresStore`."""

    async def insert_reply(self, new: NewReply) -> ReplyInsertResult:
        self._check_open()
        params = replies_sql.insert_values(new)
        with translated("insert_reply"):
            row = await self._pool.fetchrow(replies_sql.POSTGRES_INSERT, *params)
            if row is not None:
                return ReplyInsertResult(replies_sql.postgres_reply(row), True)
            # A fresh snapshot after the conflict: it sees the committed earlier reply.
            row = await self._pool.fetchrow(replies_sql.POSTGRES_BY_KEY, params[0], params[1])
        if row is None:
            raise StoreError("postgres insert_reply: conflicting reply vanished")
        return ReplyInsertResult(replies_sql.postgres_reply(row), False)

    async def find_reply(self, source: ReplySource, external_id: str) -> StoredReply | None:
        self._check_open()
        with translated("find_reply"):
            row = await self._pool.fetchrow(
                replies_sql.POSTGRES_BY_KEY, ReplySource(source).value, external_id
            )
        return None if row is None else replies_sql.postgres_reply(row)

    async def find_reply_and_sms_alert(
        self, source: ReplySource, external_id: str, phone: str | None
    ) -> tuple[StoredReply | None, str | None]:
        self._check_open()
        key = (phone, ReplySource(source).value, external_id)
        with translated("find_reply_and_sms_alert"):
            row = await self._pool.fetchrow(replies_sql.POSTGRES_LOOKUP, *key)
        assert row is not None  # the one-row LEFT JOIN always yields a row
        return replies_sql.lookup_result(row, replies_sql.postgres_reply)

    async def get_reply(self, reply_id: int) -> StoredReply | None:
        self._check_open()
        with translated("get_reply"):
            row = await self._pool.fetchrow(replies_sql.POSTGRES_BY_ID, reply_id)
        return None if row is None else replies_sql.postgres_reply(row)

    async def get_replies(self, reply_ids: Sequence[int]) -> list[StoredReply]:
        self._check_open()
        if not reply_ids:
            return []
        with translated("get_replies"):
            rows = await self._pool.fetch(replies_sql.POSTGRES_BY_IDS, [int(i) for i in reply_ids])
        return [replies_sql.postgres_reply(row) for row in rows]

    async def list_replies(
        self,
        *,
        limit: int,
        category: str | None = None,
        since: datetime | None = None,
        state: ReplyState | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        cluster: int | None = None,
        alert: str | None = None,
    ) -> list[StoredReply]:
        self._check_open()
        if limit <= 0:
            return []
        sql, params = replies_sql.list_query(
            "postgres",
            limit=limit,
            category=category,
            since=since,
            state=state,
            after_id=after_id,
            before_id=before_id,
            cluster=cluster,
            alert=alert,
        )
        with translated("list_replies"):
            rows = await self._pool.fetch(sql, *params)
        return [replies_sql.postgres_reply(row) for row in rows]

    async def last_sms_alert(self, phone: str) -> str | None:
        self._check_open()
        with translated("last_sms_alert"):
            value = await self._pool.fetchval(replies_sql.POSTGRES_LAST_SMS_ALERT, phone)
        return None if value is None else str(value)

    async def alert_for_x_posts(self, post_ids: Sequence[str]) -> str | None:
        self._check_open()
        ids = [p for p in dict.fromkeys(post_ids) if p]
        if not ids:
            return None
        with translated("alert_for_x_posts"):
            rows = await self._pool.fetch(replies_sql.POSTGRES_X_POSTS, ids)
        return replies_sql.first_match(ids, rows)

    async def get_cursor(self, name: str) -> str | None:
        self._check_open()
        with translated("get_cursor"):
            value = await self._pool.fetchval(replies_sql.POSTGRES_CURSOR, name)
        return None if value is None else str(value)

    async def set_cursor(self, name: str, value: str, at: datetime) -> None:
        self._check_open()
        with translated("set_cursor"):
            await self._pool.execute(
                replies_sql.POSTGRES_SET_CURSOR, name, value, schema.as_utc(at)
            )

    async def record_poll_vote(
        self, alert_id: str, voter: str, option_key: str, reply_id: int | None, at: datetime
    ) -> bool:
        self._check_open()
        with translated("record_poll_vote"):
            status = await self._pool.execute(
                replies_sql.POSTGRES_VOTE, alert_id, voter, option_key, reply_id, schema.as_utc(at)
            )
        return row_count(status) > 0

    async def poll_tally(self, alert_id: str) -> dict[str, int]:
        self._check_open()
        with translated("poll_tally"):
            rows = await self._pool.fetch(replies_sql.POSTGRES_TALLY, alert_id)
        return replies_sql.tally(rows)

    # --- Responders and the audit log (adapters.store.responders_sql) -----------------------

    async def set_reply_state(
        self, reply_id: int, state: ReplyState, by: str, at: datetime, audit: AuditEntry
    ) -> StoredReply | None:
        self._check_open()
        with translated("set_reply_state"):
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    responders_sql.POSTGRES_SET_STATE,
                    ReplyState(state).value,
                    by,
                    schema.as_utc(at),
                    reply_id,
                )
                if row is None:
                    return None
                await append_audit_in_transaction(conn, audit)
        return replies_sql.postgres_reply(row)

    async def set_reply_cluster(self, reply_id: int, cluster_id: int) -> None:
        self._check_open()
        with translated("set_reply_cluster"):
            await self._pool.execute(responders_sql.POSTGRES_SET_CLUSTER, cluster_id, reply_id)

    async def cluster_counts(self, cluster_ids: Sequence[int]) -> dict[int, int]:
        self._check_open()
        ids = responders_sql.cluster_ids(cluster_ids)
        if not ids:
            return {}
        with translated("cluster_counts"):
            rows = await self._pool.fetch(responders_sql.POSTGRES_CLUSTER_COUNTS, ids)
        return responders_sql.cluster_counts(rows)

    async def reply_events_after(self, seq: int, limit: int) -> list[ReplyEvent]:
        self._check_open()
        with translated("reply_events_after"):
            rows = await self._pool.fetch(responders_sql.POSTGRES_EVENTS_AFTER, seq, limit)
        return [responders_sql.event_from_row(r, r[3]) for r in rows]

    async def last_reply_event_seq(self) -> int:
        self._check_open()
        with translated("last_reply_event_seq"):
            value = await self._pool.fetchval(responders_sql.POSTGRES_LAST_EVENT)
        return int(value)

    async def purge_replies(
        self, before: datetime, audit: Callable[[int], AuditEntry | None]
    ) -> int:
        self._check_open()
        cutoff = schema.as_utc(before)
        with translated("purge_replies"):
            async with self._pool.acquire() as conn, conn.transaction():
                for statement in responders_sql.POSTGRES_PURGE:
                    await conn.execute(statement, cutoff)
                count = row_count(await conn.execute(responders_sql.POSTGRES_PURGE_REPLIES, cutoff))
                entry = audit(count)
                if entry is not None:
                    await append_audit_in_transaction(conn, entry)
        return count

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        self._check_open()
        with translated("append_audit"):
            async with self._pool.acquire() as conn, conn.transaction():
                return await append_audit_in_transaction(conn, entry)

    async def audit_rows(self, after_seq: int, limit: int) -> list[AuditRecord]:
        self._check_open()
        with translated("audit_rows"):
            rows = await self._pool.fetch(responders_sql.POSTGRES_AUDIT_AFTER, after_seq, limit)
        return [responders_sql.audit_from_row(r, r[1]) for r in rows]
