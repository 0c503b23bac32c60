"""API tokens on both stores: listing and revocation (create and lookup live in the stores).

Contract:
- `list` gives every token, revoked and expired ones included, oldest first (the hash is in
  the record, callers decide what to show: the CLI never prints it).
- Revocation sets `revoked_at` on the tokens chosen (by id, or every token of a name) that
  are not revoked yet, and appends the audit row `audit(revoked)` in the same transaction,
  so a revocation is never missing from the log. Already revoked tokens keep their time.
- Every fragment is a constant of this module: only values travel as parameters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters.store import responders_sql, schema
from broadcaster.audit import AuditEntry
from broadcaster.ports import ApiToken, Role

_COLUMNS = "id, name, role, token_hash, created_at, expires_at, revoked_at"

SQLITE_LIST = f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, id"  # noqa: S608
_SQLITE_REVOKE = (
    "UPDATE api_tokens SET revoked_at = ? "  # noqa: S608 - constant columns
    "WHERE revoked_at IS NULL AND (id = ? OR name = ?) "
    f"RETURNING {_COLUMNS}"
)

POSTGRES_LIST = f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, id"  # noqa: S608
POSTGRES_REVOKE = (
    "UPDATE api_tokens SET revoked_at = $1 "  # noqa: S608 - constant columns
    "WHERE revoked_at IS NULL AND (id = $2 OR name = $3) "
    f"RETURNING {_COLUMNS}"
)


def sqlite_token(row: Any) -> ApiToken:
    parse = schema.parse_utc_text
    return ApiToken(
        id=str(row[0]),
        name=str(row[1]),
        role=Role(row[2]),
        token_hash=str(row[3]),
        created_at=datetime.fromisoformat(row[4]),
        expires_at=parse(row[5]),
        revoked_at=parse(row[6]),
    )


def postgres_token(row: Any) -> ApiToken:
    return ApiToken(
        id=str(row[0]),
        name=str(row[1]),
        role=Role(row[2]),
        token_hash=str(row[3]),
        created_at=schema.as_utc(row[4]),
        expires_at=None if row[5] is None else schema.as_utc(row[5]),
        revoked_at=None if row[6] is None else schema.as_utc(row[6]),
    )


def selector(token_id: str | None, name: str | None) -> tuple[str | None, str | None]:
    """(id, name) parameters: exactly one of them is set, the other matches nothing."""
    if (token_id is None) == (name is None):
        raise ValueError("revoke by id or by name, not both or neither")
    return token_id, name


def sqlite_revoke(
    conn: sqlite3.Connection,
    token_id: str | None,
    name: str | None,
    at: datetime,
    audit: Callable[[list[ApiToken]], AuditEntry | None],
) -> list[ApiToken]:
    """Writer thread, inside a batch transaction."""
    params = (schema.utc_text(at), *selector(token_id, name))
    revoked = [sqlite_token(r) for r in conn.execute(_SQLITE_REVOKE, params).fetchall()]
    entry = audit(revoked)
    if entry is not None:
        responders_sql.sqlite_append_audit(conn, entry)
    return revoked
