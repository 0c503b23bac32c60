"""Replies on SQLite: `SqliteStore`'s replies, poll votes and source cursors, the responder
side of replies (states, clusters, reply events, purge) and the audit log.

Contract:
- Statements and the writer-thread functions are in `replies_sql` and `responders_sql`;
  this module queues them. Every write is a writer job, so a change and its audit row (a
  reply's state change, a purge) commit in the same batch transaction; every read goes
  through `_fetch`.
Replies are the inbound half of the service: they read the alert and delivery tables only
to link a reply to the alert it answers, hence their own module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime

from adapters.store import replies_sql, responders_sql, schema
from adapters.store.sqlite_base import SqliteBase
from broadcaster.audit import AuditEntry, AuditRecord
from broadcaster.ports import (
    NewReply,
    ReplyEvent,
    ReplyInsertResult,
    ReplySource,
    ReplyState,
    StoredReply,
)


class SqliteReplies(SqliteBase):
    """Replies, poll votes, cursors, responders and the audit log; a mixin of `SqliteStore`."""

    async def insert_reply(self, new: NewReply) -> ReplyInsertResult:
        params = replies_sql.insert_values(new)
        stored, created = await self._run_job(lambda conn: replies_sql.sqlite_insert(conn, params))
        return ReplyInsertResult(stored, created)

    async def find_reply(self, source: ReplySource, external_id: str) -> StoredReply | None:
        key = (ReplySource(source).value, external_id)
        rows = await self._fetch(replies_sql.SQLITE_BY_KEY, key)
        return replies_sql.sqlite_reply(rows[0]) if rows else None

    async def find_reply_and_sms_alert(
        self, source: ReplySource, external_id: str, phone: str | None
    ) -> tuple[StoredReply | None, str | None]:
        key = (phone, ReplySource(source).value, external_id)
        rows = await self._fetch(replies_sql.SQLITE_LOOKUP, key)
        return replies_sql.lookup_result(rows[0], replies_sql.sqlite_reply)

    async def get_reply(self, reply_id: int) -> StoredReply | None:
        rows = await self._fetch(replies_sql.SQLITE_BY_ID, (reply_id,))
        return replies_sql.sqlite_reply(rows[0]) if rows else None

    async def get_replies(self, reply_ids: Sequence[int]) -> list[StoredReply]:
        if not reply_ids:
            return []
        ids = json.dumps([int(i) for i in reply_ids])
        rows = await self._fetch(replies_sql.SQLITE_BY_IDS, (ids,))
        return [replies_sql.sqlite_reply(row) for row in rows]

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
        if limit <= 0:
            return []
        sql, params = replies_sql.list_query(
            "sqlite",
            limit=limit,
            category=category,
            since=since,
            state=state,
            after_id=after_id,
            before_id=before_id,
            cluster=cluster,
            alert=alert,
        )
        return [replies_sql.sqlite_reply(row) for row in await self._fetch(sql, params)]

    async def last_sms_alert(self, phone: str) -> str | None:
        rows = await self._fetch(replies_sql.SQLITE_LAST_SMS_ALERT, (phone,))
        return str(rows[0][0]) if rows else None

    async def alert_for_x_posts(self, post_ids: Sequence[str]) -> str | None:
        ids = [p for p in dict.fromkeys(post_ids) if p]
        if not ids:
            return None
        marks = ", ".join("?" * len(ids))
        sql = (
            "SELECT provider_ref, alert_id FROM deliveries "  # noqa: S608 - marks only
            f"WHERE channel = 'x' AND provider_ref IN ({marks})"
        )
        return replies_sql.first_match(ids, await self._fetch(sql, ids))

    async def get_cursor(self, name: str) -> str | None:
        rows = await self._fetch(replies_sql.SQLITE_CURSOR, (name,))
        return str(rows[0][0]) if rows else None

    async def set_cursor(self, name: str, value: str, at: datetime) -> None:
        at_text = schema.utc_text(at)
        await self._run_job(lambda conn: replies_sql.sqlite_set_cursor(conn, name, value, at_text))

    async def record_poll_vote(
        self, alert_id: str, voter: str, option_key: str, reply_id: int | None, at: datetime
    ) -> bool:
        values = (alert_id, voter, option_key, reply_id, schema.utc_text(at))
        applied: bool = await self._run_job(lambda conn: replies_sql.sqlite_vote(conn, values))
        return applied

    async def poll_tally(self, alert_id: str) -> dict[str, int]:
        return replies_sql.tally(await self._fetch(replies_sql.SQLITE_TALLY, (alert_id,)))

    # --- responders and the audit log (adapters.store.responders_sql) -----------------------

    async def set_reply_state(
        self, reply_id: int, state: ReplyState, by: str, at: datetime, audit: AuditEntry
    ) -> StoredReply | None:
        stored: StoredReply | None = await self._run_job(
            lambda conn: responders_sql.sqlite_set_state(conn, reply_id, state, by, at, audit)
        )
        return stored

    async def set_reply_cluster(self, reply_id: int, cluster_id: int) -> None:
        await self._run_job(
            lambda conn: responders_sql.sqlite_set_cluster(conn, reply_id, cluster_id)
        )

    async def cluster_counts(self, cluster_ids: Sequence[int]) -> dict[int, int]:
        ids = responders_sql.cluster_ids(cluster_ids)
        if not ids:
            return {}
        sql = responders_sql.sqlite_cluster_counts_query(len(ids))
        return responders_sql.cluster_counts(await self._fetch(sql, ids))

    async def reply_events_after(self, seq: int, limit: int) -> list[ReplyEvent]:
        rows = await self._fetch(responders_sql.SQLITE_EVENTS_AFTER, (seq, limit))
        return [responders_sql.event_from_row(r, datetime.fromisoformat(r[3])) for r in rows]

    async def last_reply_event_seq(self) -> int:
        rows = await self._fetch(responders_sql.SQLITE_LAST_EVENT, ())
        return int(rows[0][0])

    async def purge_replies(
        self, before: datetime, audit: Callable[[int], AuditEntry | None]
    ) -> int:
        count: int = await self._run_job(
            lambda conn: responders_sql.sqlite_purge(conn, before, audit)
        )
        return count

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        record: AuditRecord = await self._run_job(
            lambda conn: responders_sql.sqlite_append_audit(conn, entry)
        )
        return record

    async def audit_rows(self, after_seq: int, limit: int) -> list[AuditRecord]:
        rows = await self._fetch(responders_sql.SQLITE_AUDIT_AFTER, (after_seq, limit))
        return [responders_sql.audit_from_row(r, datetime.fromisoformat(r[1])) for r in rows]
