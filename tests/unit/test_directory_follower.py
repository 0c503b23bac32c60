"""DirectoryFollower: when the SMS audience index is rebuilt from the store (no I/O: a fake
store that counts)."""

from __future__ import annotations

import asyncio

from broadcaster.audience import DirectoryFollower, SubscriberDirectory
from broadcaster.errors import StoreError
from broadcaster.ports import Subscriber


class CountingStore:
    """`subscribers_version` and `active_subscribers` only; the version moves on demand,
    or on every read with `always_moving`; a load takes `load_seconds`."""

    def __init__(self, *, load_seconds: float = 0.0, always_moving: bool = False) -> None:
        self.version = 0
        self.loads = 0
        self.load_seconds = load_seconds
        self.always_moving = always_moving
        self.failing = False
        self.subscribers = [Subscriber("+447700900001", lat=53.48, lon=-2.24)]

    async def subscribers_version(self) -> int:
        if self.failing:
            raise StoreError("database is locked")
        if self.always_moving:
            self.version += 1
        return self.version

    async def active_subscribers(self) -> list[Subscriber]:
        self.loads += 1
        await asyncio.sleep(self.load_seconds)
        return list(self.subscribers)


async def _run_for(follower: DirectoryFollower, seconds: float) -> None:
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_moved_version_reloads_once_and_a_still_one_never() -> None:
    """Loaded at version 0: no reload while it stays; one when it moves, then none."""
    store = CountingStore()
    directory = SubscriberDirectory()
    await directory.load(store)  # type: ignore[arg-type]
    follower = DirectoryFollower(directory, store, poll_seconds=0.01)  # type: ignore[arg-type]
    await _run_for(follower, 0.1)
    assert store.loads == 1
    store.version = 3
    store.subscribers.append(Subscriber("+447700900002", lat=53.48, lon=-2.24))
    await _run_for(follower, 0.1)
    assert (store.loads, directory.version, len(directory)) == (2, 3, 2)


async def test_a_directory_built_from_a_list_is_left_alone() -> None:
    """Never loaded from the store (tests, benchmarks): nothing to follow."""
    store = CountingStore(always_moving=True)
    directory = SubscriberDirectory([Subscriber("+447700900009")])
    follower = DirectoryFollower(directory, store, poll_seconds=0.01)  # type: ignore[arg-type]
    await _run_for(follower, 0.1)
    assert (store.loads, len(directory)) == (0, 1)


async def test_rebuilds_take_at_most_a_tenth_of_the_time() -> None:
    """With the version moving all the time and a 50 ms rebuild, the follower waits 0.5 s
    between polls, not 10 ms: a handful of rebuilds in a second, not ~16."""
    store = CountingStore(load_seconds=0.05, always_moving=True)
    directory = SubscriberDirectory()
    await directory.load(store)  # type: ignore[arg-type]
    follower = DirectoryFollower(directory, store, poll_seconds=0.01)  # type: ignore[arg-type]
    await _run_for(follower, 1.0)
    assert 2 <= store.loads <= 4


async def test_a_failing_store_is_retried() -> None:
    """A StoreError while checking is logged; the next poll tries again."""
    store = CountingStore()
    directory = SubscriberDirectory()
    await directory.load(store)  # type: ignore[arg-type]
    store.failing = True
    follower = DirectoryFollower(directory, store, poll_seconds=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(0.05)
    store.failing, store.version = False, 1
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (store.loads, directory.version) == (2, 1)


async def test_a_stop_applied_while_a_load_reads_survives_the_rebuild() -> None:
    """A STOP (or a flag) applied in memory after the load read the store, whose write the
    read missed, stays applied over the new index; an opt-in during the load too."""
    store = CountingStore(load_seconds=0.05)
    store.subscribers = [
        Subscriber(f"+44770090000{n}", lat=53.48, lon=-2.24, area_code="M1") for n in range(3)
    ]
    directory = SubscriberDirectory()
    await directory.load(store)  # type: ignore[arg-type]
    directory.opt_out("+447700900002")
    loading = asyncio.create_task(directory.load(store))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # the read is under way; these land after it
    directory.opt_out("+447700900000")
    directory.flag("+447700900001")
    directory.opt_in("+447700900002")
    await loading
    assert len(directory) == 1
    assert directory.language_of("+447700900000") is not None  # still indexed, but out
