"""DDL of schema steps 12 and 13: a counter of subscriber writes, so every process can tell
that its in-memory SMS audience index is out of date; the earlier trigger functions pinned to
their schema. Later steps go here too while this module stays under 400 lines.

Contract (as `schema_v6_v11`): each `V<n>_SQLITE` / `V<n>_POSTGRES` pair is one step of
`schema.MIGRATIONS` spelled for each backend; released strings are never edited; pure data,
imported only by `adapters.store.schema`.
"""

from __future__ import annotations

# v12: `subscriber_changes.version` grows with every write to `subscribers`: an insert, an
# update (opt-out, flag, import) or a delete, whichever process or tool made it (the CLI's
# `subscribers import`, another `serve` on the same PostgreSQL). Triggers keep it, so no
# write path can forget to. Each process polls it and reloads its audience index when it
# moves (`broadcaster.audience.DirectoryFollower`). SQLite only has row triggers: one counter
# update per row, in the writing transaction. PostgreSQL bumps it once per statement, so a
# 100,000-row import (one statement) does not rewrite one hot row 100,000 times. Its function
# keeps the schema it was created in (`SET search_path FROM CURRENT`), so a session writing
# `<schema>.subscribers` under another search_path bumps this schema's counter.
V12_SQLITE = """
CREATE TABLE subscriber_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO subscriber_changes (id, version) VALUES (1, 0);
CREATE TRIGGER subscribers_changed_on_insert AFTER INSERT ON subscribers
BEGIN
    UPDATE subscriber_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER subscribers_changed_on_update AFTER UPDATE ON subscribers
BEGIN
    UPDATE subscriber_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER subscribers_changed_on_delete AFTER DELETE ON subscribers
BEGIN
    UPDATE subscriber_changes SET version = version + 1 WHERE id = 1;
END;
"""
V12_POSTGRES = """
CREATE TABLE subscriber_changes (
    id integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO subscriber_changes (id, version) VALUES (1, 0);
CREATE FUNCTION subscribers_count_change() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE subscriber_changes SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END $$;
CREATE TRIGGER subscribers_changed AFTER INSERT OR UPDATE OR DELETE ON subscribers
    FOR EACH STATEMENT EXECUTE FUNCTION subscribers_count_change();
"""

# v13: the trigger functions of steps 6, 9 and 11 keep the schema they were created in, as
# step 12's does. Created without it, they resolved `alert_events` / `reply_events` through
# the *writing* session's search_path: a session on another search_path (an admin's psql, a
# tool) writing `<schema>.alerts` or `<schema>.replies` failed with UndefinedTableError, or,
# worse, wrote the events into another broadcaster schema on its path. FROM CURRENT takes
# the migrating session's search_path, which is the store's (`PostgresStore.open(schema=)`
# or the URL's `search_path`, set at connect time for every pooled connection).
# `broadcaster_notify_events` names no table (`pg_notify` is in pg_catalog, always searched)
# but is pinned too, so no trigger function of the store depends on its caller's path.
# Step 12's function is pinned again: databases that ran step 12 before its text gained
# `SET search_path FROM CURRENT` (a development build) have it unpinned; for the others this
# is a no-op. ALTER FUNCTION needs the migrating role to own the functions, as the role that
# ran the earlier steps does (a deployment that handed the tables to another role must run
# the migration as the functions' owner).
# SQLite triggers name tables of their own database only: nothing to do there.
V13_SQLITE = ""
V13_POSTGRES = """
ALTER FUNCTION alerts_record_event() SET search_path FROM CURRENT;
ALTER FUNCTION replies_record_event() SET search_path FROM CURRENT;
ALTER FUNCTION broadcaster_notify_events() SET search_path FROM CURRENT;
ALTER FUNCTION subscribers_count_change() SET search_path FROM CURRENT;
"""
