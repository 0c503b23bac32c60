"""PostgreSQL: the store's trigger functions keep the schema they were migrated in (steps 12
and 13), so a session on any search_path that writes `<schema>.<table>` records the events of
that write in `<schema>` and wakes that schema's followers. The subscriber counter's case
(step 12) is in `test_subscriber_store`.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from adapters.store import schema
from adapters.store.postgres import PostgresStore
from broadcaster.ports import AlertEventKind, ReplyEventKind
from tests.integration.conftest import postgres_schema
from tests.integration.engine import until
from tests.integration.test_store import make_new

pytestmark = pytest.mark.postgres


async def test_an_outside_session_records_alert_and_reply_events_in_their_schema() -> None:
    """Writes to `<schema>.alerts`/`.replies` from another search_path add `<schema>`'s events."""
    async with postgres_schema() as (dsn, schema_name, _admin), postgres_schema() as (_, other, _):
        store = await PostgresStore.open(dsn, schema=schema_name, max_size=2)
        # The writer's own path leads to a broadcaster schema too: without step 13 the
        # triggers wrote the events there, silently, instead of failing.
        decoy = await PostgresStore.open(dsn, schema=other, max_size=1)
        writer = await asyncpg.connect(dsn, server_settings={"search_path": other})
        woken: list[str] = []
        follower: asyncio.Task[None] | None = None
        try:
            await store.migrate()
            await decoy.migrate()
            follower = asyncio.create_task(store.follow_events(woken.append))
            # It reports both tables once LISTEN is in place (the catch-up of a new listener).
            await until(lambda: len(woken) >= 2, 10, "the event follower to listen")
            woken.clear()
            new = make_new()
            placeholders = ", ".join(f"${i}" for i in range(1, schema.ALERT_INSERT_COUNT + 1))
            await writer.execute(
                f"INSERT INTO {schema_name}.alerts ({schema.ALERT_INSERT_COLUMNS}) "  # noqa: S608
                f"VALUES ({placeholders})",
                *schema.alert_insert_values(new),
            )
            reply_id = await writer.fetchval(
                f"INSERT INTO {schema_name}.replies "  # noqa: S608
                "(source, external_id, alert_id, text, received_at) "
                "VALUES ('web', 'tip-1', $1, 'smoke on Market St', now()) RETURNING id",
                new.id,
            )
            await writer.execute(
                f"UPDATE {schema_name}.replies SET state = 'acknowledged' WHERE id = $1",  # noqa: S608
                reply_id,
            )
            alert_events = await store.events_after(0, 10)
            assert [(e.alert_id, e.kind) for e in alert_events] == [
                (new.id, AlertEventKind.CREATED)
            ]
            reply_events = await store.reply_events_after(0, 10)
            assert [(e.reply_id, e.kind) for e in reply_events] == [
                (reply_id, ReplyEventKind.CREATED),
                (reply_id, ReplyEventKind.UPDATED),
            ]
            assert await decoy.events_after(0, 10) == []
            assert await decoy.reply_events_after(0, 10) == []
            await until(
                lambda: {"alert_events", "reply_events"} <= set(woken), 10, "both notifications"
            )
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            await writer.close()
            await decoy.close()
            await store.close()
