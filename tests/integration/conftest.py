"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

`store_factory` gives each test a private database (a fresh SQLite file under tmp_path,
or a fresh PostgreSQL schema dropped afterwards) and opens any number of stores on it;
`store` is one migrated store from it. PostgreSQL tests skip unless
BROADCASTER_TEST_POSTGRES_DSN names a database they may create schemas in.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from adapters.store.postgres import PostgresStore
from adapters.store.sqlite import SqliteStore
from broadcaster.ports import Store

POSTGRES_DSN_ENV = "BROADCASTER_TEST_POSTGRES_DSN"


class StoreFactory:
    """Opens stores on one test's private database and closes them all at teardown."""

    def __init__(self, backend: str, opener: Callable[[], Awaitable[Store]]) -> None:
        self.backend = backend
        self._opener = opener
        self._opened: list[Store] = []

    async def open(self, *, migrate: bool = True) -> Store:
        store = await self._opener()
        self._opened.append(store)
        if migrate:
            await store.migrate()
        return store

    async def close_all(self) -> None:
        for store in self._opened:
            await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    if request.param == "sqlite":
        path = tmp_path / "store.db"

        async def open_sqlite() -> Store:
            return await SqliteStore.open(path)

        factory = StoreFactory("sqlite", open_sqlite)
        yield factory
        await factory.close_all()
        return

    async with postgres_schema() as (dsn, schema_name, _admin):

        async def open_postgres() -> Store:
            return await PostgresStore.open(dsn, schema=schema_name, max_size=10)

        factory = StoreFactory("postgres", open_postgres)
        try:
            yield factory
        finally:
            await factory.close_all()


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[tuple[str, str, asyncpg.Connection]]:
    """(DSN, a fresh schema's name, an admin connection on the default search_path); the
    schema is dropped afterwards. Skips the test when no DSN is given."""
    dsn = os.environ.get(POSTGRES_DSN_ENV)
    if not dsn:
        pytest.skip(f"{POSTGRES_DSN_ENV} not set: PostgreSQL store tests need a database")
    schema_name = f"t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema_name}")
        yield dsn, schema_name, admin
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE")
        await admin.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory.open()
