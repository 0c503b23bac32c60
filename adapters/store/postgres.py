"""`PostgresStore`: the `Store` port on PostgreSQL through an asyncpg connection pool.

Contract:
- `await PostgresStore.open(dsn)` creates a pool (1..10 connections) and checks that the
  server answers; `schema=` (or `server_settings={"search_path": ...}`) confines every
  statement to one schema, which tests use for isolation. Call `migrate()` before use.
- Every statement runs in autocommit unless it says otherwise, so a write has committed
  when its coroutine returns. `insert_alert` is one `INSERT ... ON CONFLICT DO NOTHING
  RETURNING seq` round trip when the alert is new; only on a conflict does a second
  statement read the earlier alert (in a fresh snapshot, so it sees a conflicting row that
  a concurrent transaction committed while we waited on it). PostgreSQL already does group
  commit across concurrent sessions, so no batching is needed here.
- `migrate()` is safe when several processes start at once: each step runs in its own
  transaction under `pg_advisory_xact_lock`, and re-checks whether it is still missing.
- asyncpg and socket errors leave as `StoreError` (see `_translated`); using a closed
  store raises `StoreError`.
- Note for readers of `seq`: identity values are taken before commit, so a smaller seq can
  become visible after a larger one. Paging is fine; a consumer tailing "seq > last seen"
  must allow for that (e.g. re-read a recent window).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import asyncpg

from adapters.store import schema
from alerts.models import format_cap_time
from broadcaster.errors import StoreError
from broadcaster.ports import ApiToken, InsertResult, NewAlert, Role, StoredAlert

# Any constant will do, as long as every broadcaster process uses the same one.
_MIGRATION_LOCK_KEY = 0x62636173745F6D67  # "bcast_mg"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Composed from constant column lists only, never from input, so S608 does not apply.
_COLS = schema.ALERT_READ_COLUMNS
_PLACEHOLDERS = ", ".join(f"${i}" for i in range(1, schema.ALERT_INSERT_COUNT + 1))
_INSERT_ALERT = (
    f"INSERT INTO alerts ({schema.ALERT_INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS}) "  # noqa: S608
    "ON CONFLICT DO NOTHING RETURNING seq"
)
_ALERT_BY_ID = f"SELECT {_COLS} FROM alerts WHERE id = $1"  # noqa: S608
_ALERT_BY_KEY = f"SELECT {_COLS} FROM alerts WHERE idempotency_key = $1"  # noqa: S608
_ALERT_BY_CAP = (
    f"SELECT {_COLS} FROM alerts "  # noqa: S608
    "WHERE sender = $1 AND identifier = $2 AND sent_text = $3"
)
_ALERTS_NEWEST = f"SELECT {_COLS} FROM alerts ORDER BY seq DESC LIMIT $1"  # noqa: S608
_ALERTS_BEFORE = f"SELECT {_COLS} FROM alerts WHERE seq < $1 ORDER BY seq DESC LIMIT $2"  # noqa: S608
_SQL_API_INSERT = (
    "INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at, revoked_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_SQL_API_BY_HASH = (
    "SELECT id, name, role, token_hash, created_at, expires_at, revoked_at "
    "FROM api_tokens WHERE token_hash = $1"
)


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@contextmanager
def _translated(action: str, *, connecting: bool = False) -> Iterator[None]:
    """The one place driver exceptions become StoreError. OSError/TimeoutError cover a
    server that is down or unreachable. While connecting, ValueError counts too: asyncpg's
    DSN parser raises a bare ValueError for a malformed DSN (e.g. a non-numeric port)."""
    errors = (*_DRIVER_ERRORS, ValueError) if connecting else _DRIVER_ERRORS
    try:
        yield
    except errors as exc:
        raise StoreError(f"postgres {action} failed: {exc}") from exc


class PostgresStore:
    """The Store port on PostgreSQL. Use `await PostgresStore.open(dsn)`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._closed = False

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
        with _translated("open", connecting=True):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                server_settings=settings or None,
            )
        return cls(pool)

    async def migrate(self) -> int:
        """Apply missing migrations, one transaction per step, under an advisory lock."""
        self._check_open()
        with _translated("migrate"):
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
        with _translated("close"):
            await self._pool.close()

    async def ping(self) -> None:
        self._check_open()
        with _translated("ping"):
            await self._pool.fetchval("SELECT 1")

    async def insert_alert(self, new: NewAlert) -> InsertResult:
        self._check_open()
        try:
            params = schema.alert_insert_values(new)
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"cannot encode alert {new.id}: {exc}") from exc
        with _translated("insert_alert"):
            seq = await self._pool.fetchval(_INSERT_ALERT, *params)
            if seq is not None:
                return InsertResult(schema.stored_alert_from_new(int(seq), new), True)
            # Same idempotency key first (the client's explicit intent), else the CAP key.
            row = None
            if new.idempotency_key is not None:
                row = await self._pool.fetchrow(_ALERT_BY_KEY, new.idempotency_key)
            if row is None:
                alert = new.alert
                row = await self._pool.fetchrow(
                    _ALERT_BY_CAP, alert.sender, alert.identifier, format_cap_time(alert.sent)
                )
        if row is None:
            raise StoreError(f"alert id {new.id} is already used by a different alert")
        return InsertResult(_alert(row), False)

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        self._check_open()
        with _translated("get_alert"):
            row = await self._pool.fetchrow(_ALERT_BY_ID, alert_id)
        return None if row is None else _alert(row)

    async def list_alerts(self, *, limit: int, before_seq: int | None = None) -> list[StoredAlert]:
        self._check_open()
        with _translated("list_alerts"):
            if before_seq is None:
                rows = await self._pool.fetch(_ALERTS_NEWEST, limit)
            else:
                rows = await self._pool.fetch(_ALERTS_BEFORE, before_seq, limit)
        return [_alert(row) for row in rows]

    async def count_alerts(self) -> int:
        self._check_open()
        with _translated("count_alerts"):
            count = await self._pool.fetchval("SELECT COUNT(*) FROM alerts")
        return int(count)

    async def create_token(self, token: ApiToken) -> None:
        self._check_open()
        with _translated("create_token"):
            await self._pool.execute(
                _SQL_API_INSERT,
                token.id,
                token.name,
                Role(token.role).value,
                token.token_hash,
                schema.as_utc(token.created_at),
                None if token.expires_at is None else schema.as_utc(token.expires_at),
                None if token.revoked_at is None else schema.as_utc(token.revoked_at),
            )

    async def find_token(self, token_hash: str) -> ApiToken | None:
        self._check_open()
        with _translated("find_token"):
            row = await self._pool.fetchrow(_SQL_API_BY_HASH, token_hash)
        if row is None:
            return None
        return ApiToken(
            id=row[0],
            name=row[1],
            role=Role(row[2]),
            token_hash=row[3],
            created_at=row[4],
            expires_at=row[5],
            revoked_at=row[6],
        )

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("postgres store is closed")


def _alert(row: Any) -> StoredAlert:
    # asyncpg returns timestamptz as aware UTC datetimes and jsonb as text.
    return schema.stored_alert_from_row(row, row[10])
