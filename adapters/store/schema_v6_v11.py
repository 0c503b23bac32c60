"""DDL of schema steps 6 and 8-11: alert and reply events (written by triggers, announced by
notifications), listening (reply triage, poll votes), approval decisions and channel leases.
Steps 4, 5 and 7 are one-liners spelled in `schema.MIGRATIONS` itself.

Contract:
- Each `V<n>_SQLITE` / `V<n>_POSTGRES` pair is one step of `schema.MIGRATIONS` spelled for
  each backend; the pair is kept side by side so the two spellings are read together.
- Released steps: these strings are never edited (a change is a new step, added here while
  this module stays under 400 lines, else in a new `schema_v<first>_v<last>` module). Only
  `adapters.store.schema` orders them into migrations; nothing else should import them.
- Pure data: no imports from the rest of the store, so `schema` can import it without a cycle.
"""

from __future__ import annotations

# v6: alert events, the public record of what was published and when (SSE ids, feeds, page
# caches). Written by triggers, so every path that makes an alert public (an insert in state
# accepted, an approval later) records its event in the same transaction, with no extra
# work on the intake path. Kinds: created (Alert), updated (Update), cancelled (Cancel).
V6_SQLITE = """
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
V6_POSTGRES = """
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
V8_SQLITE = _V8_COMMON.format(json="TEXT", real="REAL", text="TEXT", time="TEXT", bigint="INTEGER")
V8_POSTGRES = _V8_COMMON.format(
    json="jsonb", real="double precision", text="text", time="timestamptz", bigint="bigint"
)

# v9: the responder feed. `reply_events` is what responders' streams follow (new replies and
# changes of state or cluster), written by triggers in the transaction that made the change,
# as alert_events are; AUTOINCREMENT so an id is never reused after a retention purge.
# `replies_cluster` counts the reports of one cluster.
V9_SQLITE = """
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
V9_POSTGRES = """
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
V10_SQLITE = _V10_COMMON.format(text="TEXT", time="TEXT")
V10_POSTGRES = _V10_COMMON.format(text="text", time="timestamptz")

# v11: several processes on one PostgreSQL. `channel_leases`: which process may send on a
# channel (so a provider's rate budget is spent by one process at a time; see
# broadcaster/leases.py). SQLite is one process and holds every lease: the table exists but is
# unused. Event notifications: a statement that adds alert or reply events notifies
# `broadcaster_events` (payload: the table and the schema, so processes following another
# schema of the same database ignore it); listeners poll at once instead of at the next tick.
V11_SQLITE = """
CREATE TABLE channel_leases (
    channel TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until TEXT NOT NULL
);
"""
V11_POSTGRES = """
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
