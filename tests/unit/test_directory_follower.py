"""DirectoryFollower: when the SMS audience index is rebuilt from the store (no I/O: a fake
store that counts)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from alerts.models import Alert
from alerts.requests import AlertRequest
from broadcaster.audience import Audience, DirectoryFollower, SubscriberDirectory, build_audience
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


class GatedBuild:
    """Stands in for `build_audience`: records the thread it runs on, tells the loop it
    started, then waits for `release` before building for real. Run on the loop, it would
    block the loop and fail after 10 s instead of hanging."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.started = asyncio.Event()
        self.release = threading.Event()
        self.threads: list[int] = []

    def __call__(self, subscribers: Sequence[Subscriber]) -> Audience:
        self.threads.append(threading.get_ident())
        self.loop.call_soon_threadsafe(self.started.set)
        assert self.release.wait(timeout=10), "the loop never got to run during the build"
        return build_audience(subscribers)


def people(count: int) -> list[Subscriber]:
    return [Subscriber(f"+4477009{n:05d}", lat=53.48, lon=-2.24) for n in range(count)]


async def test_the_index_is_built_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first load and a follower's reload both build the index off the loop's thread."""
    directory = SubscriberDirectory()  # from a list: built here, on the caller's thread
    gate = GatedBuild()
    gate.release.set()
    monkeypatch.setattr("broadcaster.audience.build_audience", gate)
    store = CountingStore()
    await directory.load(store)  # type: ignore[arg-type]
    await DirectoryFollower(directory, store, poll_seconds=1).reload()  # type: ignore[arg-type]
    assert len(gate.threads) == 2
    assert threading.get_ident() not in gate.threads


async def test_the_loop_keeps_running_while_the_index_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a reload builds, a heartbeat on the loop ticks to the end and planners get the
    old index whole; once the build is done the new one replaces it."""
    store = CountingStore()
    store.subscribers = people(2_000)
    directory = SubscriberDirectory()
    await directory.load(store)  # type: ignore[arg-type]
    gate = GatedBuild()
    monkeypatch.setattr("broadcaster.audience.build_audience", gate)
    store.subscribers = people(3_000)
    loading = asyncio.create_task(directory.load(store))  # type: ignore[arg-type]
    await gate.started.wait()
    ticks = 0
    for _ in range(100):  # the build is blocked until released: these run meanwhile
        await asyncio.sleep(0)
        ticks += 1
    assert (ticks, loading.done(), len(directory)) == (100, False, 2_000)
    assert directory.language_of("+447700902999") is None
    gate.release.set()
    assert await loading == 3_000
    assert (len(directory), directory.language_of("+447700902999")) == (3_000, "en-US")


async def test_a_stop_applied_while_the_index_builds_survives_the_swap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An opt-out and a flag applied while the thread builds take effect at once on the old
    index and stay after the swap, though the rows the build reads predate them; an opt-in
    made meanwhile stays too."""
    store = CountingStore()
    store.subscribers = people(4)
    directory = SubscriberDirectory()
    await directory.load(store)  # type: ignore[arg-type]
    directory.opt_out("+447700900002")
    gate = GatedBuild()
    monkeypatch.setattr("broadcaster.audience.build_audience", gate)
    loading = asyncio.create_task(directory.load(store))  # type: ignore[arg-type]
    await gate.started.wait()
    directory.opt_out("+447700900000")
    directory.flag("+447700900001")
    directory.opt_in("+447700900002")
    assert len(directory) == 2  # applied at once to the index still in use
    gate.release.set()
    await loading
    assert len(directory) == 2
    assert directory.recipients(alert_at_the_centre()) == ["+447700900002", "+447700900003"]


async def test_a_failed_build_keeps_the_old_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that raises leaves the old index, its version and its opt-outs in place, and
    a later load records and replays changes as usual."""
    store = CountingStore()
    store.subscribers = people(3)
    directory = SubscriberDirectory()
    await directory.load(store)  # type: ignore[arg-type]
    directory.opt_out("+447700900000")

    def broken(subscribers: Sequence[Subscriber]) -> Audience:
        raise MemoryError

    monkeypatch.setattr("broadcaster.audience.build_audience", broken)
    store.version, store.subscribers = 1, people(5)
    with pytest.raises(MemoryError):
        await directory.load(store)  # type: ignore[arg-type]
    assert (len(directory), directory.version) == (2, 0)
    monkeypatch.undo()
    assert await directory.load(store) == 5  # type: ignore[arg-type]
    assert (len(directory), directory.version) == (5, 1)


async def test_loads_run_one_at_a_time_in_call_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second load does not read the store until the first has swapped its index in, so a
    later read is never replaced by an earlier one."""
    store = CountingStore()
    directory = SubscriberDirectory()
    gate = GatedBuild()
    monkeypatch.setattr("broadcaster.audience.build_audience", gate)
    first = asyncio.create_task(directory.load(store))  # type: ignore[arg-type]
    await gate.started.wait()
    store.version, store.subscribers = 1, people(2)
    second = asyncio.create_task(directory.load(store))  # type: ignore[arg-type]
    for _ in range(10):
        await asyncio.sleep(0)
    assert store.loads == 1
    gate.release.set()
    assert (await first, await second) == (1, 2)
    assert (store.loads, directory.version, len(directory)) == (2, 1, 2)


class ConcurrencyCountingBuild(GatedBuild):
    """A `GatedBuild` that also counts the builds running at once (`most`)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._running = 0
        self.most = 0

    def __call__(self, subscribers: Sequence[Subscriber]) -> Audience:
        with self._lock:
            self._running += 1
            self.most = max(self.most, self._running)
        try:
            return super().__call__(subscribers)
        finally:
            with self._lock:
                self._running -= 1


async def test_a_load_after_a_cancelled_one_waits_for_its_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A load cancelled mid-build keeps the old index; the next load reads the store and
    builds only once that build has finished (never two builds at once), and its index,
    not the abandoned one, is installed."""
    store = CountingStore()
    directory = SubscriberDirectory()
    await directory.load(store)  # type: ignore[arg-type]
    gate = ConcurrencyCountingBuild()
    monkeypatch.setattr("broadcaster.audience.build_audience", gate)
    store.version, store.subscribers = 1, people(3)
    first = asyncio.create_task(directory.load(store))  # type: ignore[arg-type]
    await gate.started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (len(directory), directory.version) == (1, 0)
    store.version, store.subscribers = 2, people(2)
    second = asyncio.create_task(directory.load(store))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)  # time enough for a second build's thread to start
    assert (store.loads, len(gate.threads), second.done()) == (2, 1, False)
    gate.release.set()
    assert await second == 2
    assert (gate.most, len(gate.threads), store.loads) == (1, 2, 3)
    assert (len(directory), directory.version) == (2, 2)


def alert_at_the_centre() -> Alert:
    body = {
        "event": "Gas leak",
        "headline": "Avoid Market St",
        "severity": "Severe",
        "areas": [{"description": "c", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 1}}],
    }
    sent = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    return AlertRequest.model_validate(body).to_alert(identifier="a", sender="d@x.org", sent=sent)
