"""Subscribers and API tokens on PostgreSQL: the two registries of `PostgresStore` outside
the alert flow, one of the people alerts go to, one of the clients that may call the API.

Contract:
- Subscribers: statements, encoding and decoding are in `subscribers_sql` (its contract says
  what an upsert may change); each method here is one statement in autocommit.
- API tokens: create and find by hash are the statements below; listing and revocation are
  in `tokens_sql`. A revocation and its audit row share one transaction.
They share a module because each is a handful of short methods over its own SQL module,
and neither touches alerts, deliveries or replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from adapters.store import schema, subscribers_sql, tokens_sql
from adapters.store.postgres_base import (
    PostgresBase,
    append_audit_in_transaction,
    row_count,
    translated,
    utc_or_none,
)
from broadcaster.audit import AuditEntry
from broadcaster.ports import ApiToken, Role, Subscriber

_SQL_API_INSERT = (
    "INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at, revoked_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_SQL_API_BY_HASH = (
    "SELECT id, name, role, token_hash, created_at, expires_at, revoked_at "
    "FROM api_tokens WHERE token_hash = $1"
)


class PostgresDirectory(PostgresBase):
    """Subscribers and API tokens; a mixin of `PostgresStore`."""

    # --- Subscribers ------------------------------------------------------------------------

    async def upsert_subscribers(
        self, subscribers: Sequence[Subscriber], now: datetime
    ) -> tuple[int, int]:
        self._check_open()
        unique = subscribers_sql.unique_by_phone(subscribers)
        if not unique:
            return 0, 0
        args = subscribers_sql.postgres_upsert_args(unique, now)
        with translated("upsert_subscribers"):
            # One statement: its own transaction in autocommit.
            rows = await self._pool.fetch(subscribers_sql.POSTGRES_UPSERT, *args)
        # An aggregate without GROUP BY returns exactly one row.
        return int(rows[0][0]), int(rows[0][1])

    async def get_subscriber(self, phone: str) -> Subscriber | None:
        self._check_open()
        with translated("get_subscriber"):
            row = await self._pool.fetchrow(subscribers_sql.POSTGRES_BY_PHONE, phone)
        if row is None:
            return None
        return subscribers_sql.subscriber_from_row(row, row[7], row[8], row[10])

    async def list_subscribers(
        self, *, limit: int, after_id: int | None = None
    ) -> list[Subscriber]:
        self._check_open()
        if limit <= 0:
            return []
        with translated("list_subscribers"):
            rows = await self._pool.fetch(subscribers_sql.POSTGRES_PAGE, after_id or 0, limit)
        decode = subscribers_sql.groups_decoder()
        return [
            subscribers_sql.subscriber_from_row(row, row[7], row[8], row[10], decode)
            for row in rows
        ]

    async def delete_subscriber(self, phone: str) -> bool:
        self._check_open()
        with translated("delete_subscriber"):
            status = await self._pool.execute(subscribers_sql.POSTGRES_DELETE, phone)
        return row_count(status) > 0

    async def set_opted_out(self, phone: str, at: datetime | None) -> bool:
        self._check_open()
        with translated("set_opted_out"):
            status = await self._pool.execute(
                subscribers_sql.POSTGRES_SET_OPTED_OUT, phone, utc_or_none(at)
            )
        return row_count(status) > 0

    async def flag_subscriber(self, phone: str, reason: str | None, at: datetime | None) -> bool:
        self._check_open()
        flagged, flagged_at = subscribers_sql.flag_values(reason, at)
        with translated("flag_subscriber"):
            status = await self._pool.execute(
                subscribers_sql.POSTGRES_FLAG, phone, flagged, flagged_at
            )
        return row_count(status) > 0

    async def active_subscribers(self) -> list[Subscriber]:
        self._check_open()
        with translated("active_subscribers"):
            owned = [await self._pool.fetch(subscribers_sql.POSTGRES_ACTIVE)]
        return await asyncio.to_thread(subscribers_sql.active_from_owned_rows, owned)

    async def subscribers_version(self) -> int:
        self._check_open()
        with translated("subscribers_version"):
            version = await self._pool.fetchval(subscribers_sql.VERSION)
        return int(version)

    # --- API tokens (listing and revocation: adapters.store.tokens_sql) ---------------------

    async def create_token(self, token: ApiToken) -> None:
        self._check_open()
        with translated("create_token"):
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
        with translated("find_token"):
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

    async def list_tokens(self) -> list[ApiToken]:
        self._check_open()
        with translated("list_tokens"):
            rows = await self._pool.fetch(tokens_sql.POSTGRES_LIST)
        return [tokens_sql.postgres_token(r) for r in rows]

    async def revoke_tokens(
        self,
        *,
        token_id: str | None = None,
        name: str | None = None,
        at: datetime,
        audit: Callable[[list[ApiToken]], AuditEntry | None],
    ) -> list[ApiToken]:
        self._check_open()
        params = tokens_sql.selector(token_id, name)
        with translated("revoke_tokens"):
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(tokens_sql.POSTGRES_REVOKE, schema.as_utc(at), *params)
                revoked = [tokens_sql.postgres_token(r) for r in rows]
                entry = audit(revoked)
                if entry is not None:
                    await append_audit_in_transaction(conn, entry)
        return revoked
