"""What every part of `PostgresStore` shares: its pool, the closed check, error translation
and the helpers more than one concern needs.

Contract:
- `PostgresBase` declares the state `PostgresStore.__init__` sets (the pool, the closed
  flag) and `_check_open`; each per-concern mixin (`postgres_alerts`, `postgres_deliveries`,
  `postgres_replies`, `postgres_directory`) subclasses it, so each is type-checked against
  the attributes it really uses, and none reaches for another's.
- `translated` is the one place driver exceptions become `StoreError` (or `UnstorableText`
  for a character PostgreSQL cannot hold, which is bad input); `DRIVER_ERRORS` are the
  exceptions it translates (also those a lost LISTEN connection raises).
- `append_audit_in_transaction` appends to the audit log inside the caller's transaction,
  after the audit lock: an approval, a reply state change, a purge and a token revocation
  each write their audit row in the same transaction as the change it records.
It is its own module because the mixins and the store all import it: it must import none
of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import asyncpg

from adapters.store import responders_sql, schema
from broadcaster.audit import AuditEntry, AuditRecord
from broadcaster.errors import StoreError, UnstorableText

# InternalClientError: asyncpg resetting a connection the server dropped mid-query (seen when
# PostgreSQL restarts under load, tests/chaos/test_postgres_restart.py); untranslated, it
# killed the channel-lease keeper and stopped sending for good.
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

# PostgreSQL's text and jsonb cannot hold U+0000 ("invalid byte sequence for encoding UTF8:
# 0x00", "unsupported Unicode escape sequence").
UNSTORABLE = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)


@contextmanager
def translated(action: str, *, connecting: bool = False) -> Iterator[None]:
    """The one place driver exceptions become StoreError. OSError/TimeoutError cover a
    server that is down or unreachable. While connecting, ValueError counts too: asyncpg's
    DSN parser raises a bare ValueError for a malformed DSN (e.g. a non-numeric port)."""
    errors = (*DRIVER_ERRORS, ValueError) if connecting else DRIVER_ERRORS
    try:
        yield
    except UNSTORABLE as exc:
        # Input the database cannot hold (a NUL in text or JSON): bad input, not an outage
        # (a StoreError would be answered 503 and retried for ever).
        raise UnstorableText(f"the text holds a character that cannot be stored: {exc}") from exc
    except errors as exc:
        raise StoreError(f"postgres {action} failed: {exc}") from exc


class PostgresBase:
    """The state the mixins of `PostgresStore` rely on; `PostgresStore.__init__` sets it."""

    _pool: asyncpg.Pool
    _closed: bool

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("postgres store is closed")


async def append_audit_in_transaction(conn: Any, entry: AuditEntry) -> AuditRecord:
    """Append in `conn`'s open transaction, after taking the audit lock: appenders queue, so
    each reads the hash the previous one wrote (the lock is released at commit)."""
    await conn.execute(responders_sql.POSTGRES_LOCK, responders_sql.AUDIT_LOCK_KEY)
    prev_hash = await conn.fetchval(responders_sql.POSTGRES_LAST_HASH)
    digest, values = responders_sql.audit_values(entry, prev_hash)
    seq = await conn.fetchval(responders_sql.POSTGRES_AUDIT_INSERT, *values)
    return responders_sql.audit_record(int(seq), entry, prev_hash, digest)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else schema.as_utc(value)


def row_count(status: str) -> int:
    """The row count of a command tag such as `UPDATE 3`."""
    return int(status.rsplit(" ", 1)[-1])
