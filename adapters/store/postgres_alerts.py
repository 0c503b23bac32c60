"""Alerts on PostgreSQL: the intake, approval and alert reads of `PostgresStore`.

Contract:
- `insert_alert` is one `INSERT ... ON CONFLICT DO NOTHING RETURNING seq` round trip when
  the alert is new and plans nothing; only on a conflict does a second statement read the
  earlier alert (in a fresh snapshot, so it sees a conflicting row that a concurrent
  transaction committed while we waited on it). PostgreSQL already does group commit
  across concurrent sessions, so no batching is needed here.
- An alert created `accepted` with deliveries, or an accepted Update/Cancel, is one
  transaction: the alert row; its deliveries (one `unnest` insert); then, for each alert
  it references, the state change, the cancelling of that alert's pending deliveries (one
  statement) and the copy of its reached recipients to this alert. The cancel runs before
  the copy: a worker that claims one of those deliveries meanwhile makes our UPDATE wait
  for it and skip the row, and the copy (a later statement, so a later snapshot under READ
  COMMITTED) then sees it `sending` and owes it the correction.
- An approval is one transaction too: the decision (only from `pending_approval`, so
  concurrent decisions decide once), the very planning an accepted insert runs (`_plan`),
  and the audit row.
- Note for readers of `seq`: identity values are taken before commit, so a smaller seq can
  become visible after a larger one. Paging is fine; a consumer tailing "seq > last seen"
  must allow for that (e.g. re-read a recent window).
Planning lives here rather than with the delivery queue (`postgres_deliveries`) because it
belongs to the transaction of the insert or approval that accepts the alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.store import approval_sql, schema
from adapters.store.postgres_base import (
    PostgresBase,
    append_audit_in_transaction,
    row_count,
    translated,
)
from alerts.models import format_cap_time
from broadcaster.audit import AuditEntry
from broadcaster.errors import StoreError
from broadcaster.ports import (
    AlertEvent,
    AlertEventKind,
    AlertState,
    InsertResult,
    NewAlert,
    PlannedDelivery,
    StoredAlert,
)

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
_ALERT_STATES = "SELECT id, state FROM alerts WHERE id = ANY($1::text[])"

# --- Planning an accepted alert. Literal states are DeliveryState values; S608 as above. ---
# $1 alert id, $2 channels, $3 recipients, $4 priority, $5 received_at (due, created,
# updated), $6 expires_at. Ordinality keeps ids (FIFO) in planned order.
_INSERT_DELIVERIES = (
    f"INSERT INTO deliveries ({schema.DELIVERY_INSERT_COLUMNS}) "  # noqa: S608
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
    f"INSERT INTO deliveries ({schema.DELIVERY_INSERT_COLUMNS}) "  # noqa: S608
    "SELECT $1::text, d.channel, d.recipient, 'pending', $3::integer, 0, $4::timestamptz, "
    "$5::timestamptz, $4::timestamptz, $4::timestamptz "
    "FROM deliveries d WHERE d.alert_id = ANY($2::text[]) AND d.state = ANY($6::text[]) "
    "ORDER BY d.id ON CONFLICT DO NOTHING"
)


class PostgresAlerts(PostgresBase):
    """Alert intake, approval decisions and alert reads; a mixin of `PostgresStore`."""

    async def insert_alert(self, new: NewAlert) -> InsertResult:
        self._check_open()
        try:
            params = schema.alert_insert_values(new)
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"cannot encode alert {new.id}: {exc}") from exc
        with translated("insert_alert"):
            if schema.plans_in_transaction(new) or new.audit:
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
        """Insert the alert and, when created, its deliveries, its effect on the alerts it
        references and its audit rows, in one transaction. Returns the new seq, or None on a
        conflict (then nothing was written)."""
        async with self._pool.acquire() as conn, conn.transaction():
            seq = await conn.fetchval(_INSERT_ALERT, *params)
            if seq is None:
                return None
            if schema.plans_in_transaction(new):
                await _plan(conn, new)
            for entry in new.audit:  # last: the audit lock is held until the commit
                await append_audit_in_transaction(conn, entry)
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
        with translated("approve_alert"):
            async with self._pool.acquire() as conn, conn.transaction():
                stored = await _decide(conn, alert_id, AlertState.ACCEPTED, by, reason, at)
                if stored is None:
                    return None
                await _plan(conn, schema.approved_alert(stored, deliveries, priority, at))
                await append_audit_in_transaction(conn, audit)
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
        with translated("reject_alert"):
            async with self._pool.acquire() as conn, conn.transaction():
                stored = await _decide(conn, alert_id, state, by, reason, at)
                if stored is not None:
                    await append_audit_in_transaction(conn, audit)
        return stored

    async def pending_alerts(self, received_before: datetime, limit: int) -> list[StoredAlert]:
        self._check_open()
        with translated("pending_alerts"):
            rows = await self._pool.fetch(
                approval_sql.POSTGRES_PENDING, schema.as_utc(received_before), limit
            )
        return [_alert(row) for row in rows]

    # --- Alert reads ----------------------------------------------------------------------

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        self._check_open()
        with translated("get_alert"):
            row = await self._pool.fetchrow(_ALERT_BY_ID, alert_id)
        return None if row is None else _alert(row)

    async def get_alerts(self, alert_ids: Sequence[str]) -> list[StoredAlert]:
        self._check_open()
        with translated("get_alerts"):
            rows = await self._pool.fetch(_ALERTS_BY_IDS, list(alert_ids))
        return [_alert(row) for row in rows]

    async def list_alerts(self, *, limit: int, before_seq: int | None = None) -> list[StoredAlert]:
        self._check_open()
        with translated("list_alerts"):
            if before_seq is None:
                rows = await self._pool.fetch(_ALERTS_NEWEST, limit)
            else:
                rows = await self._pool.fetch(_ALERTS_BEFORE, before_seq, limit)
        return [_alert(row) for row in rows]

    async def count_alerts(self) -> int:
        self._check_open()
        with translated("count_alerts"):
            count = await self._pool.fetchval("SELECT COUNT(*) FROM alerts")
        return int(count)

    async def events_after(self, seq: int, limit: int) -> list[AlertEvent]:
        self._check_open()
        with translated("events_after"):
            rows = await self._pool.fetch(_EVENTS_AFTER, seq, limit)
        return [
            AlertEvent(int(r[0]), str(r[1]), AlertEventKind(r[2]), schema.as_utc(r[3]))
            for r in rows
        ]

    async def last_event_seq(self) -> int:
        self._check_open()
        with translated("last_event_seq"):
            value = await self._pool.fetchval("SELECT COALESCE(MAX(seq), 0) FROM alert_events")
        return int(value)

    async def public_alerts(self, now: datetime, limit: int) -> list[StoredAlert]:
        self._check_open()
        with translated("public_alerts"):
            rows = await self._pool.fetch(_PUBLIC_ALERTS, now, limit)
        return [_alert(row) for row in rows]

    async def successor_of(self, alert_id: str) -> str | None:
        self._check_open()
        with translated("successor_of"):
            value = await self._pool.fetchval(
                "SELECT superseded_by FROM alerts WHERE id = $1", alert_id
            )
        return None if value is None else str(value)

    async def superseded_by(self, alert_id: str) -> list[str]:
        self._check_open()
        with translated("superseded_by"):
            rows = await self._pool.fetch(
                "SELECT id FROM alerts WHERE superseded_by = $1 ORDER BY seq", alert_id
            )
        return [str(row[0]) for row in rows]

    async def alert_states(self, alert_ids: Sequence[str]) -> dict[str, AlertState]:
        self._check_open()
        if not alert_ids:
            return {}
        with translated("alert_states"):
            rows = await self._pool.fetch(_ALERT_STATES, list(alert_ids))
        return {row[0]: AlertState(row[1]) for row in rows}


def _alert(row: Any) -> StoredAlert:
    # asyncpg returns timestamptz as aware UTC datetimes and jsonb as text.
    return schema.stored_alert_from_row(row, row[10])


async def _decide(
    conn: Any, alert_id: str, state: AlertState, by: str, reason: str, at: datetime
) -> StoredAlert | None:
    """Decide an alert pending approval in `conn`'s transaction; None when it is not."""
    status = await conn.execute(
        schema.DECIDE_POSTGRES, AlertState(state).value, by, schema.as_utc(at), reason, alert_id
    )
    if row_count(status) == 0:
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
