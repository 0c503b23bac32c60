"""Channel leases (`Store.acquire_channel_leases` / `release_channel_leases`, `ChannelLeases`):
one holder per channel on PostgreSQL; SQLite, one process, holds every lease."""

from __future__ import annotations

import asyncio

from broadcaster.leases import ChannelLeases
from tests.integration.conftest import StoreFactory


async def test_one_holder_per_channel_until_it_expires_or_is_released(
    store_factory: StoreFactory,
) -> None:
    a = await store_factory.open()
    b = await store_factory.open()
    if store_factory.backend == "sqlite":
        assert await a.acquire_channel_leases(["sms", "x"], "a", 5) == {"sms", "x"}
        assert await b.acquire_channel_leases(["sms", "x"], "b", 5) == {"sms", "x"}
        await a.release_channel_leases(["sms"], "a", 1)
        return
    assert await a.acquire_channel_leases(["sms"], "a", 5) == {"sms"}
    assert await b.acquire_channel_leases(["sms", "x"], "b", 5) == {"x"}
    assert await a.acquire_channel_leases(["sms", "x"], "a", 0.3) == {"sms"}  # renewed
    await asyncio.sleep(0.4)  # a's lease ran out
    assert await b.acquire_channel_leases(["sms"], "b", 5) == {"sms"}
    assert await a.acquire_channel_leases(["sms"], "a", 5) == set()
    await b.release_channel_leases(["sms"], "b", 0.3)
    assert await a.acquire_channel_leases(["sms"], "a", 5) == set()  # cooling down
    await asyncio.sleep(0.4)
    assert await a.acquire_channel_leases(["sms"], "a", 5) == {"sms"}
    await b.release_channel_leases(["sms"], "b", 0)  # not b's: nothing changes
    assert await b.acquire_channel_leases(["sms"], "b", 5) == set()


async def test_concurrent_claimers_get_a_channel_once(store_factory: StoreFactory) -> None:
    stores = [await store_factory.open() for _ in range(4)]
    granted = await asyncio.gather(
        *(s.acquire_channel_leases(["sms"], f"p{i}", 5) for i, s in enumerate(stores))
    )
    winners = sum(1 for g in granted if g == {"sms"})
    assert winners == (4 if store_factory.backend == "sqlite" else 1)


async def test_channel_leases_held_until_margin_before_expiry(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory.open()
    gained: list[str] = []
    leases = ChannelLeases(store, ["sms"], seconds=1.0, holder="me", on_gained=gained.append)
    assert not leases.held("sms")
    assert await leases.renew() == {"sms"}
    assert leases.held("sms")
    assert gained == ["sms"]
    await leases.renew()
    assert gained == ["sms"]  # a renewal is no new gain
    await asyncio.sleep(1.0 - leases.margin + 0.05)
    assert not leases.held("sms")  # fenced itself before the database lets anyone else in
    await leases.renew()
    await leases.release()
    assert not leases.held("sms")
    if store_factory.backend == "postgres":
        assert await store.acquire_channel_leases(["sms"], "other", 1) == set()  # cooldown
