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
  reload rebuilds the whole index (about 2 s per million subscribers), at most once a poll
  and at most a tenth of the time.
  A directory never loaded from the store (`version` None: built from a list) is left as is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from alerts.geo import GeoIndex
from alerts.models import Alert
from broadcaster.errors import StoreError
from broadcaster.ports import Store, Subscriber

log = logging.getLogger(__name__)


class SubscriberDirectory:
    def __init__(self, subscribers: Sequence[Subscriber] = ()) -> None:
        self._subscribers: list[Subscriber] = []
        self._by_phone: dict[str, int] = {}
        self._opted_out: set[str] = set()
        self._flagged: set[str] = set()
        self._index = GeoIndex([], [], [])
        self.version: int | None = None
        # While a load reads the store, the opt-outs, opt-ins and flags applied meanwhile
        # (they may have been written after the read): replayed over the new index.
        self._during_load: list[tuple[Callable[[str], None], str]] | None = None
        self.replace(subscribers)

    async def load(self, store: Store) -> int:
        """Rebuild from the store's active subscribers; returns how many. What `opt_out`,
        `opt_in` and `flag` applied while it read is applied again to the new index: a STOP
        written just after the read is not undone by the rebuild."""
        self._during_load = []
        try:
            version = await store.subscribers_version()
            subscribers = await store.active_subscribers()
            changes, self._during_load = self._during_load, None
            self.replace(subscribers)
            for change, phone in changes:  # no longer recording: replayed once
                change(phone)
        finally:
            self._during_load = None
        self.version = version
        return len(self._subscribers)

    def replace(self, subscribers: Sequence[Subscriber]) -> None:
        active = [s for s in subscribers if s.opted_out_at is None and s.flagged is None]
        index = GeoIndex(
            [s.lat for s in active], [s.lon for s in active], [s.area_code for s in active]
        )
        # Swapped in one step, so a planner running meanwhile sees the old or the new whole.
        self._subscribers, self._index = active, index
        self._by_phone = {s.phone: i for i, s in enumerate(active)}
        self._opted_out = set()
        self._flagged = set()

    def __len__(self) -> int:
        return len(self._subscribers) - len(self._opted_out | self._flagged)

    def recipients(
        self, alert: Alert, groups: Iterable[str] = (), *, required_group: str | None = None
    ) -> list[str]:
        wanted = frozenset(groups) | alert.groups
        areas = [area for info in alert.infos for area in info.areas]
        chosen: list[str] = []
        for position in self._index.select(areas).tolist():
            subscriber = self._subscribers[position]
            if subscriber.phone in self._opted_out or subscriber.phone in self._flagged:
                continue
            if wanted and wanted.isdisjoint(subscriber.groups):
                continue
            if required_group is not None and required_group not in subscriber.groups:
                continue
            chosen.append(subscriber.phone)
        return chosen

    def language_of(self, phone: str) -> str | None:
        position = self._by_phone.get(phone)
        return None if position is None else self._subscribers[position].language

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
    checking every `poll_seconds`. `after_reload` runs after each reload (the service
    freezes the new index out of garbage collection)."""

    def __init__(
        self,
        directory: SubscriberDirectory,
        store: Store,
        *,
        poll_seconds: float,
        after_reload: Callable[[], None] = lambda: None,
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
