"""Bearer-token authentication and role checks.

Tokens are random (256 bits), shown once at creation, and stored only as their SHA-256: a leaked
database does not leak usable tokens. Lookup is by hash, so no secret is ever compared byte by
byte; the cache holds hashes for a few seconds so that intake does not pay a database round trip
per request, which bounds how long a revoked token keeps working (`cache_seconds`).

Why a lookup by hash is safe against timing attacks: the attacker controls the presented
token, but what the database index and the cache dict compare is SHA-256 of it. Learning
from response times how many leading bytes of a *hash* matched tells nothing usable: to
extend the match the attacker would have to find a preimage whose hash starts with the
known prefix, and a matching hash prefix says nothing about the secret's bytes (256 random
bits). So no `hmac.compare_digest` is needed here; it is used wherever a secret itself (a
MAC, a signature, a CSRF token) is compared.

Failed authentication (a presented token that is malformed, unknown, expired or revoked) is
counted per client (IP) in a sliding minute: past `failures_per_minute`, every further
attempt from that client that presents a credential is refused with `AuthThrottled` (429,
`Retry-After`) before any lookup, right token or not, so guessing is slowed to that rate;
other clients are not affected. A request with no credential at all is a plain 401 and is
not counted (it guesses nothing). Every 401/429 increments `on_failure(reason)`.

Each successful authentication with a `route` is recorded in the audit log as
`token.used` at most once per token per `use_interval` (60 s) in this process: enough to
say who used which token when, without a row per request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from broadcaster.audit import AuditEntry, Principal, actor_detail, record, utc_iso
from broadcaster.errors import AuthError, AuthThrottled, StoreError
from broadcaster.ports import ApiToken, Role, Store

log = logging.getLogger(__name__)

TOKEN_PREFIX = "bc_"  # noqa: S105 - a visible prefix, not a secret


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_token(
    store: Store,
    *,
    role: Role,
    name: str,
    valid_for: timedelta | None = None,
    actor: Principal | str = "system",
) -> tuple[str, ApiToken]:
    """Create and store a token and audit `token.create` (id, name, role, expiry; never the
    secret or its hash); return (secret, record). The secret is not stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    token = ApiToken(
        id=uuid.uuid4().hex,
        name=name,
        role=role,
        token_hash=hash_token(secret),
        created_at=now,
        expires_at=now + valid_for if valid_for else None,
    )
    await store.create_token(token)
    await record(store, actor, "token.create", **token_fields(token))
    return secret, token


def token_fields(token: ApiToken) -> dict[str, str | None]:
    """What may be shown of a token (audit rows, `token list`): never the secret or hash."""
    return {
        "id": token.id,
        "name": token.name,
        "role": Role(token.role).value,
        "created_at": utc_iso(token.created_at),
        "expires_at": None if token.expires_at is None else utc_iso(token.expires_at),
        "revoked_at": None if token.revoked_at is None else utc_iso(token.revoked_at),
    }


async def revoke_tokens(
    store: Store,
    *,
    token_id: str | None = None,
    name: str | None = None,
    actor: Principal | str = "system",
) -> list[ApiToken]:
    """Revoke the token with this id, or every live token of this name, now; audited as
    `token.revoke` (the ids and names) in the same transaction. Other processes refuse it
    within their cache time (`Authenticator.cache_seconds`)."""
    at = datetime.now(UTC)
    actor_name, identity = actor_detail(actor)

    def audit(revoked: list[ApiToken]) -> AuditEntry | None:
        if not revoked:
            return None
        detail = {
            "tokens": [{"id": t.id, "name": t.name, "role": Role(t.role).value} for t in revoked],
            "by": "id" if token_id is not None else "name",
            **identity,
        }
        return AuditEntry(at=at, actor=actor_name, action="token.revoke", detail=detail)

    return await store.revoke_tokens(token_id=token_id, name=name, at=at, audit=audit)


class FailureLimiter:
    """Failed attempts per client in a sliding window; the least recently seen client is
    forgotten past `max_clients` (memory stays bounded under a spray of addresses)."""

    def __init__(
        self,
        limit: int,
        window_seconds: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._max = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """0 when `client` may try; else the seconds until its oldest counted failure ages
        out of the window."""
        failures = self._failures.get(client)
        if failures is None:
            return 0.0
        now = self._clock()
        while failures and now - failures[0] >= self._window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return 0.0
        if len(failures) < self._limit:
            return 0.0
        return max(0.0, self._window - (now - failures[0]))

    def failed(self, client: str) -> None:
        failures = self._failures.get(client)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self._limit)
            while len(self._failures) > self._max:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(client)
        failures.append(self._clock())


class Authenticator:
    """Turns an `Authorization` header into the token's record, or raises AuthError."""

    def __init__(
        self,
        store: Store,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        failures: FailureLimiter | None = None,
        on_failure: Callable[[str], object] | None = None,
        use_interval: float = 60.0,
    ) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiToken | None]] = {}
        self._failures = failures
        self._on_failure = on_failure
        self._use_interval = use_interval
        self._used: dict[str, float] = {}

    async def authenticate(
        self, authorization: str | None, *, client: str | None = None, route: str | None = None
    ) -> ApiToken:
        """The token of a `Bearer` header. `client` (the caller's IP) enables the failure
        limit; `route` (e.g. "GET /v1/alerts") records the use in the audit log."""
        if not authorization:
            self._failed("missing")
            raise AuthError("missing Authorization: Bearer <token> header")
        if client is not None and self._failures is not None:
            wait = self._failures.retry_after(client)
            if wait > 0:
                self._failed("throttled")
                raise AuthThrottled(
                    "too many failed authentications from this address; try again later",
                    retry_after=wait,
                )
        try:
            scheme, _, secret = authorization.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise AuthError("Authorization header must be 'Bearer <token>'")
            token = await self.authenticate_hash(hash_token(secret.strip()))
        except AuthError as exc:
            if client is not None and self._failures is not None:
                self._failures.failed(client)
            self._failed(_reason(exc.detail))
            raise
        if route is not None:
            await self.note_use(token, route)
        return token

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

    async def note_use(self, token: ApiToken, route: str) -> None:
        """Audit `token.used` with the route, at most once per token per `use_interval`.
        A store failure is logged (the request goes on) and the next use tries again."""
        now = self._clock()
        last = self._used.get(token.id)
        if last is not None and now - last < self._use_interval:
            return
        if len(self._used) > 10_000:
            self._used.clear()
        self._used[token.id] = now  # before awaiting: concurrent requests record once
        try:
            await record(self._store, token, "token.used", route=route, role=token.role.value)
        except StoreError as exc:
            self._used.pop(token.id, None)
            log.warning("could not audit the use of token %s: %s", token.name, exc)

    def forget(self) -> None:
        """Drop cached lookups (a revocation in this process takes effect at once)."""
        self._cache.clear()

    def _failed(self, reason: str) -> None:
        if self._on_failure is not None:
            self._on_failure(reason)

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


def _reason(detail: str) -> str:
    """The metric label of a failed authentication."""
    for reason in ("unknown", "revoked", "expired"):
        if reason in detail:
            return reason
    return "malformed"


def require_role(token: ApiToken, *roles: Role) -> None:
    """Raise AuthError(403) unless the token has one of `roles`; admin may do anything."""
    if token.role is Role.ADMIN or token.role in roles:
        return
    wanted = ", ".join(r.value for r in roles)
    raise AuthError(f"role {token.role.value} may not do this (needs {wanted})", status=403)
