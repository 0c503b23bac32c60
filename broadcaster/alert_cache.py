"""Alerts as the dispatcher needs them: the alert itself (immutable, cached) and its state
(which an Update/Cancel in any process may change, so it is re-read when older than `ttl`).

Contract: `get` returns the stored alert or None; concurrent misses for one id share one
read. `state` is at most `ttl` seconds stale; it is how a cancel committed by another process
reaches this one. Both caches are bounded (least recently used alerts are dropped).
`prefetch` loads alerts and states ahead (the claimer does it per batch) so that a worker can
`peek` without awaiting: an await between taking a delivery from the queue and queueing for
the rate limiter would let workers overtake each other and break priority order.
`refresh_states` re-reads the states of the alerts being sent (the dispatcher does it
every `ttl`), so `peek_state` is as fresh as `state` without a read per send.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from broadcaster.ports import AlertState, Store, StoredAlert


class AlertCache:
    def __init__(
        self,
        store: Store,
        *,
        ttl: float = 0.25,
        size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._alerts: OrderedDict[str, StoredAlert] = OrderedDict()
        self._loading: dict[str, asyncio.Future[StoredAlert | None]] = {}
        self._states: OrderedDict[str, tuple[AlertState, float]] = OrderedDict()
        self._reading: dict[str, asyncio.Future[AlertState | None]] = {}

    def peek(self, alert_id: str) -> StoredAlert | None:
        return self._alerts.get(alert_id)

    def peek_state(self, alert_id: str) -> AlertState | None:
        cached = self._states.get(alert_id)
        return None if cached is None else cached[0]

    async def prefetch(self, alert_ids: Iterable[str]) -> None:
        for alert_id in dict.fromkeys(alert_ids):
            await self.get(alert_id)
            await self.state(alert_id)

    async def refresh_states(self, alert_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            return
        states = await self._store.alert_states(ids)
        now = self._clock()
        for alert_id, state in states.items():
            self._remember_state(alert_id, state, now)

    def _remember_state(self, alert_id: str, state: AlertState, now: float) -> None:
        self._states[alert_id] = (state, now)
        self._states.move_to_end(alert_id)
        if len(self._states) > self._size:
            self._states.popitem(last=False)

    async def get(self, alert_id: str) -> StoredAlert | None:
        cached = self._alerts.get(alert_id)
        if cached is not None:
            self._alerts.move_to_end(alert_id)
            return cached
        loading = self._loading.get(alert_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[StoredAlert | None] = asyncio.get_running_loop().create_future()
        self._loading[alert_id] = future
        try:
            stored = await self._store.get_alert(alert_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unawaited future logs nothing
            raise
        finally:
            self._loading.pop(alert_id, None)
        future.set_result(stored)
        if stored is not None:
            self._alerts[alert_id] = stored
            if len(self._alerts) > self._size:
                self._alerts.popitem(last=False)
        return stored

    async def state(self, alert_id: str) -> AlertState | None:
        cached = self._states.get(alert_id)
        now = self._clock()
        if cached is not None and now - cached[1] < self._ttl:
            return cached[0]
        reading = self._reading.get(alert_id)
        if reading is not None:
            return await asyncio.shield(reading)
        future: asyncio.Future[AlertState | None] = asyncio.get_running_loop().create_future()
        self._reading[alert_id] = future
        try:
            states = await self._store.alert_states([alert_id])
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            self._reading.pop(alert_id, None)
        state = states.get(alert_id)
        future.set_result(state)
        if state is not None:
            self._remember_state(alert_id, state, now)
        return state
