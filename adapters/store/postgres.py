"""`PostgresStore`: the `Store` port on PostgreSQL through an asyncpg connection pool.

Contract:
- `await PostgresStore.open(dsn)` creates a pool (1..10 connections) and checks that the
  server answers; `schema=` (or `server_settings={"search_path": ...}`) confines every
  statement to one schema, which tests use for isolation. Call `migrate()` before use.
- Every statement runs in autocommit unless it says otherwise, so a write has committed
  when its coroutine returns.
- `migrate()` is safe when several processes start at once: each step runs in its own
  transaction under `pg_advisory_xact_lock`, and re-checks whether it is still missing.
- asyncpg and socket errors leave as `StoreError` (see `postgres_base.translated`); using a
  closed store raises `StoreError`.

This module holds the store's life cycle (open, migrate, close, health) and its event
notifications; the methods of each concern are mixins the class inherits, each module
stating its own contract: `postgres_alerts` (intake, approval, alert reads),
`postgres_deliveries` (the delivery queue and channel leases), `postgres_replies` (replies,
responders, the audit log), `postgres_directory` (subscribers, API tokens). What they share
is in `postgres_base`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from adapters.store import schema
from adapters.store.postgres_alerts import PostgresAlerts
from adapters.store.postgres_base import DRIVER_ERRORS, translated
from adapters.store.postgres_deliveries import PostgresDeliveries
from adapters.store.postgres_directory import PostgresDirectory
from adapters.store.postgres_replies import PostgresReplies
from broadcaster.errors import StoreError

log = logging.getLogger(__name__)

# Any constant will do, as long as every broadcaster process uses the same one.
_MIGRATION_LOCK_KEY = 0x62636173745F6D67  # "bcast_mg"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresStore(PostgresAlerts, PostgresDeliveries, PostgresReplies, PostgresDirectory):
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
        with translated("open", connecting=True):
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
        with translated("migrate"):
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
        with translated("close"):
            await self._pool.close()

    async def ping(self) -> None:
        self._check_open()
        with translated("ping"):
            await self._pool.fetchval("SELECT 1")

    async def schema_version(self) -> int:
        self._check_open()
        with translated("schema_version"):
            version = await self._pool.fetchval("SELECT MAX(version) FROM schema_migrations")
        return int(version or 0)

    async def follow_events(self, on_event: Callable[[str], None]) -> None:
        """Call `on_event(table)` ("alert_events" or "reply_events") whenever a transaction
        that added events to this store's schema commits, in any process (LISTEN on a
        connection of its own). Runs until cancelled; a lost connection is re-opened after a
        pause (meanwhile the followers' polling carries on)."""
        delay = 0.5
        while True:
            try:
                with translated("listen", connecting=True):
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
            except DRIVER_ERRORS as exc:
                log.warning("event notifications failed (%s); reconnecting", exc)
            finally:
                if not conn.is_closed():
                    with contextlib.suppress(*DRIVER_ERRORS):
                        async with asyncio.timeout(2.0):  # not wait_for (gh-86296)
                            await conn.close()
            await asyncio.sleep(delay)


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
