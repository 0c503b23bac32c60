"""The deliveries table on SQLite: the statements behind `SqliteStore`'s outbox methods.

Contract: every function here taking a connection runs on the store's writer thread, inside
a transaction the caller opened (a group-commit batch), and never commits. Times go in and
out as `schema.utc_text`, whose text order is time order, so comparisons in SQL are plain
string comparisons.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.store import schema
from broadcaster.ports import (
    REACHED_STATES,
    AlertState,
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryState,
    NewAlert,
)

_CLAIM = """
UPDATE deliveries
SET state = 'sending', attempts = attempts + 1, lease_until = ?2, updated_at = ?1
WHERE id IN (
    SELECT id FROM deliveries
    WHERE channel = ?3 AND state = 'pending' AND next_attempt_at <= ?1
      AND (expires_at IS NULL OR expires_at > ?1)
    ORDER BY priority, id
    LIMIT ?4
)
RETURNING id, alert_id, channel, recipient, priority, attempts, created_at, expires_at
"""

_FINISH = """
UPDATE deliveries
SET state = ?, updated_at = ?, provider_ref = COALESCE(?, provider_ref),
    last_error = COALESCE(?, last_error), next_attempt_at = COALESCE(?, next_attempt_at),
    lease_until = NULL
WHERE id = ? AND state = 'sending'
"""

# Deliveries just sent whose alert was stopped while they were in flight: their recipient
# got the original, so the correction goes to them too. Placeholders are "?" only.
_LATE_CORRECTIONS = """
INSERT INTO deliveries (alert_id, channel, recipient, state, priority, attempts,
                        next_attempt_at, expires_at, created_at, updated_at)
SELECT a.superseded_by, d.channel, d.recipient, 'pending', d.priority, 0, d.updated_at,
       CASE WHEN n.msg_type = 'Cancel' THEN NULL ELSE n.expires END, d.updated_at, d.updated_at
FROM deliveries d
JOIN alerts a ON a.id = d.alert_id
JOIN alerts n ON n.id = a.superseded_by
WHERE d.id IN ({marks}) AND d.state = 'sent'
ON CONFLICT DO NOTHING
"""

_RELEASE = """
UPDATE deliveries
SET state = 'pending', attempts = MAX(attempts - 1, 0), lease_until = NULL,
    next_attempt_at = ?, updated_at = ?
WHERE id = ? AND state = 'sending'
"""

# A receipt moves only a delivery that went out: a late "delivered" never undoes a failure.
_RECEIPT = """
UPDATE deliveries SET state = ?, last_error = COALESCE(?, last_error), updated_at = ?
WHERE provider_ref = ? AND state IN ('sent', 'delivered')
"""

_EXTEND = "UPDATE deliveries SET lease_until = ? WHERE id = ? AND state = 'sending'"

_RECLAIM = """
UPDATE deliveries
SET state = 'pending', lease_until = NULL, next_attempt_at = ?1, updated_at = ?1
WHERE state = 'sending' AND lease_until < ?1
"""

_EXPIRE = """
UPDATE deliveries
SET state = 'expired', last_error = 'alert expired before it was sent', updated_at = ?1
WHERE state = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?1
"""

_PLAN = """
INSERT INTO deliveries (alert_id, channel, recipient, state, priority, attempts,
                        next_attempt_at, expires_at, created_at, updated_at)
VALUES (?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

_ALERT_BY_REFERENCE = "SELECT id FROM alerts WHERE sender = ? AND identifier = ? AND sent_text = ?"
# A cancelled alert stays cancelled: an Update never revives it.
_SET_ALERT_STATE = (
    "UPDATE alerts SET state = CASE WHEN state = 'cancelled' THEN state ELSE ?1 END, "
    "superseded_by = ?3 WHERE id = ?2"
)
_CANCEL_PENDING = """
UPDATE deliveries SET state = 'cancelled', updated_at = ?
WHERE alert_id = ? AND state = 'pending'
"""
_REACHED = ", ".join(f"'{state.value}'" for state in REACHED_STATES)
# Composed from the REACHED_STATES constant only, never from input.
_PLAN_CORRECTION = f"""
INSERT INTO deliveries (alert_id, channel, recipient, state, priority, attempts,
                        next_attempt_at, expires_at, created_at, updated_at)
SELECT ?1, channel, recipient, 'pending', ?2, 0, ?3, ?4, ?3, ?3
FROM deliveries WHERE alert_id = ?5 AND state IN ({_REACHED})
ON CONFLICT DO NOTHING
"""  # noqa: S608

COUNT_OPEN = "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'sending')"
OUTBOX_DEPTH = (
    "SELECT channel, state, COUNT(*), MIN(created_at) FROM deliveries "
    "WHERE state IN ('pending', 'sending') GROUP BY channel, state"
)
# Grouped counts of several alerts; `marks` is only "?, ?, ...", never input. Served by the
# unique (alert_id, channel, recipient) index.
COUNTS_BY_ALERTS = (
    "SELECT alert_id, channel, state, COUNT(*) FROM deliveries "
    "WHERE alert_id IN ({marks}) GROUP BY alert_id, channel, state ORDER BY channel, state"
)
LIST_BY_ALERT = """
SELECT id, alert_id, channel, recipient, state, priority, attempts, next_attempt_at,
       last_error, provider_ref, created_at, updated_at
FROM deliveries WHERE alert_id = ? AND id > ? ORDER BY id LIMIT ?
"""


def plan(conn: sqlite3.Connection, new: NewAlert) -> None:
    """Plan a freshly inserted alert: for an Update or Cancel, stop the referenced alerts
    and send this one to everyone they reached; then its own deliveries."""
    target = schema.referenced_alert_state(new)
    if AlertState(new.state) is not AlertState.ACCEPTED:
        return  # nothing is planned before approval
    due = schema.utc_text(new.received_at)
    expires = schema.utc_text(schema.delivery_expiry(new))
    if target is not None:
        for parts in schema.reference_keys(new):
            row = conn.execute(_ALERT_BY_REFERENCE, parts).fetchone()
            if row is None or row[0] == new.id:
                continue  # an alert we never stored: nothing of it to stop
            old_id = str(row[0])
            conn.execute(_SET_ALERT_STATE, (target.value, old_id, new.id))
            conn.execute(_CANCEL_PENDING, (due, old_id))
            # Before the alert's own audience: at equal priority lower ids go first, and
            # those acting on the original's word need the correction most.
            conn.execute(_PLAN_CORRECTION, (new.id, new.priority, due, expires, old_id))
    if new.deliveries:
        conn.executemany(
            _PLAN,
            (
                (new.id, d.channel, d.recipient, new.priority, due, expires, due, due)
                for d in new.deliveries
            ),
        )


def claim(
    conn: sqlite3.Connection, channel: str, limit: int, now_text: str | None, lease: str | None
) -> list[ClaimedDelivery]:
    rows = conn.execute(_CLAIM, (now_text, lease, channel, limit)).fetchall()
    claimed = [
        ClaimedDelivery(
            id=int(row[0]),
            alert_id=row[1],
            channel=row[2],
            recipient=row[3],
            priority=int(row[4]),
            attempts=int(row[5]),
            created_at=datetime.fromisoformat(row[6]),
            expires_at=schema.parse_utc_text(row[7]),
        )
        for row in rows
    ]
    # RETURNING gives no order guarantee; the caller sends in claim order.
    claimed.sort(key=lambda d: (d.priority, d.id))
    return claimed


def finish_params(outcomes: Sequence[DeliveryOutcome]) -> list[tuple[Any, ...]]:
    """Encode outcomes in the caller's thread, keeping the writer's work minimal."""
    return [
        (
            DeliveryState(o.state).value,
            schema.utc_text(o.at),
            o.provider_ref,
            o.error,
            schema.utc_text(o.next_attempt_at),
            o.delivery_id,
        )
        for o in outcomes
    ]


def finish(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(_FINISH, rows)
    sent = [row[-1] for row in rows if row[0] == DeliveryState.SENT.value]
    if sent:
        marks = ", ".join("?" * len(sent))
        conn.execute(_LATE_CORRECTIONS.format(marks=marks), sent)


def release(conn: sqlite3.Connection, ids: list[int], now_text: str | None) -> None:
    conn.executemany(_RELEASE, [(now_text, now_text, ident) for ident in ids])


def receipt(
    conn: sqlite3.Connection, ref: str, state: str, error: str | None, at: str | None
) -> bool:
    return conn.execute(_RECEIPT, (state, error, at, ref)).rowcount > 0


def extend(conn: sqlite3.Connection, ids: list[int], lease_text: str | None) -> None:
    conn.executemany(_EXTEND, [(lease_text, ident) for ident in ids])


def reclaim(conn: sqlite3.Connection, now_text: str | None) -> int:
    return conn.execute(_RECLAIM, (now_text,)).rowcount


def expire(conn: sqlite3.Connection, now_text: str | None) -> int:
    return conn.execute(_EXPIRE, (now_text,)).rowcount


def record(row: Sequence[Any]) -> DeliveryRecord:
    """Decode a row selected by LIST_BY_ALERT."""
    return DeliveryRecord(
        id=int(row[0]),
        alert_id=row[1],
        channel=row[2],
        recipient=row[3],
        state=DeliveryState(row[4]),
        priority=int(row[5]),
        attempts=int(row[6]),
        next_attempt_at=datetime.fromisoformat(row[7]),
        last_error=row[8],
        provider_ref=row[9],
        created_at=datetime.fromisoformat(row[10]),
        updated_at=datetime.fromisoformat(row[11]),
    )
