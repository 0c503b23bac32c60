"""`SqliteStore`: the `Store` port on SQLite (aiosqlite), with group commit for alert inserts.

Contract:
- `await SqliteStore.open(path)` opens (creating if needed) the database file; ":memory:"
  gives a private in-memory database for tests. Call `migrate()` before use.
- `insert_alert` returns only after the transaction holding the alert has committed.
  Callers are batched: one writer task takes every insert waiting (up to `max_batch`),
  runs them in one transaction and commits once, so N concurrent callers cost one commit,
  not N. A row the database rejects fails only its own caller; a failed BEGIN/COMMIT fails
  every caller of that batch. A caller cancelled while waiting may still have its alert
  committed; retrying with the same idempotency key then returns it with created=False.
- Reads go to a second, read-only connection (file databases), so they neither wait for a
  batch to commit nor see a batch that has not committed. Reads issued while others run
  are grouped into one trip to the reader's thread, each still its own statement failing
  alone. ":memory:" cannot be shared between connections, so there reads use the writer
  connection between batches.
- Every sqlite3 error leaves as `StoreError` (see `_translated`); using a closed store
  raises `StoreError`. `close()` finishes every insert already queued, then closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from adapters.store import (
    approval_sql,
    replies_sql,
    responders_sql,
    schema,
    sqlite_outbox,
    subscribers_sql,
    tokens_sql,
)
from adapters.store.sqlite_reads import GroupedReader
from alerts.models import format_cap_time
from broadcaster.audit import AuditEntry, AuditRecord
from broadcaster.errors import StoreError
from broadcaster.ports import (
    AlertEvent,
    AlertEventKind,
    AlertState,
    ApiToken,
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryState,
    InsertResult,
    NewAlert,
    NewReply,
    OutboxDepth,
    PlannedDelivery,
    ReplyEvent,
    ReplyInsertResult,
    ReplySource,
    ReplyState,
    Role,
    StoredAlert,
    StoredReply,
    Subscriber,
)

# Composed from constant column lists only, never from input, so S608 does not apply.
_COLS = schema.ALERT_READ_COLUMNS
_INSERT_ALERT = (
    f"INSERT INTO alerts ({schema.ALERT_INSERT_COLUMNS}) "  # noqa: S608
    f"VALUES ({', '.join('?' * schema.ALERT_INSERT_COUNT)}) ON CONFLICT DO NOTHING"
)
_ALERT_BY_ID = f"SELECT {_COLS} FROM alerts WHERE id = ?"  # noqa: S608
_ALERT_BY_KEY = f"SELECT {_COLS} FROM alerts WHERE idempotency_key = ?"  # noqa: S608
_ALERT_BY_CAP = (
    f"SELECT {_COLS} FROM alerts "  # noqa: S608
    "WHERE sender = ? AND identifier = ? AND sent_text = ?"
)
_ALERTS_NEWEST = f"SELECT {_COLS} FROM alerts ORDER BY seq DESC LIMIT ?"  # noqa: S608
_ALERTS_BEFORE = f"SELECT {_COLS} FROM alerts WHERE seq < ? ORDER BY seq DESC LIMIT ?"  # noqa: S608
_EVENTS_AFTER = (
    "SELECT seq, alert_id, kind, at FROM alert_events WHERE seq > ? ORDER BY seq LIMIT ?"
)
# The partial index alerts_public holds exactly the accepted non-Cancel alerts.
_PUBLIC_ALERTS = (
    f"SELECT {_COLS} FROM alerts WHERE state = 'accepted' AND msg_type <> 'Cancel' "  # noqa: S608
    "AND (expires IS NULL OR expires > ?) ORDER BY seq DESC LIMIT ?"
)
_SQL_API_INSERT = (
    "INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at, revoked_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SQL_API_BY_HASH = (
    "SELECT id, name, role, token_hash, created_at, expires_at, revoked_at "
    "FROM api_tokens WHERE token_hash = ?"
)
# Errors that belong to one row (constraint, bad value), as opposed to the database
# (I/O, lock, corruption) which fail the whole batch.
# ProgrammingError covers a value of a type sqlite cannot bind.
_ROW_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The one place sqlite3 exceptions become StoreError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite {action} failed: {exc}") from exc


@dataclass(slots=True)
class _Pending:
    """An alert insert waiting for the writer."""

    new: NewAlert
    params: list[object]
    future: asyncio.Future[InsertResult]


@dataclass(slots=True)
class _Job:
    """Any other write waiting for the writer: `work` runs on the writer's thread inside the
    batch transaction, under a savepoint of its own, so a failing job fails only itself."""

    work: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Finish:
    """Delivery outcomes waiting for the writer. Every worker records its own outcome, so
    these are the most frequent writes: a batch runs all of them as one executemany, with no
    savepoint each (they fail only with the database, and then fail the batch)."""

    rows: list[tuple[Any, ...]]
    future: asyncio.Future[Any]


class SqliteStore:
    """The Store port on one SQLite file. Use `await SqliteStore.open(path)`."""

    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection | None, max_batch: int
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._max_batch = max_batch
        # Held by each write transaction, so migrate/create_token (and reads on ":memory:")
        # never interleave with a batch on the shared writer connection.
        self._write_lock = asyncio.Lock()
        # Unbounded on purpose: each caller waits on its future, so the queue never holds
        # more than the number of concurrent callers; their own concurrency is the limit.
        self._queue: asyncio.Queue[_Pending | _Job | _Finish | None] = asyncio.Queue()
        self._closed = False
        # Concurrent reads share one trip to the reader's thread, as writes share a batch.
        self._reads = GroupedReader(reader) if reader is not None else None
        self._writer_task = asyncio.get_running_loop().create_task(
            self._run_writer(), name="sqlite-store-writer"
        )

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000, max_batch: int = 500
    ) -> SqliteStore:
        """Open the database at `path` (":memory:" for a private in-memory one)."""
        target = os.fspath(path)
        connections: list[aiosqlite.Connection] = []
        try:
            with _translated("open"):
                writer = await _connect(target)
                connections.append(writer)
                await _configure(writer, busy_timeout_ms, read_only=False)
                reader = None
                if target != ":memory:":
                    reader = await _connect(target)
                    connections.append(reader)
                    await _configure(reader, busy_timeout_ms, read_only=True)
        except BaseException:
            for conn in connections:
                await conn.close()
            raise
        return cls(writer, reader, max_batch)

    async def migrate(self) -> int:
        """Apply missing migrations, each in its own BEGIN IMMEDIATE transaction: the
        write lock serialises processes starting together, and each step re-checks
        whether another process applied it meanwhile."""
        self._check_open()
        async with self._write_lock, self._transaction("migrate"):
            await self._writer.execute(schema.SQLITE_BOOTSTRAP)
            rows = await self._writer.execute_fetchall("SELECT version FROM schema_migrations")
            applied = {int(row[0]) for row in rows}
        for step in schema.MIGRATIONS:
            if step.version in applied:
                continue
            async with self._write_lock, self._transaction(f"migration {step.version}"):
                again = await self._writer.execute_fetchall(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (step.version,)
                )
                if again:
                    continue
                for statement in schema.sqlite_statements(step.sqlite_sql):
                    await self._writer.execute(statement)
                await self._writer.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (step.version, step.description, schema.utc_text(datetime.now(UTC))),
                )
        rows = await self._fetch("SELECT MAX(version) FROM schema_migrations", ())
        return int(rows[0][0])

    async def close(self) -> None:
        """Commit every queued insert, stop the writer, close the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if not self._writer_task.done():  # done early only if it was cancelled
            await self._writer_task
        with _translated("close"):
            await self._writer.close()
            if self._reader is not None:
                await self._reader.close()

    async def ping(self) -> None:
        await self._fetch("SELECT 1", ())

    async def schema_version(self) -> int:
        rows = await self._fetch("SELECT MAX(version) FROM schema_migrations", ())
        return int(rows[0][0] or 0)

    async def insert_alert(self, new: NewAlert) -> InsertResult:
        self._check_open()
        if self._writer_task.done():
            raise StoreError("sqlite writer has stopped")
        try:
            params = schema.alert_insert_values(new)
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"cannot encode alert {new.id}: {exc}") from exc
        # Times become UTC text here, in the caller, to keep the writer's loop lean.
        params = [schema.utc_text(v) if isinstance(v, datetime) else v for v in params]
        future: asyncio.Future[InsertResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(new, params, future))
        return await future

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        rows = await self._fetch(_ALERT_BY_ID, (alert_id,))
        return _alert(rows[0]) if rows else None

    async def get_alerts(self, alert_ids: Sequence[str]) -> list[StoredAlert]:
        found: list[StoredAlert] = []
        for start in range(0, len(alert_ids), 500):  # well under SQLite's parameter limit
            chunk = list(alert_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT {_COLS} FROM alerts WHERE id IN ({marks})"  # noqa: S608
            found.extend(_alert(row) for row in await self._fetch(sql, tuple(chunk)))
        return found

    async def list_alerts(self, *, limit: int, before_seq: int | None = None) -> list[StoredAlert]:
        if before_seq is None:
            rows = await self._fetch(_ALERTS_NEWEST, (limit,))
        else:
            rows = await self._fetch(_ALERTS_BEFORE, (before_seq, limit))
        return [_alert(row) for row in rows]

    async def count_alerts(self) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM alerts", ())
        return int(rows[0][0])

    async def events_after(self, seq: int, limit: int) -> list[AlertEvent]:
        rows = await self._fetch(_EVENTS_AFTER, (seq, limit))
        return [
            AlertEvent(
                int(r[0]),
                str(r[1]),
                AlertEventKind(r[2]),
                schema.as_utc(datetime.fromisoformat(r[3])),
            )
            for r in rows
        ]

    async def last_event_seq(self) -> int:
        rows = await self._fetch("SELECT COALESCE(MAX(seq), 0) FROM alert_events", ())
        return int(rows[0][0])

    async def public_alerts(self, now: datetime, limit: int) -> list[StoredAlert]:
        rows = await self._fetch(_PUBLIC_ALERTS, (schema.utc_text(now), limit))
        return [_alert(row) for row in rows]

    async def successor_of(self, alert_id: str) -> str | None:
        rows = await self._fetch("SELECT superseded_by FROM alerts WHERE id = ?", (alert_id,))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    # --- approval (adapters.store.approval_sql) -----------------------------------------

    async def approve_alert(
        self,
        alert_id: str,
        deliveries: Sequence[PlannedDelivery],
        priority: int,
        *,
        by: str,
        reason: str,
        at: datetime,
        audit: AuditEntry,
    ) -> StoredAlert | None:
        planned = tuple(deliveries)
        stored: StoredAlert | None = await self._run_job(
            lambda conn: approval_sql.sqlite_approve(
                conn, alert_id, planned, priority, by, reason, at, audit
            )
        )
        return stored

    async def reject_alert(
        self,
        alert_id: str,
        state: AlertState,
        *,
        by: str,
        reason: str,
        at: datetime,
        audit: AuditEntry,
    ) -> StoredAlert | None:
        approval_sql.check_refusal(state)
        stored: StoredAlert | None = await self._run_job(
            lambda conn: approval_sql.sqlite_reject(conn, alert_id, state, by, reason, at, audit)
        )
        return stored

    async def pending_alerts(self, received_before: datetime, limit: int) -> list[StoredAlert]:
        rows = await self._fetch(
            approval_sql.SQLITE_PENDING, (schema.utc_text(received_before), limit)
        )
        return [approval_sql.sqlite_alert(row) for row in rows]

    async def create_token(self, token: ApiToken) -> None:
        self._check_open()
        values = (
            token.id,
            token.name,
            Role(token.role).value,
            token.token_hash,
            schema.utc_text(token.created_at),
            schema.utc_text(token.expires_at),
            schema.utc_text(token.revoked_at),
        )
        # One statement in autocommit mode is its own committed transaction.
        async with self._write_lock:
            with _translated("create_token"):
                await self._writer.execute(_SQL_API_INSERT, values)

    async def find_token(self, token_hash: str) -> ApiToken | None:
        rows = await self._fetch(_SQL_API_BY_HASH, (token_hash,))
        if not rows:
            return None
        ident, name, role, stored_hash, created, expires, revoked = rows[0]
        parse = schema.parse_utc_text
        created_at = datetime.fromisoformat(created)
        return ApiToken(
            ident, name, Role(role), stored_hash, created_at, parse(expires), parse(revoked)
        )

    async def list_tokens(self) -> list[ApiToken]:
        return [tokens_sql.sqlite_token(r) for r in await self._fetch(tokens_sql.SQLITE_LIST, ())]

    async def revoke_tokens(
        self,
        *,
        token_id: str | None = None,
        name: str | None = None,
        at: datetime,
        audit: Callable[[list[ApiToken]], AuditEntry | None],
    ) -> list[ApiToken]:
        tokens_sql.selector(token_id, name)
        revoked: list[ApiToken] = await self._run_job(
            lambda conn: tokens_sql.sqlite_revoke(conn, token_id, name, at, audit)
        )
        return revoked

    # --- subscribers ----------------------------------------------------------------------

    async def upsert_subscribers(
        self, subscribers: Sequence[Subscriber], now: datetime
    ) -> tuple[int, int]:
        rows = subscribers_sql.sqlite_upsert_rows(subscribers_sql.unique_by_phone(subscribers), now)
        if not rows:
            return 0, 0
        counts: tuple[int, int] = await self._run_job(
            lambda conn: subscribers_sql.sqlite_upsert(conn, rows)
        )
        return counts

    async def get_subscriber(self, phone: str) -> Subscriber | None:
        rows = await self._fetch(subscribers_sql.SQLITE_BY_PHONE, (phone,))
        return _subscriber(rows[0]) if rows else None

    async def list_subscribers(
        self, *, limit: int, after_id: int | None = None
    ) -> list[Subscriber]:
        if limit <= 0:
            return []
        rows = await self._fetch(subscribers_sql.SQLITE_PAGE, (after_id or 0, limit))
        decode = subscribers_sql.groups_decoder()
        return [_subscriber(row, decode) for row in rows]

    async def delete_subscriber(self, phone: str) -> bool:
        deleted: bool = await self._run_job(lambda conn: subscribers_sql.sqlite_delete(conn, phone))
        return deleted

    async def set_opted_out(self, phone: str, at: datetime | None) -> bool:
        at_text = schema.utc_text(at)
        found: bool = await self._run_job(
            lambda conn: subscribers_sql.sqlite_set_opted_out(conn, phone, at_text)
        )
        return found

    async def flag_subscriber(self, phone: str, reason: str | None, at: datetime | None) -> bool:
        flagged, flagged_at = subscribers_sql.flag_values(reason, at)
        at_text = schema.utc_text(flagged_at)
        found: bool = await self._run_job(
            lambda conn: subscribers_sql.sqlite_flag(conn, phone, flagged, at_text)
        )
        return found

    async def active_subscribers(self) -> list[Subscriber]:
        rows = await self._fetch(subscribers_sql.SQLITE_ACTIVE, ())
        return subscribers_sql.active_from_rows(rows)

    # --- replies ------------------------------------------------------------------------

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

    # --- outbox -------------------------------------------------------------------------

    async def claim_deliveries(
        self, channel: str, *, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        now_text, lease_text = schema.utc_text(now), schema.utc_text(lease_until)
        result: list[ClaimedDelivery] = await self._run_job(
            lambda conn: sqlite_outbox.claim(conn, channel, limit, now_text, lease_text)
        )
        return result

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        if not outcomes:
            return
        self._check_open()
        if self._writer_task.done():
            raise StoreError("sqlite writer has stopped")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Finish(sqlite_outbox.finish_params(outcomes), future))
        await future

    async def release_deliveries(self, delivery_ids: Sequence[int], now: datetime) -> None:
        if delivery_ids:
            ids, now_text = list(delivery_ids), schema.utc_text(now)
            await self._run_job(lambda conn: sqlite_outbox.release(conn, ids, now_text))

    async def extend_leases(self, delivery_ids: Sequence[int], lease_until: datetime) -> None:
        if delivery_ids:
            ids, lease_text = list(delivery_ids), schema.utc_text(lease_until)
            await self._run_job(lambda conn: sqlite_outbox.extend(conn, ids, lease_text))

    async def superseded_by(self, alert_id: str) -> list[str]:
        rows = await self._fetch(
            "SELECT id FROM alerts WHERE superseded_by = ? ORDER BY seq", (alert_id,)
        )
        return [str(row[0]) for row in rows]

    async def record_receipt(
        self, provider_ref: str, state: DeliveryState, error: str | None, at: datetime
    ) -> bool:
        values = (DeliveryState(state).value, error, schema.utc_text(at))
        applied: bool = await self._run_job(
            lambda conn: sqlite_outbox.receipt(conn, provider_ref, *values)
        )
        return applied

    async def reclaim_expired_leases(self, now: datetime) -> int:
        now_text = schema.utc_text(now)
        count: int = await self._run_job(lambda conn: sqlite_outbox.reclaim(conn, now_text))
        return count

    async def expire_deliveries(self, now: datetime) -> int:
        now_text = schema.utc_text(now)
        count: int = await self._run_job(lambda conn: sqlite_outbox.expire(conn, now_text))
        return count

    async def acquire_channel_leases(
        self, channels: Sequence[str], holder: str, seconds: float
    ) -> set[str]:
        # One process per SQLite database: it holds every channel's lease.
        return set(channels)

    async def release_channel_leases(
        self, channels: Sequence[str], holder: str, cooldown_seconds: float
    ) -> None:
        return None

    async def alert_states(self, alert_ids: Sequence[str]) -> dict[str, AlertState]:
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        rows = await self._fetch(f"SELECT id, state FROM alerts WHERE id IN ({marks})", ids)  # noqa: S608
        return {str(row[0]): AlertState(row[1]) for row in rows}

    async def count_open_deliveries(self, channels: Sequence[str] | None = None) -> int:
        if channels is None:
            rows = await self._fetch(sqlite_outbox.COUNT_OPEN, ())
        else:
            names = list(channels)
            if not names:
                return 0
            marks = ", ".join("?" * len(names))
            sql = f"{sqlite_outbox.COUNT_OPEN} AND channel IN ({marks})"
            rows = await self._fetch(sql, names)
        return int(rows[0][0])

    async def outbox_depth(self) -> list[OutboxDepth]:
        rows = await self._fetch(sqlite_outbox.OUTBOX_DEPTH, ())
        return [
            OutboxDepth(str(channel), str(state), int(count), schema.parse_utc_text(oldest))
            for channel, state, count, oldest in rows
        ]

    async def delivery_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        rows = await self._fetch(sqlite_outbox.COUNTS_BY_ALERT, (alert_id,))
        counts: dict[str, dict[str, int]] = {}
        for channel, state, count in rows:
            counts.setdefault(str(channel), {})[str(state)] = int(count)
        return counts

    async def list_deliveries(
        self, alert_id: str, *, limit: int, after_id: int | None = None
    ) -> list[DeliveryRecord]:
        rows = await self._fetch(sqlite_outbox.LIST_BY_ALERT, (alert_id, after_id or 0, limit))
        return [sqlite_outbox.record(row) for row in rows]

    # --- internals ----------------------------------------------------------------------

    async def _run_job(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `work` on the writer inside the next batch transaction; returns its result
        after that transaction committed."""
        self._check_open()
        if self._writer_task.done():
            raise StoreError("sqlite writer has stopped")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(work, future))
        return await future

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("sqlite store is closed")

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        self._check_open()
        if self._reads is not None:
            return await self._reads.fetch(sql, params)
        with _translated("read"):
            async with self._write_lock:
                return list(await self._writer.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT on the writer, ROLLBACK on any error; sqlite3 errors
        leave as StoreError. IMMEDIATE takes the write lock up front, so a transaction never
        has to upgrade a read lock, which in WAL mode fails with SQLITE_BUSY at once."""
        with _translated(action):
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield
                await self._writer.execute("COMMIT")
            except BaseException:
                # A failed COMMIT leaves the transaction open. The error that got us here is
                # the one to report; SQLite may also have rolled back already.
                with suppress(sqlite3.Error):
                    await self._writer.execute("ROLLBACK")
                raise

    async def _run_writer(self) -> None:
        """Group commit: take everything waiting, write it in one transaction, repeat.
        No deliberate delay: while one batch commits the next one accumulates."""
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                batch: list[_Pending | _Job | _Finish] = [item]
                stop = False
                while len(batch) < self._max_batch and not self._queue.empty():
                    more = self._queue.get_nowait()
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                await self._write_batch(batch)
                if stop:
                    return
        finally:
            # Only reached early on cancellation: fail whoever still waits, never hang them.
            while not self._queue.empty():
                left = self._queue.get_nowait()
                if left is not None and not left.future.done():
                    left.future.set_exception(StoreError("sqlite writer stopped"))

    async def _write_batch(self, batch: list[_Pending | _Job | _Finish]) -> None:
        """One transaction for the whole batch; resolves every future in it."""
        outcomes: list[Any]
        try:
            async with self._write_lock:
                with _translated("insert batch"):
                    # The whole batch is one call on aiosqlite's thread: a round trip through
                    # the event loop per statement would make every batch wait on a busy
                    # loop several times. `_execute` is aiosqlite's own queueing primitive,
                    # used only here.
                    outcomes = await self._writer._execute(
                        _write_batch_sync, self._writer._conn, batch
                    )
        except StoreError as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:  # noqa: BLE001 - a bug here must fail callers, not hang them
            outcomes = [StoreError(f"sqlite insert batch failed: {exc!r}")] * len(batch)
        except BaseException:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StoreError("sqlite writer cancelled"))
            raise
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)


def _write_batch_sync(
    conn: sqlite3.Connection, batch: list[_Pending | _Job | _Finish]
) -> list[Any]:
    """On the writer's thread: BEGIN IMMEDIATE, insert the batch's alerts (matching each
    caller to its row) and plan their deliveries, run the other jobs, COMMIT (ROLLBACK on any
    error, which then fails the whole batch). Returns one outcome per item, in order: a
    result, or the StoreError that fails only that item."""
    alerts = [item for item in batch if isinstance(item, _Pending)]
    conn.execute("BEGIN IMMEDIATE")
    try:
        by_alert = iter(_insert_rows(conn, alerts) if alerts else [])
        finished = [row for item in batch if isinstance(item, _Finish) for row in item.rows]
        if finished:
            sqlite_outbox.finish(conn, finished)
        outcomes: list[Any] = []
        for item in batch:
            if isinstance(item, _Pending):
                outcome = next(by_alert)
                if isinstance(outcome, InsertResult) and outcome.created:
                    sqlite_outbox.plan(conn, item.new)
                outcomes.append(outcome)
            elif isinstance(item, _Finish):
                outcomes.append(None)
            else:
                outcomes.append(_run_job_sync(conn, item))
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT leaves the transaction open; SQLite may also have rolled back.
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _run_job_sync(conn: sqlite3.Connection, job: _Job) -> Any:
    conn.execute("SAVEPOINT job")
    try:
        result = job.work(conn)
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK TO job")
        result = StoreError(f"sqlite write failed: {exc}")
    conn.execute("RELEASE job")
    return result


def _insert_rows(
    conn: sqlite3.Connection, batch: list[_Pending]
) -> list[InsertResult | StoreError]:
    """Inside the batch transaction: insert, then match each caller to its row.

    Rows inserted by this transaction are exactly those with seq above the maximum at
    its start (seq only grows, and BEGIN IMMEDIATE keeps other writers out)."""
    before = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0])
    failed: dict[int, StoreError] = {}
    conn.execute("SAVEPOINT batch")
    try:
        conn.executemany(_INSERT_ALERT, [p.params for p in batch])
    except _ROW_ERRORS:
        # Some row is bad: redo them one by one so only that caller fails.
        conn.execute("ROLLBACK TO batch")
        failed = _insert_one_by_one(conn, batch)
    conn.execute("RELEASE batch")
    rows = conn.execute("SELECT id, seq FROM alerts WHERE seq > ?", (before,)).fetchall()
    created = {str(row[0]): int(row[1]) for row in rows}
    claimed: set[str] = set()
    outcomes: list[InsertResult | StoreError] = []
    for index, pending in enumerate(batch):
        new = pending.new
        if index in failed:
            outcomes.append(failed[index])
        elif new.id in created and new.id not in claimed:
            claimed.add(new.id)
            outcomes.append(InsertResult(schema.stored_alert_from_new(created[new.id], new), True))
        else:
            outcomes.append(_existing(conn, new))
    return outcomes


def _insert_one_by_one(conn: sqlite3.Connection, batch: list[_Pending]) -> dict[int, StoreError]:
    failed: dict[int, StoreError] = {}
    for index, pending in enumerate(batch):
        conn.execute("SAVEPOINT one")
        try:
            conn.execute(_INSERT_ALERT, pending.params)
        except _ROW_ERRORS as exc:
            conn.execute("ROLLBACK TO one")
            failed[index] = StoreError(f"sqlite rejected alert {pending.new.id}: {exc}")
        conn.execute("RELEASE one")
    return failed


def _existing(conn: sqlite3.Connection, new: NewAlert) -> InsertResult | StoreError:
    """The stored alert `new` conflicted with: same idempotency key first (the
    client's explicit intent), else same CAP sender+identifier+sent."""
    rows: list[Any] = []
    if new.idempotency_key is not None:
        rows = conn.execute(_ALERT_BY_KEY, (new.idempotency_key,)).fetchall()
    if not rows:
        cap_key = (new.alert.sender, new.alert.identifier, format_cap_time(new.alert.sent))
        rows = conn.execute(_ALERT_BY_CAP, cap_key).fetchall()
    if not rows:
        return StoreError(f"alert id {new.id} is already used by a different alert")
    return InsertResult(_alert(rows[0]), False)


async def _connect(target: str) -> aiosqlite.Connection:
    # Autocommit mode (isolation_level=None): transactions are explicit BEGIN/COMMIT, so
    # the driver never opens one behind our back and SAVEPOINTs behave as documented.
    conn = aiosqlite.connect(target, isolation_level=None)
    try:
        return await conn
    except BaseException:
        # After a failed connect aiosqlite stops its worker thread, which later reports to
        # the event loop; wait for it so it cannot report to a loop that has since closed.
        await asyncio.to_thread(conn._thread.join, 5.0)
        raise


async def _configure(conn: aiosqlite.Connection, busy_timeout_ms: int, *, read_only: bool) -> None:
    # WAL: readers never block the writer nor see its uncommitted batch. synchronous=NORMAL
    # in WAL fsyncs only at checkpoints, yet a committed transaction is in the OS page cache
    # and survives the process dying (crash, kill -9), which is what "ack after commit"
    # promises. It may lose the last commits on power loss or OS crash; FULL would survive
    # that too, at one fsync per commit (group commit makes that cost per batch, not alert).
    await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    await conn.execute("PRAGMA foreign_keys = ON")
    if read_only:
        await conn.execute("PRAGMA query_only = ON")
        return
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = NORMAL")


def _alert(row: Sequence[Any]) -> StoredAlert:
    return schema.stored_alert_from_row(row, datetime.fromisoformat(row[10]))


def _subscriber(
    row: Sequence[Any], decode: Callable[[str], tuple[str, ...]] | None = None
) -> Subscriber:
    parse = schema.parse_utc_text
    return subscribers_sql.subscriber_from_row(
        row, parse(row[7]), datetime.fromisoformat(row[8]), parse(row[10]), decode
    )
