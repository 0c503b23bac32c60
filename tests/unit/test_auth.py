"""Tokens: hashed storage, roles, expiry and revocation (in-memory store, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster.auth import (
    Authenticator,
    FailureLimiter,
    create_token,
    hash_token,
    require_role,
)
from broadcaster.errors import AuthError
from broadcaster.ports import Role
from tests.support.fake_store import MemoryStore


async def test_token_is_stored_only_as_its_hash() -> None:
    """The secret is returned once; the store holds only its SHA-256."""
    store = MemoryStore()
    secret, record = await create_token(store, role=Role.ISSUER, name="desk")
    assert secret.startswith("bc_")
    assert len(secret) > 40
    assert record.token_hash == hash_token(secret)
    assert all(secret not in repr(t) for t in store.tokens.values())


async def test_authenticate_and_roles() -> None:
    """A valid token authenticates; roles are enforced, admin may do anything."""
    store = MemoryStore()
    secret, _ = await create_token(store, role=Role.RESPONDER, name="r")
    token = await Authenticator(store).authenticate(f"Bearer {secret}")
    require_role(token, Role.RESPONDER)
    with pytest.raises(AuthError) as info:
        require_role(token, Role.ISSUER)
    assert info.value.status == 403
    admin_secret, _ = await create_token(store, role=Role.ADMIN, name="a")
    require_role(await Authenticator(store).authenticate(f"Bearer {admin_secret}"), Role.ISSUER)


async def test_expired_and_revoked_tokens_fail() -> None:
    """Expired and revoked tokens are refused with 401."""
    store = MemoryStore()
    expired, _ = await create_token(
        store, role=Role.ISSUER, name="e", valid_for=timedelta(seconds=-1)
    )
    with pytest.raises(AuthError, match="expired"):
        await Authenticator(store).authenticate(f"Bearer {expired}")
    live, _ = await create_token(store, role=Role.ISSUER, name="l")
    store.revoke_all(datetime.now(UTC))
    with pytest.raises(AuthError, match="revoked"):
        await Authenticator(store, cache_seconds=0).authenticate(f"Bearer {live}")


async def test_lookups_are_cached_briefly() -> None:
    """Repeated use of a token within the cache window costs one store lookup."""
    store = MemoryStore()
    secret, _ = await create_token(store, role=Role.ISSUER, name="d")
    now = [0.0]
    auth = Authenticator(store, cache_seconds=5, clock=lambda: now[0])
    for _ in range(10):
        await auth.authenticate(f"Bearer {secret}")
    assert store.token_lookups == 1
    now[0] = 6.0
    await auth.authenticate(f"Bearer {secret}")
    assert store.token_lookups == 2


def test_failure_limiter_slides_over_a_minute() -> None:
    """Past `limit` failures a client waits until the oldest is a minute old; others never."""
    now = [0.0]
    limiter = FailureLimiter(3, clock=lambda: now[0])
    for second in (0.0, 10.0, 20.0):
        now[0] = second
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    now[0] = 30.0
    assert limiter.retry_after("a") == pytest.approx(30.0)
    assert limiter.retry_after("b") == 0
    now[0] = 60.0
    assert limiter.retry_after("a") == 0


async def test_token_use_is_audited_once_a_minute_per_token() -> None:
    """`token.used` is written at most once per token per minute, with the route."""
    store = MemoryStore()
    secret, token = await create_token(store, role=Role.ISSUER, name="desk")
    now = [0.0]
    auth = Authenticator(store, clock=lambda: now[0])
    for second in (0.0, 1.0, 59.0, 61.0):
        now[0] = second
        await auth.authenticate(f"Bearer {secret}", client="10.0.0.1", route="GET /v1/alerts")
    used = [r for r in store.audit if r.action == "token.used"]
    assert [(r.actor, r.detail["route"], r.detail["token_id"]) for r in used] == [
        ("desk", "GET /v1/alerts", token.id)
    ] * 2
