"""Subscribers and API tokens on SQLite: the two registries of `SqliteStore` outside the
alert flow, one of the people alerts go to, one of the clients that may call the API.

Contract:
- Subscribers: statements, encoding and the writer-thread functions are in
  `subscribers_sql` (its contract says what an upsert may change); writes are writer jobs.
- API tokens: create and find by hash are the statements below; listing and revocation are
  in `tokens_sql`. A revocation and its audit row commit in one batch transaction.
  `create_token` writes outside the batches, as one autocommit statement under the write
  lock.
They share a module because each is a handful of short methods over its own SQL module,
and neither touches alerts, deliveries or replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from adapters.store import schema, subscribers_sql, tokens_sql
from adapters.store.sqlite_base import SqliteBase, translated
from broadcaster.audit import AuditEntry
from broadcaster.ports import ApiToken, Role, Subscriber

_SQL_API_INSERT = (
    "INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at, revoked_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SQL_API_BY_HASH = (
    "SELECT id, name, role, token_hash, created_at, expires_at, revoked_at "
    "FROM api_tokens WHERE token_hash = ?"
)


class SqliteDirectory(SqliteBase):
    """Subscribers and API tokens; a mixin of `SqliteStore`."""

    # --- subscribers ----------------------------------------------------------------------

    async def upsert_subscribers(
        self, subscribers: Sequence[Subscriber], now: datetime
    ) -> tuple[int, int]:
        rows = subscribers_sql.sqlite_upsert_rows(subscribers_sql.unique_by_phone(subscribers), now)
        if not rows:
            return 0, 0
        counts: tuple[int, int] = await self._run_job(
            lambda conn: subscribers_sql.sqlite_upsert(conn, rows)
        )
        return counts

    async def get_subscriber(self, phone: str) -> Subscriber | None:
        rows = await self._fetch(subscribers_sql.SQLITE_BY_PHONE, (phone,))
        return _subscriber(rows[0]) if rows else None

    async def list_subscribers(
        self, *, limit: int, after_id: int | None = None
    ) -> list[Subscriber]:
        if limit <= 0:
            return []
        rows = await self._fetch(subscribers_sql.SQLITE_PAGE, (after_id or 0, limit))
        decode = subscribers_sql.groups_decoder()
        return [_subscriber(row, decode) for row in rows]

    async def delete_subscriber(self, phone: str) -> bool:
        deleted: bool = await self._run_job(lambda conn: subscribers_sql.sqlite_delete(conn, phone))
        return deleted

    async def set_opted_out(self, phone: str, at: datetime | None) -> bool:
        at_text = schema.utc_text(at)
        found: bool = await self._run_job(
            lambda conn: subscribers_sql.sqlite_set_opted_out(conn, phone, at_text)
        )
        return found

    async def flag_subscriber(self, phone: str, reason: str | None, at: datetime | None) -> bool:
        flagged, flagged_at = subscribers_sql.flag_values(reason, at)
        at_text = schema.utc_text(flagged_at)
        found: bool = await self._run_job(
            lambda conn: subscribers_sql.sqlite_flag(conn, phone, flagged, at_text)
        )
        return found

    async def active_subscribers(self) -> list[Subscriber]:
        owned = [await self._fetch(subscribers_sql.SQLITE_ACTIVE, ())]
        return await asyncio.to_thread(subscribers_sql.active_from_owned_rows, owned)

    async def subscribers_version(self) -> int:
        rows = await self._fetch(subscribers_sql.VERSION, ())
        return int(rows[0][0])

    # --- API tokens (listing and revocation: adapters.store.tokens_sql) ---------------------

    async def create_token(self, token: ApiToken) -> None:
        self._check_open()
        values = (
            token.id,
            token.name,
            Role(token.role).value,
            token.token_hash,
            schema.utc_text(token.created_at),
            schema.utc_text(token.expires_at),
            schema.utc_text(token.revoked_at),
        )
        # One statement in autocommit mode is its own committed transaction.
        async with self._write_lock:
            with translated("create_token"):
                await self._writer.execute(_SQL_API_INSERT, values)

    async def find_token(self, token_hash: str) -> ApiToken | None:
        rows = await self._fetch(_SQL_API_BY_HASH, (token_hash,))
        if not rows:
            return None
        ident, name, role, stored_hash, created, expires, revoked = rows[0]
        parse = schema.parse_utc_text
        created_at = datetime.fromisoformat(created)
        return ApiToken(
            ident, name, Role(role), stored_hash, created_at, parse(expires), parse(revoked)
        )

    async def list_tokens(self) -> list[ApiToken]:
        return [tokens_sql.sqlite_token(r) for r in await self._fetch(tokens_sql.SQLITE_LIST, ())]

    async def revoke_tokens(
        self,
        *,
        token_id: str | None = None,
        name: str | None = None,
        at: datetime,
        audit: Callable[[list[ApiToken]], AuditEntry | None],
    ) -> list[ApiToken]:
        tokens_sql.selector(token_id, name)
        revoked: list[ApiToken] = await self._run_job(
            lambda conn: tokens_sql.sqlite_revoke(conn, token_id, name, at, audit)
        )
        return revoked


def _subscriber(
    row: Sequence[Any], decode: Callable[[str], tuple[str, ...]] | None = None
) -> Subscriber:
    parse = schema.parse_utc_text
    return subscribers_sql.subscriber_from_row(
        row, parse(row[7]), datetime.fromisoformat(row[8]), parse(row[10]), decode
    )
