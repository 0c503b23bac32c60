"""Who an SMS alert goes to: the active subscribers inside the alert's areas.

Contract:
- `SubscriberDirectory` holds the active (neither opted-out nor flagged) subscribers in
  memory with a geo index, so planning an alert is a lookup, not a scan: choosing among
  1,000,000 subscribers takes well under 2 s (bench/). `load(store)` (re)builds it from the
  store; call it at start and after imports. `opt_out` / `opt_in` and `flag` (the provider
  refused the number) apply at once, without a rebuild; a flag is cleared only in the store
  (an admin fixed the record), and the next `load` brings the subscriber back.
- `recipients(alert, groups)` is every active subscriber inside any area of any of the alert's
  info blocks (see `alerts.geo`), in subscriber order, each once; when the alert names groups
  (`Alert.groups`) or the caller passes `groups`, only subscribers in at least one of them.
  An alert without areas reaches nobody by SMS: a desk that means "everyone" draws the
  area, so a missing area never becomes a city-wide text. With `required_group` (the SMS
  exercise group) only subscribers in that group, whatever else matches.
- `language_of(phone)` is the subscriber's language, for choosing the info block to send.
- `version` is the store's `subscribers_version` the directory was loaded at (read before
  the load, so a write during it is not missed). `DirectoryFollower` keeps a directory in
  step with writes this process did not make (the CLI's `subscribers import`, another
  `serve` on the same PostgreSQL): it polls that version and reloads when it moved. A
  reload rebuilds the whole index (about 2 s of CPU per million subscribers), at most once a
  poll and at most a tenth of the time.
  A directory never loaded from the store (`version` None: built from a list) is left as is.
- `load` builds the new index in a worker thread (`build_audience`), so the event loop keeps
  serving meanwhile; planners see the old index until the new one is swapped in whole, and
  the swap and the replay of the opt-outs, opt-ins and flags applied during the load happen
  in one step on the loop. Loads run one at a time, in the order they were called. The
  first load at start-up takes the same path. Built from a list (`SubscriberDirectory(...)`,
  `replace`), the build runs on the caller's thread.
- A load cancelled while its index builds leaves the old index in place. A worker thread
  cannot be stopped, so that build runs on to its end and is then thrown away, never
  installed; the next load waits for it before reading the store. So at most one build
  runs at a time: memory never holds more than the index in use and one being built.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from alerts.geo import GeoIndex
from alerts.models import Alert, Area
from broadcaster.errors import StoreError
from broadcaster.ports import Store, Subscriber

log = logging.getLogger(__name__)


# Subscribers per geo index piece. Making the points and the STRtree of an index are single
# C calls (shapely) that hold the GIL, about 0.8 s per million subscribers together: in one
# piece the loop would wait that long even with the build in a worker thread; in pieces it
# waits at most one piece's worth (~40 ms) at a time, and each piece is freed on its own
# when the index is dropped. A query asks every piece: twenty for a million subscribers,
# which selects as fast as one index did (bench/channels.py geo).
PIECE = 50_000


@dataclass(frozen=True, slots=True, eq=False)
class Audience:
    """One immutable build of the index: the active subscribers, where each phone is among
    them, and geo indexes over consecutive pieces of them (`pieces`: the first position of
    each piece and its index). Never changed once built, so it can be made in one thread and
    read in another once handed over."""

    subscribers: tuple[Subscriber, ...]
    positions: Mapping[str, int]
    pieces: tuple[tuple[int, GeoIndex], ...]

    def select(self, areas: Sequence[Area]) -> list[int]:
        """Positions of the subscribers inside any of `areas`, ascending, each once."""
        # Pieces hold consecutive positions in order, and each answers sorted and unique:
        # joined in order, the whole is too.
        found = [index.select(areas) + first for first, index in self.pieces]
        return np.concatenate(found).tolist() if found else []


def build_audience(subscribers: Sequence[Subscriber], piece: int = PIECE) -> Audience:
    """The index of the active (neither opted-out nor flagged) `subscribers`, its geo index
    in pieces of `piece`. Pure: it only reads `subscribers` (frozen records), which the
    caller must not change until it returns, and shares nothing with its caller, so it may
    run in a worker thread while the loop goes on; about 2 s of CPU per million."""
    active = tuple(s for s in subscribers if s.opted_out_at is None and s.flagged is None)
    pieces = []
    for first in range(0, len(active), piece):
        part = active[first : first + piece]
        lats, lons = [s.lat for s in part], [s.lon for s in part]
        pieces.append((first, GeoIndex(lats, lons, [s.area_code for s in part])))
    return Audience(active, {s.phone: i for i, s in enumerate(active)}, tuple(pieces))


def _nothing() -> None:
    pass


def _dispose(retired: list[Audience]) -> None:
    """Drop `retired`'s only audience piece by piece (run in a worker thread). Freeing a
    million subscribers and their geometries in one go is one C-level cascade of
    deallocations that holds the GIL for a few hundred milliseconds."""
    audience = retired.pop()
    pieces, subscribers = list(audience.pieces), list(audience.subscribers)
    # The tuples and the phone dict go here (tens of ms for a million); the geometries and
    # subscribers live on in the lists, freed below a piece at a time.
    del audience
    while pieces:
        pieces.pop()
    while subscribers:
        del subscribers[-PIECE:]


class SubscriberDirectory:
    def __init__(self, subscribers: Sequence[Subscriber] = ()) -> None:
        self._audience = build_audience(subscribers)
        # Applied in memory since the last build; they die with it (a rebuild reads them
        # from the store, or replays them if the load began before they were written).
        self._opted_out: set[str] = set()
        self._flagged: set[str] = set()
        self.version: int | None = None
        # While a load runs, the opt-outs, opt-ins and flags applied meanwhile (they may have
        # been written after its read): replayed over the new index.
        self._during_load: list[tuple[Callable[[str], None], str]] | None = None
        # Loads in call order: a later read never gets swapped in before an earlier one.
        self._loading = asyncio.Lock()
        # The build in its worker thread, until it finishes. Outlives a cancelled load: the
        # next load waits for it, so two builds never run at once.
        self._building: asyncio.Task[Audience] | None = None

    async def load(self, store: Store) -> int:
        """Rebuild from the store's active subscribers; returns how many. What `opt_out`,
        `opt_in` and `flag` applied while it ran is applied again to the new index: a STOP
        written just after the read is not undone by the rebuild. The index is built in a
        worker thread; if the load fails or is cancelled, the old index stays as it was. A
        build left running by a cancelled load is waited for before this load reads the
        store; its index is never installed."""
        async with self._loading:
            if self._building is not None:
                # Its outcome does not matter (the shield that load awaited retrieved it):
                # only that its thread is done with its copy of the subscribers.
                await asyncio.wait([self._building])
            self._during_load = []
            try:
                version = await store.subscribers_version()
                subscribers = await store.active_subscribers()
                # Nothing here touches the rows while the thread reads them, and the new index
                # reaches the loop only when the thread has finished with it.
                build = asyncio.create_task(asyncio.to_thread(build_audience, subscribers))
                self._building = build
                build.add_done_callback(self._build_done)
                # Shielded: cancelling this load does not cancel the build (the thread would
                # go on anyway), so the next load can tell it is still running.
                audience = await asyncio.shield(build)
                # From here to the end of the replay nothing awaits: no coroutine sees the new
                # index without the changes made while it was built.
                changes, self._during_load = self._during_load, None
                retired = [self._install(audience)]
                for change, phone in changes:  # no longer recording: replayed once
                    change(phone)
            finally:
                self._during_load = None
            self.version = version
            # The old index is dropped off the loop too; `retired` holds its last reference.
            await asyncio.to_thread(_dispose, retired)
            return len(audience.subscribers)

    def _build_done(self, build: asyncio.Task[Audience]) -> None:
        if self._building is build:
            self._building = None

    def replace(self, subscribers: Sequence[Subscriber]) -> None:
        """Rebuild from `subscribers` now, on this thread; clears the in-memory changes."""
        self._install(build_audience(subscribers))

    def _install(self, audience: Audience) -> Audience:
        """Swap `audience` in and clear the in-memory changes; returns the old index."""
        # One attribute: a planner running meanwhile sees the old or the new index whole.
        old, self._audience = self._audience, audience
        self._opted_out = set()
        self._flagged = set()
        return old

    def __len__(self) -> int:
        return len(self._audience.subscribers) - len(self._opted_out | self._flagged)

    def recipients(
        self, alert: Alert, groups: Iterable[str] = (), *, required_group: str | None = None
    ) -> list[str]:
        wanted = frozenset(groups) | alert.groups
        areas = [area for info in alert.infos for area in info.areas]
        audience = self._audience
        chosen: list[str] = []
        for position in audience.select(areas):
            subscriber = audience.subscribers[position]
            if subscriber.phone in self._opted_out or subscriber.phone in self._flagged:
                continue
            if wanted and wanted.isdisjoint(subscriber.groups):
                continue
            if required_group is not None and required_group not in subscriber.groups:
                continue
            chosen.append(subscriber.phone)
        return chosen

    def language_of(self, phone: str) -> str | None:
        audience = self._audience
        position = audience.positions.get(phone)
        return None if position is None else audience.subscribers[position].language

    def opt_out(self, phone: str) -> None:
        self._opted_out.add(phone)
        self._remember(self.opt_out, phone)

    def opt_in(self, phone: str) -> None:
        """Back in at once if still indexed; otherwise the next `load` brings them back."""
        self._opted_out.discard(phone)
        self._remember(self.opt_in, phone)

    def flag(self, phone: str) -> None:
        """Out at once: the provider refused the number (invalid, not a mobile)."""
        self._flagged.add(phone)
        self._remember(self.flag, phone)

    def _remember(self, change: Callable[[str], None], phone: str) -> None:
        if self._during_load is not None:
            self._during_load.append((change, phone))


class DirectoryFollower:
    """Reloads `directory` from `store` whenever the subscribers changed since its load,
    checking every `poll_seconds`. `after_reload` runs after each reload (the service freezes
    the new index out of garbage collection; the stores freeze the records they decode)."""

    def __init__(
        self,
        directory: SubscriberDirectory,
        store: Store,
        *,
        poll_seconds: float,
        after_reload: Callable[[], None] = _nothing,
    ) -> None:
        self._directory = directory
        self._store = store
        self._poll_seconds = poll_seconds
        self._after_reload = after_reload
        self._lock = asyncio.Lock()
        self._reload_seconds = 0.0

    async def reload(self) -> None:
        """Rebuild now (in-process changes call this too); one reload at a time."""
        async with self._lock:
            started = time.perf_counter()
            await self._directory.load(self._store)
            self._after_reload()
            self._reload_seconds = time.perf_counter() - started

    async def run(self) -> None:
        """Poll until cancelled; a failing store is logged and tried again next time. The
        wait between polls is at least ten times the last rebuild's duration, so a large
        index under a stream of writes (a wave of STOP replies after an alert also moves the
        version) spends at most a tenth of the time rebuilding."""
        while True:
            await asyncio.sleep(max(self._poll_seconds, 10 * self._reload_seconds))
            loaded_at = self._directory.version
            if loaded_at is None:
                continue  # built from a given list, not from the store: nothing to follow
            try:
                if await self._store.subscribers_version() != loaded_at:
                    log.info("subscribers changed: reloading the SMS audience index")
                    await self.reload()
            except StoreError as exc:
                log.warning("checking for subscriber changes failed: %s", exc)
