"""Tokens: hashed storage, roles, expiry and revocation (in-memory store, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster.auth import Authenticator, create_token, hash_token, require_role
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
