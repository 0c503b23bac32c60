"""Bearer-token authentication and role checks.

Tokens are random (256 bits), shown once at creation, and stored only as their SHA-256: a leaked
database does not leak usable tokens. Lookup is by hash, so no secret is ever compared byte by
byte; the cache holds hashes for a few seconds so that intake does not pay a database round trip
per request, which bounds how long a revoked token keeps working (`cache_seconds`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from broadcaster.errors import AuthError
from broadcaster.ports import ApiToken, Role, Store

TOKEN_PREFIX = "bc_"  # noqa: S105 - a visible prefix, not a secret


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_token(
    store: Store, *, role: Role, name: str, valid_for: timedelta | None = None
) -> tuple[str, ApiToken]:
    """Create and store a token; return (secret, record). The secret is not stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    record = ApiToken(
        id=uuid.uuid4().hex,
        name=name,
        role=role,
        token_hash=hash_token(secret),
        created_at=now,
        expires_at=now + valid_for if valid_for else None,
    )
    await store.create_token(record)
    return secret, record


class Authenticator:
    """Turns an `Authorization` header into the token's record, or raises AuthError."""

    def __init__(
        self,
        store: Store,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiToken | None]] = {}

    async def authenticate(self, authorization: str | None) -> ApiToken:
        if not authorization:
            raise AuthError("missing Authorization: Bearer <token> header")
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthError("Authorization header must be 'Bearer <token>'")
        return await self.authenticate_hash(hash_token(secret.strip()))

    async def authenticate_hash(self, token_hash: str) -> ApiToken:
        """The token with this SHA-256 (what a signed dashboard session or stream ticket
        carries), checked as `authenticate` checks a bearer token."""
        token = await self._lookup(token_hash)
        if token is None:
            raise AuthError("unknown token")
        now = datetime.now(UTC)
        if token.revoked_at is not None and token.revoked_at <= now:
            raise AuthError("token revoked")
        if token.expires_at is not None and token.expires_at <= now:
            raise AuthError("token expired")
        return token

    async def _lookup(self, token_hash: str) -> ApiToken | None:
        now = self._clock()
        cached = self._cache.get(token_hash)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        token = await self._store.find_token(token_hash)
        if len(self._cache) > 10_000:  # unknown tokens must not grow memory without bound
            self._cache.clear()
        self._cache[token_hash] = (now, token)
        return token


def require_role(token: ApiToken, *roles: Role) -> None:
    """Raise AuthError(403) unless the token has one of `roles`; admin may do anything."""
    if token.role is Role.ADMIN or token.role in roles:
        return
    wanted = ", ".join(r.value for r in roles)
    raise AuthError(f"role {token.role.value} may not do this (needs {wanted})", status=403)
