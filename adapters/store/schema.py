"""The database schema as versioned migrations, and the column encoding both stores share.

Contract:
- `MIGRATIONS` is an append-only list: a released step is never edited, only followed by a
  new one. Versions are strictly increasing; `LATEST_VERSION` is the last one.
- Each step carries the same change for SQLite and PostgreSQL. A runner applies only the
  steps whose version is missing from `schema_migrations`, one transaction per step, and
  records the step in that same transaction, so a crash leaves each step all-or-nothing.
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

from alerts.models import Alert, MsgType, format_cap_time, reference_parts
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


_V1_SQLITE = """
CREATE TABLE alerts (
    -- AUTOINCREMENT (not plain rowid) so a seq is never reused, even after deletes:
    -- paging and the group-commit writer rely on seq only growing.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    identifier TEXT NOT NULL,
    sender TEXT NOT NULL,
    sent TEXT NOT NULL,
    -- CAP's own spelling of sent (offset kept): CAP references name an alert by
    -- sender,identifier,sent as text, so uniqueness is on the text.
    sent_text TEXT NOT NULL,
    status TEXT NOT NULL,
    msg_type TEXT NOT NULL,
    severity TEXT NOT NULL,
    urgency TEXT NOT NULL,
    expires TEXT,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    channels TEXT NOT NULL DEFAULT '[]',
    created_by TEXT,
    idempotency_key TEXT UNIQUE,
    body_hash TEXT NOT NULL,
    alert_json TEXT NOT NULL,
    cap_xml TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (sender, identifier, sent_text)
);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
"""

_V1_POSTGRES = """
CREATE TABLE alerts (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    identifier text NOT NULL,
    sender text NOT NULL,
    sent timestamptz NOT NULL,
    sent_text text NOT NULL,
    status text NOT NULL,
    msg_type text NOT NULL,
    severity text NOT NULL,
    urgency text NOT NULL,
    expires timestamptz,
    state text NOT NULL,
    source text NOT NULL,
    channels jsonb NOT NULL DEFAULT '[]',
    created_by text,
    idempotency_key text UNIQUE,
    body_hash text NOT NULL,
    -- text, not jsonb: keeps the exact bytes and skips a parse on the hot insert path.
    alert_json text NOT NULL,
    cap_xml text,
    received_at timestamptz NOT NULL,
    UNIQUE (sender, identifier, sent_text)
);
CREATE TABLE api_tokens (
    id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);
"""

# Priority: lower is more urgent (as SEVERITY_RANK), so the claim index serves
# "ORDER BY priority, next_attempt_at" for state = 'pending' directly.
_V2_SQLITE = """
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    last_error TEXT,
    provider_ref TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (alert_id, channel, recipient)
);
CREATE INDEX deliveries_claim ON deliveries (state, priority, next_attempt_at);
CREATE INDEX deliveries_provider_ref ON deliveries (provider_ref)
    WHERE provider_ref IS NOT NULL;
CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    phone TEXT NOT NULL UNIQUE,
    lat REAL,
    lon REAL,
    area_code TEXT,
    language TEXT NOT NULL DEFAULT 'en-US',
    groups TEXT NOT NULL DEFAULT '[]',
    opted_out_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX subscribers_area_code ON subscribers (area_code);
CREATE TABLE replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    alert_id TEXT REFERENCES alerts (id),
    sender TEXT,
    text TEXT NOT NULL,
    received_at TEXT NOT NULL,
    category TEXT,
    score REAL,
    UNIQUE (source, external_id)
);
CREATE INDEX replies_alert_id ON replies (alert_id, received_at);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT,
    hash TEXT NOT NULL UNIQUE
);
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

_V2_POSTGRES = """
CREATE TABLE deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id text NOT NULL REFERENCES alerts (id),
    channel text NOT NULL,
    recipient text NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    priority integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until timestamptz,
    last_error text,
    provider_ref text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (alert_id, channel, recipient)
);
CREATE INDEX deliveries_claim ON deliveries (state, priority, next_attempt_at);
CREATE INDEX deliveries_provider_ref ON deliveries (provider_ref)
    WHERE provider_ref IS NOT NULL;
CREATE TABLE subscribers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone text NOT NULL UNIQUE,
    lat double precision,
    lon double precision,
    area_code text,
    language text NOT NULL DEFAULT 'en-US',
    groups jsonb NOT NULL DEFAULT '[]',
    opted_out_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX subscribers_area_code ON subscribers (area_code);
CREATE TABLE replies (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    external_id text NOT NULL,
    alert_id text REFERENCES alerts (id),
    sender text,
    text text NOT NULL,
    received_at timestamptz NOT NULL,
    category text,
    score double precision,
    UNIQUE (source, external_id)
);
CREATE INDEX replies_alert_id ON replies (alert_id, received_at);
CREATE TABLE audit_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    -- text, not jsonb: the hash chain covers these exact bytes; jsonb would reorder keys.
    detail text NOT NULL DEFAULT '{}',
    prev_hash text,
    hash text NOT NULL UNIQUE
);
CREATE TABLE cursors (
    name text PRIMARY KEY,
    value text NOT NULL,
    updated_at timestamptz NOT NULL
);
"""

# v3: the delivery engine. `expires_at` copies the alert's expiry so claims and the expirer
# never join alerts; the claim index is per channel (each channel claims on its own) and
# partial on pending, in claim order (priority, then id = FIFO).
_V3_COMMON = """
ALTER TABLE deliveries ADD COLUMN expires_at {time};
DROP INDEX deliveries_claim;
CREATE INDEX deliveries_due ON deliveries (channel, priority, id) WHERE state = 'pending';
CREATE INDEX deliveries_open ON deliveries (state, lease_until)
    WHERE state IN ('pending', 'sending');
CREATE INDEX deliveries_expiry ON deliveries (expires_at)
    WHERE state = 'pending' AND expires_at IS NOT NULL;
CREATE INDEX deliveries_alert_state ON deliveries (alert_id, state);
"""
_V3_SQLITE = _V3_COMMON.format(time="TEXT")
_V3_POSTGRES = _V3_COMMON.format(time="timestamptz")

# v6: alert events, the public record of what was published and when (SSE ids, feeds, page
# caches). Written by triggers, so every path that makes an alert public (an insert in state
# accepted, an approval later) records its event in the same transaction, with no extra
# work on the intake path. Kinds: created (Alert), updated (Update), cancelled (Cancel).
_V6_SQLITE = """
CREATE TABLE alert_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TRIGGER alerts_event_on_insert AFTER INSERT ON alerts WHEN NEW.state = 'accepted'
BEGIN
    INSERT INTO alert_events (alert_id, kind, at) VALUES (
        NEW.id,
        CASE NEW.msg_type WHEN 'Update' THEN 'updated' WHEN 'Cancel' THEN 'cancelled'
            ELSE 'created' END,
        NEW.received_at
    );
END;
CREATE TRIGGER alerts_event_on_approval AFTER UPDATE OF state ON alerts
    WHEN OLD.state = 'pending_approval' AND NEW.state = 'accepted'
BEGIN
    INSERT INTO alert_events (alert_id, kind, at) VALUES (
        NEW.id,
        CASE NEW.msg_type WHEN 'Update' THEN 'updated' WHEN 'Cancel' THEN 'cancelled'
            ELSE 'created' END,
        strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00'
    );
END;
CREATE INDEX alerts_public ON alerts (seq) WHERE state = 'accepted' AND msg_type <> 'Cancel';
"""
_V6_POSTGRES = """
CREATE TABLE alert_events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id text NOT NULL,
    kind text NOT NULL,
    at timestamptz NOT NULL
);
CREATE FUNCTION alerts_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'accepted' AND (TG_OP = 'INSERT' OR OLD.state = 'pending_approval') THEN
        INSERT INTO alert_events (alert_id, kind, at) VALUES (
            NEW.id,
            CASE NEW.msg_type WHEN 'Update' THEN 'updated' WHEN 'Cancel' THEN 'cancelled'
                ELSE 'created' END,
            CASE TG_OP WHEN 'INSERT' THEN NEW.received_at ELSE now() END
        );
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER alerts_event_on_insert AFTER INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION alerts_record_event();
CREATE TRIGGER alerts_event_on_approval AFTER UPDATE OF state ON alerts
    FOR EACH ROW EXECUTE FUNCTION alerts_record_event();
CREATE INDEX alerts_public ON alerts (seq) WHERE state = 'accepted' AND msg_type <> 'Cancel';
"""

# v8: listening. Replies get their triage (categories and entities as JSON), position, media,
# the post they answer, and a responder state (new -> acknowledged / escalated / dismissed,
# by whom and when; `cluster_id` groups near-identical reports). `poll_votes` holds one vote
# per voter per alert: the latest reply wins. `deliveries_sms_recipient` finds the last alert
# texted to a number (what an SMS reply answers); partial, so other channels pay nothing.
_V8_COMMON = """
ALTER TABLE replies ADD COLUMN categories {json} NOT NULL DEFAULT '[]';
ALTER TABLE replies ADD COLUMN entities {json} NOT NULL DEFAULT '{{}}';
ALTER TABLE replies ADD COLUMN lat {real};
ALTER TABLE replies ADD COLUMN lon {real};
ALTER TABLE replies ADD COLUMN media_url {text};
ALTER TABLE replies ADD COLUMN in_reply_to {text};
ALTER TABLE replies ADD COLUMN state {text} NOT NULL DEFAULT 'new';
ALTER TABLE replies ADD COLUMN state_by {text};
ALTER TABLE replies ADD COLUMN state_at {time};
ALTER TABLE replies ADD COLUMN cluster_id {bigint};
CREATE INDEX replies_state ON replies (state, id);
CREATE INDEX replies_received ON replies (received_at, id);
CREATE INDEX deliveries_sms_recipient ON deliveries (recipient, id) WHERE channel = 'sms';
CREATE TABLE poll_votes (
    alert_id {text} NOT NULL REFERENCES alerts (id),
    voter {text} NOT NULL,
    option_key {text} NOT NULL,
    reply_id {bigint},
    voted_at {time} NOT NULL,
    PRIMARY KEY (alert_id, voter)
);
"""
_V8_SQLITE = _V8_COMMON.format(json="TEXT", real="REAL", text="TEXT", time="TEXT", bigint="INTEGER")
_V8_POSTGRES = _V8_COMMON.format(
    json="jsonb", real="double precision", text="text", time="timestamptz", bigint="bigint"
)

# v9: the responder feed. `reply_events` is what responders' streams follow (new replies and
# changes of state or cluster), written by triggers in the transaction that made the change,
# as alert_events are; AUTOINCREMENT so an id is never reused after a retention purge.
# `replies_cluster` counts the reports of one cluster.
_V9_SQLITE = """
CREATE TABLE reply_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    reply_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX reply_events_reply ON reply_events (reply_id);
CREATE TRIGGER replies_event_on_insert AFTER INSERT ON replies
BEGIN
    INSERT INTO reply_events (reply_id, kind, at)
    VALUES (NEW.id, 'created', strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00');
END;
CREATE TRIGGER replies_event_on_update AFTER UPDATE OF state, state_by, state_at, cluster_id
    ON replies
BEGIN
    INSERT INTO reply_events (reply_id, kind, at)
    VALUES (NEW.id, 'updated', strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00');
END;
CREATE INDEX replies_cluster ON replies (cluster_id) WHERE cluster_id IS NOT NULL;
"""
_V9_POSTGRES = """
CREATE TABLE reply_events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reply_id bigint NOT NULL,
    kind text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX reply_events_reply ON reply_events (reply_id);
CREATE FUNCTION replies_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO reply_events (reply_id, kind, at) VALUES (NEW.id, 'created', now());
    ELSIF (NEW.state, NEW.state_by, NEW.state_at, NEW.cluster_id)
        IS DISTINCT FROM (OLD.state, OLD.state_by, OLD.state_at, OLD.cluster_id) THEN
        INSERT INTO reply_events (reply_id, kind, at) VALUES (NEW.id, 'updated', now());
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER replies_event_on_insert AFTER INSERT ON replies
    FOR EACH ROW EXECUTE FUNCTION replies_record_event();
CREATE TRIGGER replies_event_on_update AFTER UPDATE OF state, state_by, state_at, cluster_id
    ON replies FOR EACH ROW EXECUTE FUNCTION replies_record_event();
CREATE INDEX replies_cluster ON replies (cluster_id) WHERE cluster_id IS NOT NULL;
"""

# v10: comms-desk safeguards. The template an alert was filled from (and its values, JSON),
# so that its ready correction can be filled; who approved or rejected an alert held for the
# two-person rule, when and why. `alerts_pending` serves the expiry of unapproved alerts.
_V10_COMMON = """
ALTER TABLE alerts ADD COLUMN template {text};
ALTER TABLE alerts ADD COLUMN template_values {text};
ALTER TABLE alerts ADD COLUMN decided_by {text};
ALTER TABLE alerts ADD COLUMN decided_at {time};
ALTER TABLE alerts ADD COLUMN decision_reason {text};
CREATE INDEX alerts_pending ON alerts (received_at) WHERE state = 'pending_approval';
"""
_V10_SQLITE = _V10_COMMON.format(text="TEXT", time="TEXT")
_V10_POSTGRES = _V10_COMMON.format(text="text", time="timestamptz")

# v11: several processes on one PostgreSQL. `channel_leases`: which process may send on a
# channel (so a provider's rate budget is spent by one process at a time; see
# broadcaster/leases.py). SQLite is one process and holds every lease: the table exists but is
# unused. Event notifications: a statement that adds alert or reply events notifies
# `broadcaster_events` (payload: the table and the schema, so processes following another
# schema of the same database ignore it); listeners poll at once instead of at the next tick.
_V11_SQLITE = """
CREATE TABLE channel_leases (
    channel TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until TEXT NOT NULL
);
"""
_V11_POSTGRES = """
CREATE TABLE channel_leases (
    channel text PRIMARY KEY,
    holder text NOT NULL,
    lease_until timestamptz NOT NULL
);
CREATE FUNCTION broadcaster_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('broadcaster_events', TG_TABLE_NAME || ' ' || TG_TABLE_SCHEMA);
    RETURN NULL;
END $$;
CREATE TRIGGER alert_events_notify AFTER INSERT ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION broadcaster_notify_events();
CREATE TRIGGER reply_events_notify AFTER INSERT ON reply_events
    FOR EACH STATEMENT EXECUTE FUNCTION broadcaster_notify_events();
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "intake: alerts and api_tokens", _V1_SQLITE, _V1_POSTGRES),
    Migration(
        2,
        "fan-out and replies: deliveries, subscribers, replies, audit_log, cursors",
        _V2_SQLITE,
        _V2_POSTGRES,
    ),
    Migration(3, "delivery engine: claim, expiry and per-alert indexes", _V3_SQLITE, _V3_POSTGRES),
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
    Migration(6, "alert_events: what was published and when", _V6_SQLITE, _V6_POSTGRES),
    # A number the provider refuses for good (Twilio 21211 invalid, 21614 not mobile) is
    # flagged with the reason and left out of the SMS audience until an admin fixes it.
    Migration(
        7,
        "subscribers.flagged, flagged_at: numbers the provider refused, out of the audience",
        "ALTER TABLE subscribers ADD COLUMN flagged TEXT;\n"
        "ALTER TABLE subscribers ADD COLUMN flagged_at TEXT;",
        "ALTER TABLE subscribers ADD COLUMN flagged text, ADD COLUMN flagged_at timestamptz;",
    ),
    Migration(8, "replies: triage, position, media, state; poll_votes", _V8_SQLITE, _V8_POSTGRES),
    Migration(9, "reply_events: the responder feed; replies_cluster", _V9_SQLITE, _V9_POSTGRES),
    Migration(10, "alerts: template and approval decision", _V10_SQLITE, _V10_POSTGRES),
    Migration(11, "channel_leases; event notifications", _V11_SQLITE, _V11_POSTGRES),
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
        alert=Alert.model_validate_json(row[2]),
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
