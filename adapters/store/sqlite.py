"""`SqliteStore`: the `Store` port on SQLite (aiosqlite), with group commit for alert inserts.

Contract:
- `await SqliteStore.open(path)` opens (creating if needed) the database file; ":memory:"
  gives a private in-memory database for tests. Call `migrate()` before use.
- `insert_alert` returns only after the transaction holding the alert has committed.
  Callers are batched: one writer task takes every insert waiting (up to `max_batch`),
  runs them in one transaction and commits once, so N concurrent callers cost one commit,
  not N. A row the database rejects fails only its own caller; a failed BEGIN/COMMIT fails
  every caller of that batch. A caller cancelled while waiting may still have its alert
  committed; retrying with the same idempotency key then returns it with created=False.
- Reads go to a second, read-only connection (file databases), so they neither wait for a
  batch to commit nor see a batch that has not committed. Reads issued while others run
  are grouped into one trip to the reader's thread, each still its own statement failing
  alone. ":memory:" cannot be shared between connections, so there reads use the writer
  connection between batches.
- Every sqlite3 error leaves as `StoreError` (see `sqlite_base.translated`); using a closed store
  raises `StoreError`. `close()` finishes every insert already queued, then closes.

This module holds the store's life cycle (open, migrate, close, health); the methods of
each concern are mixins the class inherits, each module stating its own contract:
`sqlite_alerts` (intake, approval, alert reads), `sqlite_deliveries` (the delivery queue),
`sqlite_replies` (replies, responders, the audit log), `sqlite_directory` (subscribers, API
tokens). What they share, the write queue and its writer task among it, is in
`sqlite_base`; one batch's transaction is `sqlite_batch`.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime

import aiosqlite

from adapters.store import schema
from adapters.store.sqlite_alerts import SqliteAlerts
from adapters.store.sqlite_base import translated
from adapters.store.sqlite_deliveries import SqliteDeliveries
from adapters.store.sqlite_directory import SqliteDirectory
from adapters.store.sqlite_reads import GroupedReader
from adapters.store.sqlite_replies import SqliteReplies


class SqliteStore(SqliteAlerts, SqliteDeliveries, SqliteReplies, SqliteDirectory):
    """The Store port on one SQLite file. Use `await SqliteStore.open(path)`."""

    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection | None, max_batch: int
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._max_batch = max_batch
        # Held by each write transaction, so migrate/create_token (and reads on ":memory:")
        # never interleave with a batch on the shared writer connection.
        self._write_lock = asyncio.Lock()
        # Unbounded on purpose: each caller waits on its future, so the queue never holds
        # more than the number of concurrent callers; their own concurrency is the limit.
        self._queue = asyncio.Queue()
        self._closed = False
        # Concurrent reads share one trip to the reader's thread, as writes share a batch.
        self._reads = GroupedReader(reader) if reader is not None else None
        self._writer_task = asyncio.get_running_loop().create_task(
            self._run_writer(), name="sqlite-store-writer"
        )

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000, max_batch: int = 500
    ) -> SqliteStore:
        """Open the database at `path` (":memory:" for a private in-memory one)."""
        target = os.fspath(path)
        connections: list[aiosqlite.Connection] = []
        try:
            with translated("open"):
                writer = await _connect(target)
                connections.append(writer)
                await _configure(writer, busy_timeout_ms, read_only=False)
                reader = None
                if target != ":memory:":
                    reader = await _connect(target)
                    connections.append(reader)
                    await _configure(reader, busy_timeout_ms, read_only=True)
        except BaseException:
            for conn in connections:
                await conn.close()
            raise
        return cls(writer, reader, max_batch)

    async def migrate(self) -> int:
        """Apply missing migrations, each in its own BEGIN IMMEDIATE transaction: the
        write lock serialises processes starting together, and each step re-checks
        whether another process applied it meanwhile."""
        self._check_open()
        async with self._write_lock, self._transaction("migrate"):
            await self._writer.execute(schema.SQLITE_BOOTSTRAP)
            rows = await self._writer.execute_fetchall("SELECT version FROM schema_migrations")
            applied = {int(row[0]) for row in rows}
        for step in schema.MIGRATIONS:
            if step.version in applied:
                continue
            async with self._write_lock, self._transaction(f"migration {step.version}"):
                again = await self._writer.execute_fetchall(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (step.version,)
                )
                if again:
                    continue
                for statement in schema.sqlite_statements(step.sqlite_sql):
                    await self._writer.execute(statement)
                await self._writer.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (step.version, step.description, schema.utc_text(datetime.now(UTC))),
                )
        rows = await self._fetch("SELECT MAX(version) FROM schema_migrations", ())
        return int(rows[0][0])

    async def close(self) -> None:
        """Commit every queued insert, stop the writer, close the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if not self._writer_task.done():  # done early only if it was cancelled
            await self._writer_task
        with translated("close"):
            await self._writer.close()
            if self._reader is not None:
                await self._reader.close()

    async def ping(self) -> None:
        await self._fetch("SELECT 1", ())

    async def schema_version(self) -> int:
        rows = await self._fetch("SELECT MAX(version) FROM schema_migrations", ())
        return int(rows[0][0] or 0)

    @asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT on the writer, ROLLBACK on any error; sqlite3 errors
        leave as StoreError. IMMEDIATE takes the write lock up front, so a transaction never
        has to upgrade a read lock, which in WAL mode fails with SQLITE_BUSY at once."""
        with translated(action):
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield
                await self._writer.execute("COMMIT")
            except BaseException:
                # A failed COMMIT leaves the transaction open. The error that got us here is
                # the one to report; SQLite may also have rolled back already.
                with suppress(sqlite3.Error):
                    await self._writer.execute("ROLLBACK")
                raise


async def _connect(target: str) -> aiosqlite.Connection:
    # Autocommit mode (isolation_level=None): transactions are explicit BEGIN/COMMIT, so
    # the driver never opens one behind our back and SAVEPOINTs behave as documented.
    conn = aiosqlite.connect(target, isolation_level=None)
    try:
        return await conn
    except BaseException:
        # After a failed connect aiosqlite stops its worker thread, which later reports to
        # the event loop; wait for it so it cannot report to a loop that has since closed.
        await asyncio.to_thread(conn._thread.join, 5.0)
        raise


async def _configure(conn: aiosqlite.Connection, busy_timeout_ms: int, *, read_only: bool) -> None:
    # WAL: readers never block the writer nor see its uncommitted batch. synchronous=NORMAL
    # in WAL fsyncs only at checkpoints, yet a committed transaction is in the OS page cache
    # and survives the process dying (crash, kill -9), which is what "ack after commit"
    # promises. It may lose the last commits on power loss or OS crash; FULL would survive
    # that too, at one fsync per commit (group commit makes that cost per batch, not alert).
    await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    await conn.execute("PRAGMA foreign_keys = ON")
    if read_only:
        await conn.execute("PRAGMA query_only = ON")
        return
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = NORMAL")
