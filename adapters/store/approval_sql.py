"""Approval decisions on SQLite: the writer-thread side of `SqliteStore.approve_alert` and
`reject_alert` (PostgreSQL spells the same steps in `postgres_alerts.py`).

Contract: each function runs on the store's writer thread inside a batch transaction the
caller opened, and never commits. Only an alert still `pending_approval` moves
(`schema.DECIDE_SQLITE`), so concurrent decisions (approve against reject, an approval
against the expiry) decide once; the loser gets None and nothing is written. Approval plans
through `sqlite_outbox.plan`, the very code an accepted insert runs, so an approved Update or
Cancel stops the alerts it references exactly as one accepted at once does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from adapters.store import responders_sql, schema, sqlite_outbox
from broadcaster.audit import AuditEntry
from broadcaster.errors import StoreError
from broadcaster.ports import AlertState, PlannedDelivery, StoredAlert

_ALERT_BY_ID = f"SELECT {schema.ALERT_READ_COLUMNS} FROM alerts WHERE id = ?"  # noqa: S608
SQLITE_PENDING = (
    f"SELECT {schema.ALERT_READ_COLUMNS} FROM alerts "  # noqa: S608
    "WHERE state = 'pending_approval' AND received_at < ? ORDER BY received_at LIMIT ?"
)
POSTGRES_PENDING = (
    f"SELECT {schema.ALERT_READ_COLUMNS} FROM alerts "  # noqa: S608
    "WHERE state = 'pending_approval' AND received_at < $1 ORDER BY received_at LIMIT $2"
)


def check_refusal(state: AlertState) -> None:
    """Raise StoreError unless `state` is one a refusal may give (checked before queueing:
    an error on the writer thread that is not sqlite's would fail the whole batch)."""
    if AlertState(state) not in (AlertState.REJECTED, AlertState.EXPIRED_UNAPPROVED):
        raise StoreError(f"an alert pending approval cannot be refused into {state}")


def sqlite_alert(row: Sequence[object]) -> StoredAlert:
    return schema.stored_alert_from_row(row, datetime.fromisoformat(str(row[10])))


def _decide(
    conn: sqlite3.Connection,
    alert_id: str,
    state: AlertState,
    by: str,
    reason: str,
    at: datetime,
) -> StoredAlert | None:
    values = (AlertState(state).value, by, schema.utc_text(at), reason, alert_id)
    if conn.execute(schema.DECIDE_SQLITE, values).rowcount == 0:
        return None
    return sqlite_alert(conn.execute(_ALERT_BY_ID, (alert_id,)).fetchone())


def sqlite_approve(
    conn: sqlite3.Connection,
    alert_id: str,
    deliveries: Sequence[PlannedDelivery],
    priority: int,
    by: str,
    reason: str,
    at: datetime,
    audit: AuditEntry,
) -> StoredAlert | None:
    stored = _decide(conn, alert_id, AlertState.ACCEPTED, by, reason, at)
    if stored is None:
        return None
    sqlite_outbox.plan(conn, schema.approved_alert(stored, deliveries, priority, at))
    responders_sql.sqlite_append_audit(conn, audit)
    return stored


def sqlite_reject(
    conn: sqlite3.Connection,
    alert_id: str,
    state: AlertState,
    by: str,
    reason: str,
    at: datetime,
    audit: AuditEntry,
) -> StoredAlert | None:
    stored = _decide(conn, alert_id, state, by, reason, at)
    if stored is not None:
        responders_sql.sqlite_append_audit(conn, audit)
    return stored
