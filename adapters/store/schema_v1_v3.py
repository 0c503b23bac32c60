"""DDL of schema steps 1-3: the tables the service was built on (intake, fan-out, replies,
audit, cursors) and the delivery engine's indexes.

Contract:
- Each `V<n>_SQLITE` / `V<n>_POSTGRES` pair is one step of `schema.MIGRATIONS` spelled for
  each backend; the pair is kept side by side so the two spellings are read together.
- Released steps: these strings are never edited (a change is a new step). Only
  `adapters.store.schema` orders them into migrations; nothing else should import them.
- Pure data: no imports from the rest of the store, so `schema` can import it without a cycle.
"""

from __future__ import annotations

V1_SQLITE = """
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

V1_POSTGRES = """
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
V2_SQLITE = """
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

V2_POSTGRES = """
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
V3_SQLITE = _V3_COMMON.format(time="TEXT")
V3_POSTGRES = _V3_COMMON.format(time="timestamptz")
