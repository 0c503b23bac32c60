"""The database schema as versioned migrations, and the column encoding both stores share.

Contract:
- `MIGRATIONS` is an append-only list: a released step is never edited, only followed by a
  new one. Versions are strictly increasing; `LATEST_VERSION` is the last one.
- Each step carries the same change for SQLite and PostgreSQL. A runner applies only the
  steps whose version is missing from `schema_migrations`, one transaction per step, and
  records the step in that same transaction, so a crash leaves each step all-or-nothing.
- The longer steps' DDL lives in `schema_v1_v3`, `schema_v6_v11` and `schema_v12` (both
  spellings of a step side by side); only this module orders the steps.
- SQLite keeps times as ISO-8601 text in UTC (`utc_text`), which sorts like the instant;
  PostgreSQL keeps them as timestamptz. JSON columns hold text in both, except that
  PostgreSQL uses jsonb where nobody hashes the exact bytes.
- Enumerated columns (states, roles) have no CHECK constraint on purpose: SQLite cannot
  alter a CHECK without rebuilding the table, and the Python enums already guard writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.store.schema_v1_v3 import (
    V1_POSTGRES,
    V1_SQLITE,
    V2_POSTGRES,
    V2_SQLITE,
    V3_POSTGRES,
    V3_SQLITE,
)
from adapters.store.schema_v6_v11 import (
    V6_POSTGRES,
    V6_SQLITE,
    V8_POSTGRES,
    V8_SQLITE,
    V9_POSTGRES,
    V9_SQLITE,
    V10_POSTGRES,
    V10_SQLITE,
    V11_POSTGRES,
    V11_SQLITE,
)
from adapters.store.schema_v12 import V12_POSTGRES, V12_SQLITE, V13_POSTGRES, V13_SQLITE
from alerts.models import READ_BACK, Alert, MsgType, format_cap_time, reference_parts
from broadcaster.ports import (
    REACHED_STATES,
    AlertState,
    DeliveryOutcome,
    DeliveryState,
    NewAlert,
    PlannedDelivery,
    StoredAlert,
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: the same change spelled for each backend."""

    version: int
    description: str
    sqlite_sql: str
    postgres_sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "intake: alerts and api_tokens", V1_SQLITE, V1_POSTGRES),
    Migration(
        2,
        "fan-out and replies: deliveries, subscribers, replies, audit_log, cursors",
        V2_SQLITE,
        V2_POSTGRES,
    ),
    Migration(3, "delivery engine: claim, expiry and per-alert indexes", V3_SQLITE, V3_POSTGRES),
    Migration(
        4,
        "alerts.superseded_by: where a late send of a stopped alert sends its correction",
        "ALTER TABLE alerts ADD COLUMN superseded_by TEXT;",
        "ALTER TABLE alerts ADD COLUMN superseded_by text;",
    ),
    # Every state change rewrote this index twice (claim, outcome): a quarter of the
    # outbox's write cost. The unique (alert_id, channel, recipient) index already serves
    # "this alert's deliveries" for the cancel statement and the per-alert counts.
    Migration(
        5,
        "drop deliveries_alert_state: the unique index serves per-alert queries",
        "DROP INDEX deliveries_alert_state;",
        "DROP INDEX deliveries_alert_state;",
    ),
    Migration(6, "alert_events: what was published and when", V6_SQLITE, V6_POSTGRES),
    # A number the provider refuses for good (Twilio 21211 invalid, 21614 not mobile) is
    # flagged with the reason and left out of the SMS audience until an admin fixes it.
    Migration(
        7,
        "subscribers.flagged, flagged_at: numbers the provider refused, out of the audience",
        "ALTER TABLE subscribers ADD COLUMN flagged TEXT;\n"
        "ALTER TABLE subscribers ADD COLUMN flagged_at TEXT;",
        "ALTER TABLE subscribers ADD COLUMN flagged text, ADD COLUMN flagged_at timestamptz;",
    ),
    Migration(8, "replies: triage, position, media, state; poll_votes", V8_SQLITE, V8_POSTGRES),
    Migration(9, "reply_events: the responder feed; replies_cluster", V9_SQLITE, V9_POSTGRES),
    Migration(10, "alerts: template and approval decision", V10_SQLITE, V10_POSTGRES),
    Migration(11, "channel_leases; event notifications", V11_SQLITE, V11_POSTGRES),
    Migration(12, "subscriber_changes: a counter of subscriber writes", V12_SQLITE, V12_POSTGRES),
    # PostgreSQL only: SQLite has no search_path (its step is empty, recorded all the same).
    Migration(
        13,
        "trigger functions of steps 6, 9 and 11 keep their schema's search_path",
        V13_SQLITE,
        V13_POSTGRES,
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version

SQLITE_BOOTSTRAP = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""

POSTGRES_BOOTSTRAP = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def sqlite_statements(script: str) -> list[str]:
    """Split a SQLite script into statements (the driver runs one at a time, and
    `executescript` would commit the step's transaction half-way)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()[:60]!r}")
    return statements


# --- Column encoding shared by both stores -------------------------------------------

ALERT_INSERT_COLUMNS = (
    "id, identifier, sender, sent, sent_text, status, msg_type, severity, urgency, expires, "
    "state, source, channels, created_by, idempotency_key, body_hash, alert_json, cap_xml, "
    "received_at, template, template_values"
)
ALERT_INSERT_COUNT = ALERT_INSERT_COLUMNS.count(",") + 1
# What reading an alert back needs, in the order `stored_alert_from_row` expects.
ALERT_READ_COLUMNS = (
    "seq, id, alert_json, channels, source, state, created_by, idempotency_key, body_hash, "
    "cap_xml, received_at, template, template_values, decided_by, decided_at, decision_reason"
)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime. Naive values are taken as UTC, as asyncpg does."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_text(value: datetime | None) -> str | None:
    """SQLite's time encoding: fixed-width ISO-8601 in UTC, so text order is time order."""
    if value is None:
        return None
    return as_utc(value).isoformat(timespec="microseconds")


def parse_utc_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def alert_insert_values(new: NewAlert) -> list[object]:
    """The insert parameters for `new`, in `ALERT_INSERT_COLUMNS` order; times as aware UTC
    datetimes (SQLite converts them with `utc_text`)."""
    alert = new.alert
    expires = alert.expires
    return [
        new.id,
        alert.identifier,
        alert.sender,
        as_utc(alert.sent),
        format_cap_time(alert.sent),
        alert.status.value,
        alert.msg_type.value,
        alert.severity.value,
        alert.urgency.value,
        None if expires is None else as_utc(expires),
        AlertState(new.state).value,
        new.source,
        json.dumps(list(new.channels)),
        new.created_by,
        new.idempotency_key,
        new.body_hash,
        alert.model_dump_json(),
        new.cap_xml,
        as_utc(new.received_at),
        new.template,
        json.dumps(dict(new.template_values)) if new.template is not None else None,
    ]


def stored_alert_from_new(seq: int, new: NewAlert) -> StoredAlert:
    """The StoredAlert a fresh insert of `new` produced, without re-reading the row. Equal
    to what a later read returns (times normalised to UTC the same way)."""
    return StoredAlert(
        seq=seq,
        id=new.id,
        alert=new.alert,
        channels=tuple(new.channels),
        source=new.source,
        state=AlertState(new.state),
        created_by=new.created_by,
        idempotency_key=new.idempotency_key,
        body_hash=new.body_hash,
        cap_xml=new.cap_xml,
        received_at=as_utc(new.received_at),
        template=new.template,
        template_values=tuple(new.template_values),
    )


def stored_alert_from_row(row: Sequence[Any], received_at: datetime) -> StoredAlert:
    """Decode a row selected with `ALERT_READ_COLUMNS` (driver rows are untyped); the
    caller decodes `received_at`, whose encoding differs per backend."""
    return StoredAlert(
        seq=int(row[0]),
        id=row[1],
        alert=Alert.model_validate_json(row[2], context=READ_BACK),
        channels=tuple(json.loads(row[3])),
        source=row[4],
        state=AlertState(row[5]),
        created_by=row[6],
        idempotency_key=row[7],
        body_hash=row[8],
        cap_xml=row[9],
        received_at=as_utc(received_at),
        template=row[11],
        template_values=tuple(json.loads(row[12]).items()) if row[12] else (),
        decided_by=row[13],
        decided_at=_any_time(row[14]),
        decision_reason=row[15],
    )


def _any_time(value: datetime | str | None) -> datetime | None:
    """A time column as either backend returns it (SQLite text, PostgreSQL datetime)."""
    if value is None:
        return None
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def approved_alert(
    stored: StoredAlert, deliveries: Sequence[PlannedDelivery], priority: int, at: datetime
) -> NewAlert:
    """The `NewAlert` that planning an approved alert works from: `stored` as accepted, with
    its deliveries due at `at`, so that approval reuses the insert's planning (`plan` in
    each store) word for word, Update/Cancel supersession included."""
    return NewAlert(
        id=stored.id,
        alert=stored.alert,
        channels=stored.channels,
        source=stored.source,
        state=AlertState.ACCEPTED,
        created_by=stored.created_by,
        idempotency_key=stored.idempotency_key,
        body_hash=stored.body_hash,
        cap_xml=stored.cap_xml,
        received_at=as_utc(at),
        deliveries=tuple(deliveries),
        priority=priority,
    )


# Approval decisions: only an alert still pending approval moves (a concurrent approve and
# reject, or an approval racing the expiry, decide once). Placeholders: state, by, at,
# reason, id; SQLite uses ?, PostgreSQL $n.
DECIDE_SQLITE = (
    "UPDATE alerts SET state = ?, decided_by = ?, decided_at = ?, decision_reason = ? "
    "WHERE id = ? AND state = 'pending_approval'"
)
DECIDE_POSTGRES = (
    "UPDATE alerts SET state = $1, decided_by = $2, decided_at = $3, decision_reason = $4 "
    "WHERE id = $5 AND state = 'pending_approval'"
)


# --- Delivery engine: helpers shared by both stores ------------------------------------

DELIVERY_EXPIRED_ERROR = "alert expired before it was sent"
DELIVERY_INSERT_COLUMNS = (
    "alert_id, channel, recipient, state, priority, attempts, next_attempt_at, expires_at, "
    "created_at, updated_at"
)
# What a claim returns, in `ClaimedDelivery` field order.
CLAIMED_DELIVERY_COLUMNS = (
    "id, alert_id, channel, recipient, priority, attempts, created_at, expires_at"
)
# What `list_deliveries` reads, in `DeliveryRecord` field order.
DELIVERY_RECORD_COLUMNS = (
    "id, alert_id, channel, recipient, state, priority, attempts, next_attempt_at, "
    "last_error, provider_ref, created_at, updated_at"
)
REACHED_STATE_VALUES: tuple[str, ...] = tuple(s.value for s in REACHED_STATES)
OPEN_STATE_VALUES: tuple[str, ...] = (DeliveryState.PENDING.value, DeliveryState.SENDING.value)


def referenced_alert_state(new: NewAlert) -> AlertState | None:
    """The state `new` puts the alerts it references in when it is created `accepted`:
    superseded (Update) or cancelled (Cancel); None when it touches no other alert.
    A `cancelled` alert stays cancelled: an Update never revives it (stores enforce that)."""
    if AlertState(new.state) is not AlertState.ACCEPTED or not new.alert.references:
        return None
    if new.alert.msg_type is MsgType.UPDATE:
        return AlertState.SUPERSEDED
    if new.alert.msg_type is MsgType.CANCEL:
        return AlertState.CANCELLED
    return None


def plans_in_transaction(new: NewAlert) -> bool:
    """Whether inserting `new` writes more than the alert row (deliveries or supersession):
    only then does a store need a multi-statement transaction."""
    if AlertState(new.state) is not AlertState.ACCEPTED:
        return False
    return bool(new.deliveries) or referenced_alert_state(new) is not None


def reference_keys(new: NewAlert) -> list[tuple[str, str, str]]:
    """(sender, identifier, sent_text) of each alert `new` references, normalised with
    `reference_parts` (so `Z` and `+00:00` match) and without duplicates, in order."""
    keys: dict[tuple[str, str, str], None] = {}
    for reference in new.alert.references:
        keys.setdefault(reference_parts(reference), None)
    return list(keys)


def first_outcome_per_delivery(outcomes: Sequence[DeliveryOutcome]) -> list[DeliveryOutcome]:
    """One outcome per delivery id, the first given: applied one by one, the first moves the
    delivery out of `sending`, so any later outcome for it would be ignored anyway."""
    seen: dict[int, DeliveryOutcome] = {}
    for outcome in outcomes:
        seen.setdefault(int(outcome.delivery_id), outcome)
    return list(seen.values())


def delivery_expiry(new: NewAlert) -> datetime | None:
    """The expires_at of `new`'s deliveries (aware UTC). None for a Cancel: a cancellation
    must reach everyone who got the original even when, as often in CAP feeds, it expires
    the moment it is sent."""
    if new.alert.msg_type is MsgType.CANCEL:
        return None
    expires = new.alert.expires
    return None if expires is None else as_utc(expires)
