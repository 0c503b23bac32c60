"""`PostgresStore`: the `Store` port on PostgreSQL through an asyncpg connection pool.

Contract:
- `await PostgresStore.open(dsn)` creates a pool (1..10 connections) and checks that the
  server answers; `schema=` (or `server_settings={"search_path": ...}`) confines every
  statement to one schema, which tests use for isolation. Call `migrate()` before use.
- Every statement runs in autocommit unless it says otherwise, so a write has committed
  when its coroutine returns. `insert_alert` is one `INSERT ... ON CONFLICT DO NOTHING
  RETURNING seq` round trip when the alert is new and plans nothing; only on a conflict
  does a second statement read the earlier alert (in a fresh snapshot, so it sees a
  conflicting row that a concurrent transaction committed while we waited on it).
  PostgreSQL already does group commit across concurrent sessions, so no batching is
  needed here.
- An alert created `accepted` with deliveries, or an accepted Update/Cancel, is one
  transaction: the alert row; its deliveries (one `unnest` insert); then, for each alert
  it references, the state change, the cancelling of that alert's pending deliveries (one
  statement) and the copy of its reached recipients to this alert. The cancel runs before
  the copy: a worker that claims one of those deliveries meanwhile makes our UPDATE wait
  for it and skip the row, and the copy (a later statement, so a later snapshot under READ
  COMMITTED) then sees it `sending` and owes it the correction.
- The delivery queue: claims lock with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
  never wait for each other nor get the same row. The background sweeps (lease reclaim,
  expiry) skip locked rows too, so they never deadlock with a Cancel or a worker; what they
  skip, their next run takes.
- `migrate()` is safe when several processes start at once: each step runs in its own
  transaction under `pg_advisory_xact_lock`, and re-checks whether it is still missing.
- asyncpg and socket errors leave as `StoreError` (see `_translated`); using a closed
  store raises `StoreError`.
- Note for readers of `seq`: identity values are taken before commit, so a smaller seq can
  become visible after a larger one. Paging is fine; a consumer tailing "seq > last seen"
  must allow for that (e.g. re-read a recent window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import asyncpg

from adapters.store import (
    approval_sql,
    replies_sql,
    responders_sql,
    schema,
    subscribers_sql,
    tokens_sql,
)
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

log = logging.getLogger(__name__)

# Any constant will do, as long as every broadcaster process uses the same one.
_MIGRATION_LOCK_KEY = 0x62636173745F6D67  # "bcast_mg"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Composed from constant column lists only, never from input, so S608 does not apply.
_COLS = schema.ALERT_READ_COLUMNS
_PLACEHOLDERS = ", ".join(f"${i}" for i in range(1, schema.ALERT_INSERT_COUNT + 1))
_INSERT_ALERT = (
    f"INSERT INTO alerts ({schema.ALERT_INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS}) "  # noqa: S608
    "ON CONFLICT DO NOTHING RETURNING seq"
)
_ALERT_BY_ID = f"SELECT {_COLS} FROM alerts WHERE id = $1"  # noqa: S608
_ALERTS_BY_IDS = f"SELECT {_COLS} FROM alerts WHERE id = ANY($1::text[])"  # noqa: S608
_ALERT_BY_KEY = f"SELECT {_COLS} FROM alerts WHERE idempotency_key = $1"  # noqa: S608
_ALERT_BY_CAP = (
    f"SELECT {_COLS} FROM alerts "  # noqa: S608
    "WHERE sender = $1 AND identifier = $2 AND sent_text = $3"
)
_ALERTS_NEWEST = f"SELECT {_COLS} FROM alerts ORDER BY seq DESC LIMIT $1"  # noqa: S608
_ALERTS_BEFORE = f"SELECT {_COLS} FROM alerts WHERE seq < $1 ORDER BY seq DESC LIMIT $2"  # noqa: S608
_EVENTS_AFTER = (
    "SELECT seq, alert_id, kind, at FROM alert_events WHERE seq > $1 ORDER BY seq LIMIT $2"
)
# The partial index alerts_public holds exactly the accepted non-Cancel alerts.
_PUBLIC_ALERTS = (
    f"SELECT {_COLS} FROM alerts WHERE state = 'accepted' AND msg_type <> 'Cancel' "  # noqa: S608
    "AND (expires IS NULL OR expires > $1) ORDER BY seq DESC LIMIT $2"
)
_SQL_API_INSERT = (
    "INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at, revoked_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_SQL_API_BY_HASH = (
    "SELECT id, name, role, token_hash, created_at, expires_at, revoked_at "
    "FROM api_tokens WHERE token_hash = $1"
)

# --- Deliveries. Literal states are DeliveryState values; S608 as above. ---------------
_DCOLS = schema.DELIVERY_INSERT_COLUMNS
# $1 alert id, $2 channels, $3 recipients, $4 priority, $5 received_at (due, created,
# updated), $6 expires_at. Ordinality keeps ids (FIFO) in planned order.
_INSERT_DELIVERIES = (
    f"INSERT INTO deliveries ({_DCOLS}) "  # noqa: S608
    "SELECT $1::text, p.channel, p.recipient, 'pending', $4::integer, 0, $5::timestamptz, "
    "$6::timestamptz, $5::timestamptz, $5::timestamptz "
    "FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS p (channel, recipient, n) "
    "ORDER BY p.n ON CONFLICT DO NOTHING"
)
# $1 senders, $2 identifiers, $3 sent_texts, $4 the new alert's id, $5 the new state.
# A cancelled alert stays cancelled (an Update does not revive it).
_MARK_REFERENCED = (
    "UPDATE alerts a SET state = CASE WHEN a.state = 'cancelled' THEN a.state "
    "ELSE $5::text END, superseded_by = $4 "
    "FROM unnest($1::text[], $2::text[], $3::text[]) AS r (sender, identifier, sent_text) "
    "WHERE a.sender = r.sender AND a.identifier = r.identifier "
    "AND a.sent_text = r.sent_text AND a.id <> $4 "
    "RETURNING a.id"
)
_CANCEL_PENDING = (
    "UPDATE deliveries SET state = 'cancelled', updated_at = $2 "
    "WHERE alert_id = ANY($1::text[]) AND state = 'pending'"
)
# $1 new alert id, $2 referenced ids, $3 priority, $4 received_at, $5 expires_at,
# $6 REACHED_STATES.
_PLAN_CORRECTIONS = (
    f"INSERT INTO deliveries ({_DCOLS}) "  # noqa: S608
    "SELECT $1::text, d.channel, d.recipient, 'pending', $3::integer, 0, $4::timestamptz, "
    "$5::timestamptz, $4::timestamptz, $4::timestamptz "
    "FROM deliveries d WHERE d.alert_id = ANY($2::text[]) AND d.state = ANY($6::text[]) "
    "ORDER BY d.id ON CONFLICT DO NOTHING"
)
# $1 channel, $2 now, $3 limit, $4 lease_until. Served by deliveries_due.
_CLAIM = (
    "WITH due AS (SELECT id AS due_id FROM deliveries WHERE channel = $1 "  # noqa: S608
    "AND state = 'pending' AND next_attempt_at <= $2 "
    "AND (expires_at IS NULL OR expires_at > $2) "
    "ORDER BY priority, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries d SET state = 'sending', attempts = d.attempts + 1, "
    "lease_until = $4, updated_at = $2 FROM due WHERE d.id = due.due_id "
    f"RETURNING {schema.CLAIMED_DELIVERY_COLUMNS}"
)
_FINISH = (
    "UPDATE deliveries d SET state = o.state, updated_at = o.at, "
    "provider_ref = COALESCE(o.provider_ref, d.provider_ref), "
    "last_error = COALESCE(o.error, d.last_error), "
    "next_attempt_at = COALESCE(o.next_attempt_at, d.next_attempt_at), lease_until = NULL "
    "FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], "
    "$6::timestamptz[]) AS o (id, state, at, provider_ref, error, next_attempt_at) "
    "WHERE d.id = o.id AND d.state = 'sending'"
)
# The same, and in the same statement: deliveries just sent whose alert was stopped while
# they were in flight get the correction, since their recipient got the original.
_FINISH_AND_CORRECT = (
    f"WITH done AS ({_FINISH} "  # noqa: S608
    "RETURNING d.id, d.alert_id, d.channel, d.recipient, d.priority, d.state, d.updated_at) "
    f"INSERT INTO deliveries ({_DCOLS}) "
    "SELECT a.superseded_by, done.channel, done.recipient, 'pending', done.priority, 0, "
    "done.updated_at, CASE WHEN n.msg_type = 'Cancel' THEN NULL ELSE n.expires END, "
    "done.updated_at, done.updated_at "
    "FROM done JOIN alerts a ON a.id = done.alert_id JOIN alerts n ON n.id = a.superseded_by "
    "WHERE done.state = 'sent' ON CONFLICT DO NOTHING"
)
_RELEASE = (
    "UPDATE deliveries SET state = 'pending', attempts = GREATEST(attempts - 1, 0), "
    "lease_until = NULL, next_attempt_at = $2, updated_at = $2 "
    "WHERE id = ANY($1::bigint[]) AND state = 'sending'"
)
# A receipt moves only a delivery that went out: a late "delivered" never undoes a failure.
_RECEIPT = (
    "UPDATE deliveries SET state = $2, last_error = COALESCE($3, last_error), updated_at = $4 "
    "WHERE provider_ref = $1 AND state IN ('sent', 'delivered')"
)
_EXTEND = (
    "UPDATE deliveries SET lease_until = $2 WHERE id = ANY($1::bigint[]) AND state = 'sending'"
)
_RECLAIM = (
    "WITH stale AS (SELECT id FROM deliveries WHERE state = 'sending' AND lease_until < $1 "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries d SET state = 'pending', next_attempt_at = $1, lease_until = NULL, "
    "updated_at = $1 FROM stale WHERE d.id = stale.id"
)
_EXPIRE = (
    "WITH gone AS (SELECT id FROM deliveries WHERE state = 'pending' AND expires_at <= $1 "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries d SET state = 'expired', last_error = $2, updated_at = $1 "
    "FROM gone WHERE d.id = gone.id"
)
# Channel leases, on the database's clock. The conflict branch runs on the locked, newest row
# version, so of two processes racing for a free lease exactly one gets it. $1 channels,
# $2 holder, $3 seconds.
_ACQUIRE_LEASES = (
    "INSERT INTO channel_leases (channel, holder, lease_until) "
    "SELECT c, $2, now() + make_interval(secs => $3) FROM unnest($1::text[]) AS c "
    "ON CONFLICT (channel) DO UPDATE SET holder = EXCLUDED.holder, "
    "lease_until = EXCLUDED.lease_until "
    "WHERE channel_leases.holder = EXCLUDED.holder OR channel_leases.lease_until < now() "
    "RETURNING channel"
)
_RELEASE_LEASES = (
    "UPDATE channel_leases SET holder = '', lease_until = now() + make_interval(secs => $3) "
    "WHERE channel = ANY($1::text[]) AND holder = $2"
)
_ALERT_STATES = "SELECT id, state FROM alerts WHERE id = ANY($1::text[])"
_COUNT_OPEN = "SELECT COUNT(*) FROM deliveries WHERE state = ANY($1::text[])"
_COUNT_OPEN_ON = (
    "SELECT COUNT(*) FROM deliveries WHERE state = ANY($1::text[]) AND channel = ANY($2::text[])"
)
_OUTBOX_DEPTH = (
    "SELECT channel, state, COUNT(*), MIN(created_at) FROM deliveries "
    "WHERE state = ANY($1::text[]) GROUP BY channel, state"
)
_DELIVERY_COUNTS = (
    "SELECT channel, state, COUNT(*) FROM deliveries WHERE alert_id = $1 "
    "GROUP BY channel, state ORDER BY channel, state"
)
_LIST_DELIVERIES = (
    f"SELECT {schema.DELIVERY_RECORD_COLUMNS} FROM deliveries "  # noqa: S608
    "WHERE alert_id = $1 AND id > $2 ORDER BY id LIMIT $3"
)


# InternalClientError: asyncpg resetting a connection the server dropped mid-query (seen when
# PostgreSQL restarts under load, tests/chaos/test_postgres_restart.py); untranslated, it
# killed the channel-lease keeper and stopped sending for good.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


@contextmanager
def _translated(action: str, *, connecting: bool = False) -> Iterator[None]:
    """The one place driver exceptions become StoreError. OSError/TimeoutError cover a
    server that is down or unreachable. While connecting, ValueError counts too: asyncpg's
    DSN parser raises a bare ValueError for a malformed DSN (e.g. a non-numeric port)."""
    errors = (*_DRIVER_ERRORS, ValueError) if connecting else _DRIVER_ERRORS
    try:
        yield
    except errors as exc:
        raise StoreError(f"postgres {action} failed: {exc}") from exc


class PostgresStore:
    """The Store port on PostgreSQL. Use `await PostgresStore.open(dsn)`."""

    def __init__(
        self, pool: asyncpg.Pool, dsn: str = "", settings: Mapping[str, str] | None = None
    ) -> None:
        self._pool = pool
        self._closed = False
        # For connections outside the pool (`follow_events`).
        self._dsn = dsn
        self._settings = dict(settings or {})

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        schema: str | None = None,
        server_settings: Mapping[str, str] | None = None,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
    ) -> PostgresStore:
        """Connect a pool to `dsn`. `schema` sets the search_path to that (existing) schema;
        it must be a plain lower-case identifier. Raises StoreError when unreachable."""
        settings = dict(server_settings or {})
        if schema is not None:
            if not _SCHEMA_NAME.match(schema):
                raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
            settings["search_path"] = schema
        with _translated("open", connecting=True):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                server_settings=settings or None,
            )
        return cls(pool, dsn, settings)

    async def migrate(self) -> int:
        """Apply missing migrations, one transaction per step, under an advisory lock."""
        self._check_open()
        with _translated("migrate"):
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    # The lock also covers the bootstrap: two concurrent CREATE TABLE IF NOT
                    # EXISTS can both miss the table and one then fails on its type name.
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
                    await conn.execute(schema.POSTGRES_BOOTSTRAP)
                    rows = await conn.fetch("SELECT version FROM schema_migrations")
                applied = {int(row[0]) for row in rows}
                for step in schema.MIGRATIONS:
                    if step.version in applied:
                        continue
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
                        if await conn.fetchval(
                            "SELECT 1 FROM schema_migrations WHERE version = $1", step.version
                        ):
                            continue  # another process applied it while we waited
                        # No arguments: asyncpg sends it as a simple query, which may hold
                        # several statements.
                        await conn.execute(step.postgres_sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                            step.version,
                            step.description,
                        )
                version = await conn.fetchval("SELECT MAX(version) FROM schema_migrations")
        return int(version)

    async def close(self) -> None:
        """Close the pool, waiting for statements in flight. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with _translated("close"):
            await self._pool.close()

    async def ping(self) -> None:
        self._check_open()
        with _translated("ping"):
            await self._pool.fetchval("SELECT 1")

    async def schema_version(self) -> int:
        self._check_open()
        with _translated("schema_version"):
            version = await self._pool.fetchval("SELECT MAX(version) FROM schema_migrations")
        return int(version or 0)

    async def insert_alert(self, new: NewAlert) -> InsertResult:
        self._check_open()
        try:
            params = schema.alert_insert_values(new)
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"cannot encode alert {new.id}: {exc}") from exc
        with _translated("insert_alert"):
            if schema.plans_in_transaction(new):
                seq = await self._insert_and_plan(new, params)
            else:
                seq = await self._pool.fetchval(_INSERT_ALERT, *params)
            if seq is not None:
                return InsertResult(schema.stored_alert_from_new(int(seq), new), True)
            # After the transaction: a fresh snapshot sees a concurrent duplicate's commit.
            # Same idempotency key first (the client's explicit intent), else the CAP key.
            row = None
            if new.idempotency_key is not None:
                row = await self._pool.fetchrow(_ALERT_BY_KEY, new.idempotency_key)
            if row is None:
                alert = new.alert
                row = await self._pool.fetchrow(
                    _ALERT_BY_CAP, alert.sender, alert.identifier, format_cap_time(alert.sent)
                )
        if row is None:
            raise StoreError(f"alert id {new.id} is already used by a different alert")
        return InsertResult(_alert(row), False)

    async def _insert_and_plan(self, new: NewAlert, params: list[object]) -> int | None:
        """Insert the alert and, when created, its deliveries and its effect on the alerts it
        references, in one transaction. Returns the new seq, or None on a conflict (then
        nothing was written)."""
        async with self._pool.acquire() as conn, conn.transaction():
            seq = await conn.fetchval(_INSERT_ALERT, *params)
            if seq is None:
                return None
            await _plan(conn, new)
            return int(seq)

    # --- Approval ---------------------------------------------------------------------------

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
        """One transaction: the decision (only from pending_approval), the same planning as
        an accepted insert (`_plan`), the audit row."""
        self._check_open()
        with _translated("approve_alert"):
            async with self._pool.acquire() as conn, conn.transaction():
                stored = await _decide(conn, alert_id, AlertState.ACCEPTED, by, reason, at)
                if stored is None:
                    return None
                await _plan(conn, schema.approved_alert(stored, deliveries, priority, at))
                await _append_audit(conn, audit)
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
        self._check_open()
        approval_sql.check_refusal(state)
        with _translated("reject_alert"):
            async with self._pool.acquire() as conn, conn.transaction():
                stored = await _decide(conn, alert_id, state, by, reason, at)
                if stored is not None:
                    await _append_audit(conn, audit)
        return stored

    async def pending_alerts(self, received_before: datetime, limit: int) -> list[StoredAlert]:
        self._check_open()
        with _translated("pending_alerts"):
            rows = await self._pool.fetch(
                approval_sql.POSTGRES_PENDING, schema.as_utc(received_before), limit
            )
        return [_alert(row) for row in rows]

    # --- Outbox --------------------------------------------------------------------------

    async def claim_deliveries(
        self, channel: str, *, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        self._check_open()
        if limit <= 0:
            return []
        with _translated("claim_deliveries"):
            rows = await self._pool.fetch(
                _CLAIM, channel, schema.as_utc(now), limit, schema.as_utc(lease_until)
            )
        claimed = [
            ClaimedDelivery(
                id=int(row[0]),
                alert_id=row[1],
                channel=row[2],
                recipient=row[3],
                priority=int(row[4]),
                attempts=int(row[5]),
                created_at=row[6],
                expires_at=row[7],
            )
            for row in rows
        ]
        claimed.sort(key=lambda d: (d.priority, d.id))
        return claimed

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        self._check_open()
        unique = schema.first_outcome_per_delivery(outcomes)
        if not unique:
            return
        with _translated("finish_deliveries"):
            await self._pool.execute(
                _FINISH_AND_CORRECT,
                [o.delivery_id for o in unique],
                [DeliveryState(o.state).value for o in unique],
                [schema.as_utc(o.at) for o in unique],
                [o.provider_ref for o in unique],
                [o.error for o in unique],
                [_utc_or_none(o.next_attempt_at) for o in unique],
            )

    async def release_deliveries(self, delivery_ids: Sequence[int], now: datetime) -> None:
        self._check_open()
        if not delivery_ids:
            return
        with _translated("release_deliveries"):
            await self._pool.execute(_RELEASE, list(delivery_ids), schema.as_utc(now))

    async def extend_leases(self, delivery_ids: Sequence[int], lease_until: datetime) -> None:
        self._check_open()
        if not delivery_ids:
            return
        with _translated("extend_leases"):
            await self._pool.execute(_EXTEND, list(delivery_ids), schema.as_utc(lease_until))

    async def superseded_by(self, alert_id: str) -> list[str]:
        self._check_open()
        with _translated("superseded_by"):
            rows = await self._pool.fetch(
                "SELECT id FROM alerts WHERE superseded_by = $1 ORDER BY seq", alert_id
            )
        return [str(row[0]) for row in rows]

    async def record_receipt(
        self, provider_ref: str, state: DeliveryState, error: str | None, at: datetime
    ) -> bool:
        self._check_open()
        with _translated("record_receipt"):
            status = await self._pool.execute(
                _RECEIPT, provider_ref, DeliveryState(state).value, error, schema.as_utc(at)
            )
        return _row_count(status) > 0

    async def reclaim_expired_leases(self, now: datetime) -> int:
        self._check_open()
        with _translated("reclaim_expired_leases"):
            status = await self._pool.execute(_RECLAIM, schema.as_utc(now))
        return _row_count(status)

    async def expire_deliveries(self, now: datetime) -> int:
        self._check_open()
        with _translated("expire_deliveries"):
            status = await self._pool.execute(
                _EXPIRE, schema.as_utc(now), schema.DELIVERY_EXPIRED_ERROR
            )
        return _row_count(status)

    async def acquire_channel_leases(
        self, channels: Sequence[str], holder: str, seconds: float
    ) -> set[str]:
        self._check_open()
        if not channels:
            return set()
        with _translated("acquire_channel_leases"):
            rows = await self._pool.fetch(
                _ACQUIRE_LEASES, sorted(set(channels)), holder, float(seconds)
            )
        return {row[0] for row in rows}

    async def release_channel_leases(
        self, channels: Sequence[str], holder: str, cooldown_seconds: float
    ) -> None:
        self._check_open()
        if channels:
            with _translated("release_channel_leases"):
                await self._pool.execute(
                    _RELEASE_LEASES, list(channels), holder, float(cooldown_seconds)
                )

    async def follow_events(self, on_event: Callable[[str], None]) -> None:
        """Call `on_event(table)` ("alert_events" or "reply_events") whenever a transaction
        that added events to this store's schema commits, in any process (LISTEN on a
        connection of its own). Runs until cancelled; a lost connection is re-opened after a
        pause (meanwhile the followers' polling carries on)."""
        delay = 0.5
        while True:
            try:
                with _translated("listen", connecting=True):
                    conn = await asyncpg.connect(
                        self._dsn, timeout=10.0, server_settings=self._settings or None
                    )
            except StoreError as exc:
                log.warning("event notifications unavailable (%s); polling only", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            try:
                await _listen(conn, on_event)
                delay = 0.5
                log.warning("event notification connection lost; reconnecting")
            except _DRIVER_ERRORS as exc:
                log.warning("event notifications failed (%s); reconnecting", exc)
            finally:
                if not conn.is_closed():
                    with contextlib.suppress(*_DRIVER_ERRORS):
                        await asyncio.wait_for(conn.close(), 2.0)
            await asyncio.sleep(delay)

    async def alert_states(self, alert_ids: Sequence[str]) -> dict[str, AlertState]:
        self._check_open()
        if not alert_ids:
            return {}
        with _translated("alert_states"):
            rows = await self._pool.fetch(_ALERT_STATES, list(alert_ids))
        return {row[0]: AlertState(row[1]) for row in rows}

    async def count_open_deliveries(self, channels: Sequence[str] | None = None) -> int:
        self._check_open()
        with _translated("count_open_deliveries"):
            if channels is None:
                count = await self._pool.fetchval(_COUNT_OPEN, list(schema.OPEN_STATE_VALUES))
            else:
                count = await self._pool.fetchval(
                    _COUNT_OPEN_ON, list(schema.OPEN_STATE_VALUES), list(channels)
                )
        return int(count)

    async def outbox_depth(self) -> list[OutboxDepth]:
        self._check_open()
        with _translated("outbox_depth"):
            rows = await self._pool.fetch(_OUTBOX_DEPTH, list(schema.OPEN_STATE_VALUES))
        return [OutboxDepth(r[0], r[1], int(r[2]), r[3]) for r in rows]

    async def delivery_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        self._check_open()
        with _translated("delivery_counts"):
            rows = await self._pool.fetch(_DELIVERY_COUNTS, alert_id)
        counts: dict[str, dict[str, int]] = {}
        for channel, state, count in rows:
            counts.setdefault(channel, {})[state] = int(count)
        return counts

    async def list_deliveries(
        self, alert_id: str, *, limit: int, after_id: int | None = None
    ) -> list[DeliveryRecord]:
        self._check_open()
        if limit <= 0:
            return []
        with _translated("list_deliveries"):
            rows = await self._pool.fetch(
                _LIST_DELIVERIES, alert_id, 0 if after_id is None else after_id, limit
            )
        return [
            DeliveryRecord(
                id=int(row[0]),
                alert_id=row[1],
                channel=row[2],
                recipient=row[3],
                state=DeliveryState(row[4]),
                priority=int(row[5]),
                attempts=int(row[6]),
                next_attempt_at=row[7],
                last_error=row[8],
                provider_ref=row[9],
                created_at=row[10],
                updated_at=row[11],
            )
            for row in rows
        ]

    # --- Replies ----------------------------------------------------------------------------

    async def insert_reply(self, new: NewReply) -> ReplyInsertResult:
        self._check_open()
        params = replies_sql.insert_values(new)
        with _translated("insert_reply"):
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
        with _translated("find_reply"):
            row = await self._pool.fetchrow(
                replies_sql.POSTGRES_BY_KEY, ReplySource(source).value, external_id
            )
        return None if row is None else replies_sql.postgres_reply(row)

    async def find_reply_and_sms_alert(
        self, source: ReplySource, external_id: str, phone: str | None
    ) -> tuple[StoredReply | None, str | None]:
        self._check_open()
        key = (phone, ReplySource(source).value, external_id)
        with _translated("find_reply_and_sms_alert"):
            row = await self._pool.fetchrow(replies_sql.POSTGRES_LOOKUP, *key)
        assert row is not None  # the one-row LEFT JOIN always yields a row
        return replies_sql.lookup_result(row, replies_sql.postgres_reply)

    async def get_reply(self, reply_id: int) -> StoredReply | None:
        self._check_open()
        with _translated("get_reply"):
            row = await self._pool.fetchrow(replies_sql.POSTGRES_BY_ID, reply_id)
        return None if row is None else replies_sql.postgres_reply(row)

    async def get_replies(self, reply_ids: Sequence[int]) -> list[StoredReply]:
        self._check_open()
        if not reply_ids:
            return []
        with _translated("get_replies"):
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
        )
        with _translated("list_replies"):
            rows = await self._pool.fetch(sql, *params)
        return [replies_sql.postgres_reply(row) for row in rows]

    async def last_sms_alert(self, phone: str) -> str | None:
        self._check_open()
        with _translated("last_sms_alert"):
            value = await self._pool.fetchval(replies_sql.POSTGRES_LAST_SMS_ALERT, phone)
        return None if value is None else str(value)

    async def alert_for_x_posts(self, post_ids: Sequence[str]) -> str | None:
        self._check_open()
        ids = [p for p in dict.fromkeys(post_ids) if p]
        if not ids:
            return None
        with _translated("alert_for_x_posts"):
            rows = await self._pool.fetch(replies_sql.POSTGRES_X_POSTS, ids)
        return replies_sql.first_match(ids, rows)

    async def get_cursor(self, name: str) -> str | None:
        self._check_open()
        with _translated("get_cursor"):
            value = await self._pool.fetchval(replies_sql.POSTGRES_CURSOR, name)
        return None if value is None else str(value)

    async def set_cursor(self, name: str, value: str, at: datetime) -> None:
        self._check_open()
        with _translated("set_cursor"):
            await self._pool.execute(
                replies_sql.POSTGRES_SET_CURSOR, name, value, schema.as_utc(at)
            )

    async def record_poll_vote(
        self, alert_id: str, voter: str, option_key: str, reply_id: int | None, at: datetime
    ) -> bool:
        self._check_open()
        with _translated("record_poll_vote"):
            status = await self._pool.execute(
                replies_sql.POSTGRES_VOTE, alert_id, voter, option_key, reply_id, schema.as_utc(at)
            )
        return _row_count(status) > 0

    async def poll_tally(self, alert_id: str) -> dict[str, int]:
        self._check_open()
        with _translated("poll_tally"):
            rows = await self._pool.fetch(replies_sql.POSTGRES_TALLY, alert_id)
        return replies_sql.tally(rows)

    # --- Responders and the audit log (adapters.store.responders_sql) -----------------------

    async def set_reply_state(
        self, reply_id: int, state: ReplyState, by: str, at: datetime, audit: AuditEntry
    ) -> StoredReply | None:
        self._check_open()
        with _translated("set_reply_state"):
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
                await _append_audit(conn, audit)
        return replies_sql.postgres_reply(row)

    async def set_reply_cluster(self, reply_id: int, cluster_id: int) -> None:
        self._check_open()
        with _translated("set_reply_cluster"):
            await self._pool.execute(responders_sql.POSTGRES_SET_CLUSTER, cluster_id, reply_id)

    async def cluster_counts(self, cluster_ids: Sequence[int]) -> dict[int, int]:
        self._check_open()
        ids = responders_sql.cluster_ids(cluster_ids)
        if not ids:
            return {}
        with _translated("cluster_counts"):
            rows = await self._pool.fetch(responders_sql.POSTGRES_CLUSTER_COUNTS, ids)
        return responders_sql.cluster_counts(rows)

    async def reply_events_after(self, seq: int, limit: int) -> list[ReplyEvent]:
        self._check_open()
        with _translated("reply_events_after"):
            rows = await self._pool.fetch(responders_sql.POSTGRES_EVENTS_AFTER, seq, limit)
        return [responders_sql.event_from_row(r, r[3]) for r in rows]

    async def last_reply_event_seq(self) -> int:
        self._check_open()
        with _translated("last_reply_event_seq"):
            value = await self._pool.fetchval(responders_sql.POSTGRES_LAST_EVENT)
        return int(value)

    async def purge_replies(
        self, before: datetime, audit: Callable[[int], AuditEntry | None]
    ) -> int:
        self._check_open()
        cutoff = schema.as_utc(before)
        with _translated("purge_replies"):
            async with self._pool.acquire() as conn, conn.transaction():
                for statement in responders_sql.POSTGRES_PURGE:
                    await conn.execute(statement, cutoff)
                count = _row_count(
                    await conn.execute(responders_sql.POSTGRES_PURGE_REPLIES, cutoff)
                )
                entry = audit(count)
                if entry is not None:
                    await _append_audit(conn, entry)
        return count

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        self._check_open()
        with _translated("append_audit"):
            async with self._pool.acquire() as conn, conn.transaction():
                return await _append_audit(conn, entry)

    async def audit_rows(self, after_seq: int, limit: int) -> list[AuditRecord]:
        self._check_open()
        with _translated("audit_rows"):
            rows = await self._pool.fetch(responders_sql.POSTGRES_AUDIT_AFTER, after_seq, limit)
        return [responders_sql.audit_from_row(r, r[1]) for r in rows]

    # --- Subscribers ------------------------------------------------------------------------

    async def upsert_subscribers(
        self, subscribers: Sequence[Subscriber], now: datetime
    ) -> tuple[int, int]:
        self._check_open()
        unique = subscribers_sql.unique_by_phone(subscribers)
        if not unique:
            return 0, 0
        args = subscribers_sql.postgres_upsert_args(unique, now)
        with _translated("upsert_subscribers"):
            # One statement: its own transaction in autocommit.
            rows = await self._pool.fetch(subscribers_sql.POSTGRES_UPSERT, *args)
        # An aggregate without GROUP BY returns exactly one row.
        return int(rows[0][0]), int(rows[0][1])

    async def get_subscriber(self, phone: str) -> Subscriber | None:
        self._check_open()
        with _translated("get_subscriber"):
            row = await self._pool.fetchrow(subscribers_sql.POSTGRES_BY_PHONE, phone)
        if row is None:
            return None
        return subscribers_sql.subscriber_from_row(row, row[7], row[8], row[10])

    async def list_subscribers(
        self, *, limit: int, after_id: int | None = None
    ) -> list[Subscriber]:
        self._check_open()
        if limit <= 0:
            return []
        with _translated("list_subscribers"):
            rows = await self._pool.fetch(subscribers_sql.POSTGRES_PAGE, after_id or 0, limit)
        decode = subscribers_sql.groups_decoder()
        return [
            subscribers_sql.subscriber_from_row(row, row[7], row[8], row[10], decode)
            for row in rows
        ]

    async def delete_subscriber(self, phone: str) -> bool:
        self._check_open()
        with _translated("delete_subscriber"):
            status = await self._pool.execute(subscribers_sql.POSTGRES_DELETE, phone)
        return _row_count(status) > 0

    async def set_opted_out(self, phone: str, at: datetime | None) -> bool:
        self._check_open()
        with _translated("set_opted_out"):
            status = await self._pool.execute(
                subscribers_sql.POSTGRES_SET_OPTED_OUT, phone, _utc_or_none(at)
            )
        return _row_count(status) > 0

    async def flag_subscriber(self, phone: str, reason: str | None, at: datetime | None) -> bool:
        self._check_open()
        flagged, flagged_at = subscribers_sql.flag_values(reason, at)
        with _translated("flag_subscriber"):
            status = await self._pool.execute(
                subscribers_sql.POSTGRES_FLAG, phone, flagged, flagged_at
            )
        return _row_count(status) > 0

    async def active_subscribers(self) -> list[Subscriber]:
        self._check_open()
        with _translated("active_subscribers"):
            rows = await self._pool.fetch(subscribers_sql.POSTGRES_ACTIVE)
        return subscribers_sql.active_from_rows(rows)

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        self._check_open()
        with _translated("get_alert"):
            row = await self._pool.fetchrow(_ALERT_BY_ID, alert_id)
        return None if row is None else _alert(row)

    async def get_alerts(self, alert_ids: Sequence[str]) -> list[StoredAlert]:
        self._check_open()
        with _translated("get_alerts"):
            rows = await self._pool.fetch(_ALERTS_BY_IDS, list(alert_ids))
        return [_alert(row) for row in rows]

    async def list_alerts(self, *, limit: int, before_seq: int | None = None) -> list[StoredAlert]:
        self._check_open()
        with _translated("list_alerts"):
            if before_seq is None:
                rows = await self._pool.fetch(_ALERTS_NEWEST, limit)
            else:
                rows = await self._pool.fetch(_ALERTS_BEFORE, before_seq, limit)
        return [_alert(row) for row in rows]

    async def count_alerts(self) -> int:
        self._check_open()
        with _translated("count_alerts"):
            count = await self._pool.fetchval("SELECT COUNT(*) FROM alerts")
        return int(count)

    async def events_after(self, seq: int, limit: int) -> list[AlertEvent]:
        self._check_open()
        with _translated("events_after"):
            rows = await self._pool.fetch(_EVENTS_AFTER, seq, limit)
        return [
            AlertEvent(int(r[0]), str(r[1]), AlertEventKind(r[2]), schema.as_utc(r[3]))
            for r in rows
        ]

    async def last_event_seq(self) -> int:
        self._check_open()
        with _translated("last_event_seq"):
            value = await self._pool.fetchval("SELECT COALESCE(MAX(seq), 0) FROM alert_events")
        return int(value)

    async def public_alerts(self, now: datetime, limit: int) -> list[StoredAlert]:
        self._check_open()
        with _translated("public_alerts"):
            rows = await self._pool.fetch(_PUBLIC_ALERTS, now, limit)
        return [_alert(row) for row in rows]

    async def successor_of(self, alert_id: str) -> str | None:
        self._check_open()
        with _translated("successor_of"):
            value = await self._pool.fetchval(
                "SELECT superseded_by FROM alerts WHERE id = $1", alert_id
            )
        return None if value is None else str(value)

    async def create_token(self, token: ApiToken) -> None:
        self._check_open()
        with _translated("create_token"):
            await self._pool.execute(
                _SQL_API_INSERT,
                token.id,
                token.name,
                Role(token.role).value,
                token.token_hash,
                schema.as_utc(token.created_at),
                None if token.expires_at is None else schema.as_utc(token.expires_at),
                None if token.revoked_at is None else schema.as_utc(token.revoked_at),
            )

    async def find_token(self, token_hash: str) -> ApiToken | None:
        self._check_open()
        with _translated("find_token"):
            row = await self._pool.fetchrow(_SQL_API_BY_HASH, token_hash)
        if row is None:
            return None
        return ApiToken(
            id=row[0],
            name=row[1],
            role=Role(row[2]),
            token_hash=row[3],
            created_at=row[4],
            expires_at=row[5],
            revoked_at=row[6],
        )

    async def list_tokens(self) -> list[ApiToken]:
        self._check_open()
        with _translated("list_tokens"):
            rows = await self._pool.fetch(tokens_sql.POSTGRES_LIST)
        return [tokens_sql.postgres_token(r) for r in rows]

    async def revoke_tokens(
        self,
        *,
        token_id: str | None = None,
        name: str | None = None,
        at: datetime,
        audit: Callable[[list[ApiToken]], AuditEntry | None],
    ) -> list[ApiToken]:
        self._check_open()
        params = tokens_sql.selector(token_id, name)
        with _translated("revoke_tokens"):
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(tokens_sql.POSTGRES_REVOKE, schema.as_utc(at), *params)
                revoked = [tokens_sql.postgres_token(r) for r in rows]
                entry = audit(revoked)
                if entry is not None:
                    await _append_audit(conn, entry)
        return revoked

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("postgres store is closed")


async def _listen(conn: Any, on_event: Callable[[str], None]) -> None:
    """LISTEN for event notifications of `conn`'s schema until the connection is lost."""
    own_schema = await conn.fetchval("SELECT current_schema()")
    lost = asyncio.Event()

    def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        table, _, schema_name = payload.partition(" ")
        if schema_name == own_schema:
            on_event(table)

    conn.add_termination_listener(lambda _conn: lost.set())
    await conn.add_listener("broadcaster_events", notified)
    on_event("alert_events")  # anything committed while we were not listening
    on_event("reply_events")
    await lost.wait()


async def _append_audit(conn: Any, entry: AuditEntry) -> AuditRecord:
    """Append in `conn`'s open transaction, after taking the audit lock: appenders queue, so
    each reads the hash the previous one wrote (the lock is released at commit)."""
    await conn.execute(responders_sql.POSTGRES_LOCK, responders_sql.AUDIT_LOCK_KEY)
    prev_hash = await conn.fetchval(responders_sql.POSTGRES_LAST_HASH)
    digest, values = responders_sql.audit_values(entry, prev_hash)
    seq = await conn.fetchval(responders_sql.POSTGRES_AUDIT_INSERT, *values)
    return responders_sql.audit_record(int(seq), entry, prev_hash, digest)


def _alert(row: Any) -> StoredAlert:
    # asyncpg returns timestamptz as aware UTC datetimes and jsonb as text.
    return schema.stored_alert_from_row(row, row[10])


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else schema.as_utc(value)


def _row_count(status: str) -> int:
    """The row count of a command tag such as `UPDATE 3`."""
    return int(status.rsplit(" ", 1)[-1])


async def _decide(
    conn: Any, alert_id: str, state: AlertState, by: str, reason: str, at: datetime
) -> StoredAlert | None:
    """Decide an alert pending approval in `conn`'s transaction; None when it is not."""
    status = await conn.execute(
        schema.DECIDE_POSTGRES, AlertState(state).value, by, schema.as_utc(at), reason, alert_id
    )
    if _row_count(status) == 0:
        return None
    return _alert(await conn.fetchrow(_ALERT_BY_ID, alert_id))


async def _plan(conn: Any, new: NewAlert) -> None:
    """In `conn`'s transaction, for an alert now accepted: its deliveries and its effect on
    the alerts it references (an insert's and an approval's planning alike)."""
    received_at = schema.as_utc(new.received_at)
    expires_at = schema.delivery_expiry(new)
    priority = int(new.priority)
    target = schema.referenced_alert_state(new)
    keys = schema.reference_keys(new)
    if target is not None and keys:
        rows = await conn.fetch(
            _MARK_REFERENCED,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            new.id,
            target.value,
        )
        referenced = [row[0] for row in rows]
        if referenced:
            await conn.execute(_CANCEL_PENDING, referenced, received_at)
            # Before the alert's own audience: at equal priority, lower ids go
            # first, and those acting on the original's word need the correction most.
            await conn.execute(
                _PLAN_CORRECTIONS,
                new.id,
                referenced,
                priority,
                received_at,
                expires_at,
                list(schema.REACHED_STATE_VALUES),
            )
    if new.deliveries:
        await conn.execute(
            _INSERT_DELIVERIES,
            new.id,
            [d.channel for d in new.deliveries],
            [d.recipient for d in new.deliveries],
            priority,
            received_at,
            expires_at,
        )
