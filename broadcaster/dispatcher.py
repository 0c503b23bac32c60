"""The dispatcher: claims due deliveries per channel and sends them through `Attempt`.

Contract:
- Each channel runs on its own `ChannelRunner` (broadcaster/channel_runner.py: claimer,
  workers, recorder, and the bound on sends whose outcome is not yet durable). A slow or
  failing channel never holds up another.
- Leases of held deliveries are renewed while they wait (rate limit, open circuit); a
  maintenance loop reclaims the leases of processes that died and expires what is past its
  alert's expiry.
- Several processes on one PostgreSQL: a channel is sent on only by the process holding its
  lease (`ChannelLeases`), so its rate budget holds across processes; the others skip it
  until the holder dies or stops. A process that loses a lease gives back what it claimed
  and has not started. With SQLite every lease is always held: nothing changes.
- `stop()`: stop claiming, cut short every worker that has not started its send, let sends
  in flight finish within the grace period, give every delivery not attempted back to the
  outbox. `drain()` runs until the outbox has nothing pending or sending, then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from broadcaster.alert_cache import AlertCache
from broadcaster.attempt import Attempt
from broadcaster.channel_runner import ChannelRunner
from broadcaster.circuit import CircuitBreaker, CircuitState
from broadcaster.config import DeliverySettings
from broadcaster.errors import StoreError
from broadcaster.fence import CancelFence
from broadcaster.leases import ChannelLeases
from broadcaster.metrics import Metrics
from broadcaster.ports import Channel, Store
from broadcaster.ratelimit import ChannelLimiter
from broadcaster.retry import RetryPolicy

# ChannelRunner lived here before broadcaster/channel_runner.py: still importable from here.
__all__ = ["STATE_TTL", "ChannelRunner", "DispatchPolicy", "Dispatcher"]

log = logging.getLogger(__name__)

# How stale an alert's state may be when a worker checks it before sending.
STATE_TTL = 0.25
_CIRCUIT_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DispatchPolicy:
    """The `[delivery]` settings the dispatcher uses, with the retry policy built."""

    retry: RetryPolicy
    lease_seconds: float
    send_timeout_seconds: float
    concurrency: int
    poll_seconds: float
    breaker_failures: int
    breaker_cooldown_seconds: float
    shutdown_grace_seconds: float
    channel_lease_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> DispatchPolicy:
        retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            max_age_seconds=settings.max_age_seconds,
            base_seconds=settings.backoff_base_seconds,
            cap_seconds=max(settings.backoff_cap_seconds, settings.backoff_base_seconds),
        )
        names = set(cls.__dataclass_fields__) - {"retry"}
        return cls(retry=retry, **settings.model_dump(include=names))


class Dispatcher:
    """Runs every channel's runner plus the outbox maintenance."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        policy: DispatchPolicy,
        metrics: Metrics,
        fence: CancelFence,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.policy = policy
        self.metrics = metrics
        self._now = now
        self.alerts = AlertCache(store, ttl=STATE_TTL)
        self.runners: dict[str, ChannelRunner] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        for name, channel in channels.items():
            breaker = CircuitBreaker(
                policy.breaker_failures,
                policy.breaker_cooldown_seconds,
                on_change=self._circuit_gauge(name),
            )
            metrics.circuit_open.labels(name).set(0)
            self.breakers[name] = breaker
            attempt = Attempt(
                channel=channel,
                limiter=ChannelLimiter(channel.limits),
                breaker=breaker,
                alerts=self.alerts,
                fence=fence,
                retry=policy.retry,
                metrics=metrics,
                send_timeout=policy.send_timeout_seconds,
                now=now,
                stopping=lambda: self._stopping,
            )
            runner = ChannelRunner(
                store, attempt, policy, now, leased=functools.partial(self._leased, name)
            )
            attempt.before_send = runner.mark_sending
            self.runners[name] = runner
        self.leases = ChannelLeases(
            store,
            list(self.runners),
            seconds=policy.channel_lease_seconds,
            on_gained=lambda name: self.runners[name].wake(),
        )
        self._lease_keeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._maintenance: asyncio.Task[None] | None = None
        self._state_refresher: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    def _circuit_gauge(self, name: str) -> Callable[[CircuitState], None]:
        gauge = self.metrics.circuit_open.labels(name)
        return lambda state: gauge.set(_CIRCUIT_GAUGE[state])

    def _leased(self, channel: str) -> bool:
        return self.leases.held(channel)

    def start(self) -> None:
        # First, so that a one-process store's leases are held before any claimer runs.
        self._lease_keeper = asyncio.create_task(self.leases.run(), name="channel-leases")
        for runner in self.runners.values():
            runner.start()
        self._maintenance = asyncio.create_task(self._maintain(), name="outbox-maintenance")
        self._state_refresher = asyncio.create_task(self._refresh_states(), name="alert-states")

    def wake(self) -> None:
        """New deliveries were planned: claim now instead of at the next poll."""
        for runner in self.runners.values():
            runner.wake()

    async def run(self) -> None:
        """Run until cancelled or stopped; stopping on cancellation (service shutdown)."""
        self.start()
        try:
            await self._stopped.wait()
        finally:
            await asyncio.shield(self.stop())

    async def drain(self) -> None:
        """Send until nothing is pending or sending, then stop."""
        self.start()
        try:
            while True:
                await asyncio.sleep(self.policy.poll_seconds)
                names = list(self.runners)
                if await self.store.count_open_deliveries(names) == 0 and all(
                    r.idle for r in self.runners.values()
                ):
                    return
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        for task in (self._maintenance, self._state_refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        grace = self.policy.shutdown_grace_seconds
        await asyncio.gather(*(r.stop(grace) for r in self.runners.values()))
        if self._lease_keeper is not None:
            self._lease_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_keeper
        await self.leases.release()
        for channel_runner in self.runners.values():
            await channel_runner.channel.close()
        self._stopped.set()

    async def _refresh_states(self) -> None:
        """Keep the states of the alerts being sent fresh: a Cancel committed by another
        process stops this one's sends within `STATE_TTL` (this process's own cancels stop
        them at once, through the fence)."""
        while True:
            await asyncio.sleep(STATE_TTL)
            ids = {d.alert_id for r in self.runners.values() for d in r.held.values()}
            try:
                await self.alerts.refresh_states(ids)
            except StoreError as exc:
                log.warning("refreshing alert states failed: %s", exc)

    async def _maintain(self) -> None:
        interval = min(self.policy.lease_seconds / 3, 5.0)
        while True:
            await asyncio.sleep(interval)
            now = self._now()
            try:
                held = [i for r in self.runners.values() for i in r.held]
                lease = now + timedelta(seconds=self.policy.lease_seconds)
                await self.store.extend_leases(held, lease)
                reclaimed = await self.store.reclaim_expired_leases(now)
                if reclaimed:
                    log.warning("reclaimed %d deliveries from expired leases", reclaimed)
                    self.wake()
                await self.store.expire_deliveries(now)
            except StoreError as exc:
                log.warning("outbox maintenance failed: %s", exc)
