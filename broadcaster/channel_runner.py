"""One channel's sending: a claimer, `concurrency` workers and a recorder (`Dispatcher` runs
one per channel).

Contract:
- The claimer leases batches of due deliveries (most urgent first) into a short local queue,
  and `concurrency` workers send from it. The local queue is kept short (one claim batch) so
  a more urgent alert arriving mid fan-out overtakes within about a batch.
- A slot (one of `concurrency`) is taken before a send and given back only once its outcome
  has committed, so at any moment at most `concurrency` sends can have reached the provider
  without their outcome being durable: that bounds the duplicates a kill -9 can cause.
  Outcomes are committed in batches by the recorder; the worker moves on to its next
  delivery as soon as a slot is free.
- It claims only while `leased()` is true (this process holds the channel's lease); a
  delivery claimed but not started when the lease is lost is given back unsent.
- `stop(grace)`: stop claiming, cut short every worker that has not started its send, let
  sends in flight finish within `grace`, commit the outcomes waiting, give every delivery not
  attempted back to the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from broadcaster.attempt import Attempt
from broadcaster.errors import StoreError
from broadcaster.ports import ClaimedDelivery, DeliveryOutcome, DeliveryState, Store

if TYPE_CHECKING:  # dispatcher.py imports this module; the policy is only a type here
    from broadcaster.dispatcher import DispatchPolicy

# The dispatcher's logger, not this module's: the attempt lines are documented (README) and
# filtered under `broadcaster.dispatcher`, and the runner's warnings have always been there.
log = logging.getLogger("broadcaster.dispatcher")


class ChannelRunner:
    """One channel's claimer and workers."""

    def __init__(
        self,
        store: Store,
        attempt: Attempt,
        policy: DispatchPolicy,
        now: Callable[[], datetime],
        leased: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.attempt = attempt
        self.channel = attempt.channel
        self.policy = policy
        self._now = now
        # Whether this process holds the channel's lease (broadcaster/leases.py): only then
        # does it claim, and a claimed delivery is given back unsent once the lease is lost.
        self._leased = leased
        self.concurrency = max(1, attempt.channel.limits.concurrency or policy.concurrency)
        self._queue: deque[ClaimedDelivery] = deque()
        self._ready = asyncio.Condition()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self.held: dict[int, ClaimedDelivery] = {}
        # When each held delivery was claimed (perf_counter): latency and the attempt log.
        self._claimed_at: dict[int, float] = {}
        self._sending: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._outcomes: list[DeliveryOutcome] = []
        self._record_wake = asyncio.Event()
        self._closing = False
        self._recorder: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._claimer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.stopping = False

    def start(self) -> None:
        name = self.channel.name
        self._claimer = asyncio.create_task(self._claim_loop(), name=f"claim-{name}")
        self._watchdog = asyncio.create_task(
            self.attempt.watch_deadlines(), name=f"deadlines-{name}"
        )
        self._recorder = asyncio.create_task(self._record_loop(), name=f"record-{name}")
        self._workers = [
            asyncio.create_task(self._work_loop(), name=f"send-{name}-{i}")
            for i in range(self.concurrency)
        ]

    def wake(self) -> None:
        self._wake.set()

    @property
    def idle(self) -> bool:
        return not self.held

    async def _claim_loop(self) -> None:
        batch = self.concurrency
        while not self.stopping:
            claimed: list[ClaimedDelivery] = []
            if len(self._queue) < batch and self._leased():
                now = self._now()
                lease = now + timedelta(seconds=self.policy.lease_seconds)
                try:
                    claimed = await self.store.claim_deliveries(
                        self.channel.name, limit=batch, now=now, lease_until=lease
                    )
                except StoreError as exc:
                    log.warning("claim on %s failed: %s", self.channel.name, exc)
                if claimed:
                    try:
                        await self.attempt.alerts.prefetch(d.alert_id for d in claimed)
                    except StoreError as exc:  # workers read what is missing themselves
                        log.warning("prefetch on %s failed: %s", self.channel.name, exc)
                if self.stopping:  # stop() ran while we claimed: give them straight back
                    await self._give_back([d.id for d in claimed])
                    return
                claimed_at = time.perf_counter()
                for delivery in claimed:
                    self.held[delivery.id] = delivery
                    self._claimed_at[delivery.id] = claimed_at
                    self._queue.append(delivery)
                if claimed:
                    async with self._ready:
                        self._ready.notify(len(claimed))
            if len(claimed) == batch:
                # Maybe more due: claim again once the queue has room.
                self._room.clear()
                if len(self._queue) >= batch:
                    await self._room.wait()
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: see EventFollower.run
                async with asyncio.timeout(self.policy.poll_seconds):
                    await self._wake.wait()

    async def _work_loop(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self.stopping:
            await self._slots.acquire()  # released once this delivery's outcome committed
            if not self._queue:
                async with self._ready:
                    await self._ready.wait_for(lambda: bool(self._queue) or self.stopping)
            if self.stopping:
                self._slots.release()
                return
            delivery = self._queue.popleft()
            if len(self._queue) < self.concurrency:
                self._room.set()
            if not self._leased():  # another process may be sending on this channel now
                self._slots.release()
                self._claimed_at.pop(delivery.id, None)
                await self._give_back([delivery.id])
                self.held.pop(delivery.id, None)
                continue
            await self._process(delivery, task)

    async def _process(self, delivery: ClaimedDelivery, task: asyncio.Task[Any]) -> None:
        claimed_at = self._claimed_at.pop(delivery.id, None)
        try:
            outcome = await self.attempt.run(delivery, task, claimed_at)
        except Exception:  # a bug must cost one delivery's attempt, not a worker
            log.exception("attempting delivery %s failed unexpectedly", delivery.id)
            outcome = None
        except BaseException:
            self._slots.release()  # cut short (shutdown): stop() gives the delivery back
            raise
        if outcome is None:
            self._slots.release()
            self._sending.discard(task)
            await self._give_back([delivery.id])
            self.held.pop(delivery.id, None)
            return
        if log.isEnabledFor(logging.INFO):
            _log_attempt(delivery, outcome, claimed_at)
        # The slot now belongs to the outcome; the recorder frees it after the commit.
        self._outcomes.append(outcome)
        self._record_wake.set()
        self._sending.discard(task)

    async def _record_loop(self) -> None:
        while True:
            await self._record_wake.wait()
            self._record_wake.clear()
            await self._record()
            if self._closing and not self._outcomes:
                return

    async def _record(self) -> None:
        """Commit every outcome waiting, in one call, then free their slots."""
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        try:
            await self.store.finish_deliveries(batch)
        except Exception:  # the slots below must come back whatever happened
            # Not recorded: their leases run out and they are claimed again.
            log.exception("recording %d delivery outcomes failed", len(batch))
        for outcome in batch:
            self.held.pop(outcome.delivery_id, None)
            self._slots.release()

    def mark_sending(self, task: asyncio.Task[Any]) -> None:
        """Called (via Attempt) right before a send starts: stop() waits for this task."""
        self._sending.add(task)

    async def stop(self, grace: float) -> None:
        self.stopping = True
        self._wake.set()
        self._room.set()
        async with self._ready:
            self._ready.notify_all()
        if self._claimer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._claimer
        for worker in self._workers:
            if worker not in self._sending:
                worker.cancel()
        in_flight = [w for w in self._workers if not w.done()]
        if in_flight:
            _, late = await asyncio.wait(in_flight, timeout=grace)
            for worker in late:
                worker.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
        if self._recorder is not None:  # commit the last outcomes before giving back the rest
            self._closing = True
            self._record_wake.set()
            await asyncio.gather(self._recorder, return_exceptions=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        self._queue.clear()
        self._claimed_at.clear()
        left = list(self.held)
        self.held.clear()
        await self._give_back(left)

    async def _give_back(self, ids: list[int]) -> None:
        if not ids:
            return
        try:
            await self.store.release_deliveries(ids, self._now())
        except StoreError as exc:
            log.warning(
                "could not release %d deliveries (their leases will run out): %s", len(ids), exc
            )


def _log_attempt(
    delivery: ClaimedDelivery, outcome: DeliveryOutcome, claimed_at: float | None
) -> None:
    """One INFO line per delivery attempt, its fields as `extra` (JSON logs keep them as
    fields). Never the recipient: it may be a phone number."""
    result = "retry" if outcome.state is DeliveryState.PENDING else outcome.state.value
    latency_ms = (
        round((time.perf_counter() - claimed_at) * 1000, 1) if claimed_at is not None else None
    )
    log.info(
        "delivery %s of alert %s on %s: %s (attempt %d, %s ms)",
        delivery.id,
        delivery.alert_id,
        delivery.channel,
        result,
        delivery.attempts,
        latency_ms,
        extra={
            "alert_id": delivery.alert_id,
            "delivery_id": delivery.id,
            "channel": delivery.channel,
            "attempt": delivery.attempts,
            "outcome": result,
            "latency_ms": latency_ms,
        },
    )
