"""Token lifecycle: list, revoke (store, CLI, refused after the cache time), expiry, and the
per-IP limit on failed authentication."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from adapters.main import main
from adapters.store.sqlite import SqliteStore
from broadcaster.auth import create_token, hash_token, revoke_tokens
from broadcaster.ports import ApiToken, Role, Store
from tests.conftest import start_service


async def test_store_lists_and_revokes_with_an_audit_row(store: Store) -> None:
    """revoke_tokens by id or name sets revoked_at once, with its audit row, on every store."""
    _, first = await create_token(store, role=Role.ISSUER, name="desk")
    _, second = await create_token(store, role=Role.APPROVER, name="desk")
    _, other = await create_token(store, role=Role.ADMIN, name="ops", actor="cli")
    assert [t.id for t in await store.list_tokens()] == [first.id, second.id, other.id]
    [revoked] = await revoke_tokens(store, token_id=other.id, actor="cli")
    assert (revoked.id, revoked.revoked_at is not None) == (other.id, True)
    assert {t.id for t in await revoke_tokens(store, name="desk")} == {first.id, second.id}
    assert await revoke_tokens(store, name="desk") == []
    assert all(t.revoked_at is not None for t in await store.list_tokens())
    rows = await store.audit_rows(0, 100)
    assert [(r.actor, r.action) for r in rows] == [
        ("system", "token.create"),
        ("system", "token.create"),
        ("cli", "token.create"),
        ("cli", "token.revoke"),
        ("system", "token.revoke"),
    ]
    assert rows[3].detail["tokens"] == [{"id": other.id, "name": "ops", "role": "admin"}]
    assert all("hash" not in str(r.detail) for r in rows)


def test_token_cli_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """token create --valid-for, list (never secrets or hashes), revoke --name / --id."""
    config = tmp_path / "b.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "b.db"}"\n')
    base = ["--config", str(config)]
    create = ["token", "create", "--role", "issuer", "--name", "desk", *base]
    assert main([*create, "--valid-for", "30"]) == 0
    secret = capsys.readouterr().out.splitlines()[-1]
    assert main([*create, "--valid-for", "0"]) == 2
    capsys.readouterr()
    assert main(["token", "create", "--role", "admin", "--name", "ops", *base]) == 0
    capsys.readouterr()
    assert main(["token", "list", *base]) == 0
    listing = capsys.readouterr().out
    assert secret not in listing
    assert hash_token(secret) not in listing
    lines = listing.splitlines()
    assert lines[0].split("\t")[:4] == ["id", "name", "role", "state"]
    desk = lines[1].split("\t")
    assert desk[1:4] == ["desk", "issuer", "active"]
    assert desk[5] != "-"  # expires in 30 days
    assert main(["token", "revoke", "--name", "desk", *base]) == 0
    assert f"revoked issuer token {desk[0]} ('desk')" in capsys.readouterr().out
    assert main(["token", "revoke", "--name", "desk", *base]) == 1
    assert "no live token matches" in capsys.readouterr().err
    ops_id = lines[2].split("\t")[0]
    assert main(["token", "revoke", "--id", ops_id, *base]) == 0
    capsys.readouterr()
    assert main(["token", "list", *base]) == 0
    states = [line.split("\t")[3] for line in capsys.readouterr().out.splitlines()[1:]]
    assert states == ["revoked", "revoked"]

    async def tokens() -> list[ApiToken]:
        store = await SqliteStore.open(tmp_path / "b.db")
        try:
            return await store.list_tokens()
        finally:
            await store.close()

    assert all(t.revoked_at is not None for t in asyncio.run(tokens()))


async def test_revoked_token_is_refused_after_the_cache_time(tmp_path: Path) -> None:
    """A token revoked behind the service's back (as by the CLI) is refused within the cache."""
    async for app in start_service(tmp_path, http={"port": 0, "auth_cache_seconds": 0.3}):
        url, headers = f"{app.url}/v1/alerts", app.auth(Role.ISSUER)
        async with app.http.get(url, headers=headers) as resp:
            assert resp.status == 200
        await revoke_tokens(app.service.store, name="test-issuer", actor="cli")
        await asyncio.sleep(0.35)
        async with app.http.get(url, headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["detail"] == "token revoked"


async def test_expired_token_is_refused(tmp_path: Path) -> None:
    """A token works until its expiry and is a 401 "token expired" after it."""
    async for app in start_service(tmp_path):
        secret, _ = await create_token(
            app.service.store, role=Role.ISSUER, name="short", valid_for=timedelta(seconds=0.4)
        )
        url, headers = f"{app.url}/v1/alerts", {"Authorization": f"Bearer {secret}"}
        async with app.http.get(url, headers=headers) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.45)
        async with app.http.get(url, headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["detail"] == "token expired"


async def test_failed_authentication_is_rate_limited_per_ip(tmp_path: Path) -> None:
    """Past the failures per minute an IP gets 429 + Retry-After, right token or not; others not."""
    async for app in start_service(tmp_path, http={"port": 0, "auth_failures_per_minute": 3}):
        url = f"{app.url}/v1/alerts"
        bad = {"Authorization": "Bearer bc_not-a-token"}
        for _ in range(3):
            async with app.http.get(url, headers=bad) as resp:
                assert resp.status == 401
        async with app.http.get(url, headers=bad) as resp:
            assert resp.status == 429
            assert (await resp.json())["error"] == "rate_limited"
            assert 1 <= int(resp.headers["Retry-After"]) <= 60
        async with app.http.get(url, headers=app.auth(Role.ISSUER)) as resp:
            assert resp.status == 429  # a right guess from that address is refused too
        async with app.http.get(url) as resp:
            assert resp.status == 401  # no credential: nothing guessed, not throttled
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with (
            aiohttp.ClientSession(connector=connector) as other,
            other.get(url, headers=app.auth(Role.ISSUER)) as resp,
        ):
            assert resp.status == 200
        async with app.http.get(f"{app.url}/metrics") as resp:
            metrics = await resp.text()
        assert 'broadcaster_auth_failures_total{reason="unknown"} 3.0' in metrics
        assert 'broadcaster_auth_failures_total{reason="throttled"} 2.0' in metrics
        assert 'broadcaster_auth_failures_total{reason="missing"} 1.0' in metrics


async def test_failed_authentication_behind_a_trusted_proxy_counts_per_forwarded_client(
    tmp_path: Path,
) -> None:
    """Behind a trusted proxy, one client's failures throttle that client only, not everyone
    the proxy forwards for."""
    http = {"port": 0, "auth_failures_per_minute": 2, "trusted_proxies": ["127.0.0.1/32"]}
    async for app in start_service(tmp_path, http=http):
        url = f"{app.url}/v1/alerts"
        guesser = {"Authorization": "Bearer bc_not-a-token", "X-Forwarded-For": "203.0.113.9"}
        statuses = []
        for _ in range(3):
            async with app.http.get(url, headers=guesser) as resp:
                statuses.append(resp.status)
        assert statuses == [401, 401, 429]
        desk = {**app.auth(Role.ISSUER), "X-Forwarded-For": "198.51.100.20"}
        async with app.http.get(url, headers=desk) as resp:
            assert resp.status == 200
