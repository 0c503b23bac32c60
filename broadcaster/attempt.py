"""One delivery attempt, from a claimed delivery to its recorded outcome.

Contract of `Attempt.run(delivery)`: returns the `DeliveryOutcome` to record, or None when the
delivery was never attempted and must be given back (the dispatcher is stopping). In order:
1. the alert is loaded (cached); a delivery whose alert was cancelled or superseded — by the
   store's state, or this process's cancel fence — is CANCELLED without a send; one past its
   expiry is EXPIRED;
2. the channel's circuit breaker and rate limiter are waited on;
3. the fence and expiry are checked again and the send starts with no await in between, so
   no send starts after an Update/Cancel of its alert committed in this process;
4. the answer maps to an outcome: a receipt is SENT; a TransientDeliveryError (or a timeout)
   is a retry with exponential backoff and jitter (never sooner than the provider's
   Retry-After, which also pauses the whole channel) until the retry policy gives up, then
   FAILED; a PermanentDeliveryError is FAILED at once, and only that delivery fails.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alerts.models import MsgType, reference_parts
from broadcaster.alert_cache import AlertCache
from broadcaster.circuit import CircuitBreaker
from broadcaster.errors import PermanentDeliveryError, TransientDeliveryError
from broadcaster.fence import CancelFence, FenceStatus
from broadcaster.metrics import Metrics
from broadcaster.ports import (
    AlertState,
    Channel,
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryState,
    Outbound,
    SendReceipt,
    StoredAlert,
)
from broadcaster.ratelimit import ChannelLimiter
from broadcaster.retry import RetryPolicy

log = logging.getLogger(__name__)

_STOPPED_STATES = frozenset({AlertState.CANCELLED, AlertState.SUPERSEDED})


@dataclass
class Attempt:
    """Everything one channel's workers share to attempt its deliveries."""

    channel: Channel
    limiter: ChannelLimiter
    breaker: CircuitBreaker
    alerts: AlertCache
    fence: CancelFence
    retry: RetryPolicy
    metrics: Metrics
    send_timeout: float
    now: Callable[[], datetime]
    stopping: Callable[[], bool]
    rand: Callable[[], float] = random.random
    # Called with the worker's task, with no await before the send starts (the runner
    # marks the task as sending).
    before_send: Callable[[asyncio.Task[Any]], None] = lambda task: None

    def __post_init__(self) -> None:
        name = self.channel.name
        # Labelled children are looked up once: `labels()` costs more than the increment.
        self._outcomes = {
            outcome: self.metrics.deliveries.labels(name, outcome)
            for outcome in ("sent", "retry", "failed", "cancelled", "expired")
        }
        self._send_seconds = self.metrics.send_seconds.labels(name)
        self._wait_seconds = self.metrics.ratelimit_wait_seconds.labels(name)
        self._latency_seconds = self.metrics.delivery_latency_seconds.labels(name)
        # An alert's fence key, per alert id: one alert fans out to many deliveries.
        self._keys: dict[str, tuple[str, str, str]] = {}
        # Sends in progress and their deadlines; `watch_deadlines` cancels overdue ones.
        # One watchdog instead of a timer per send: a timer per send costs more than
        # everything else the engine does around it.
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._timed_out: set[asyncio.Task[Any]] = set()

    async def run(
        self, delivery: ClaimedDelivery, task: asyncio.Task[Any], claimed_at: float | None = None
    ) -> DeliveryOutcome | None:
        """Attempt `delivery` on the worker `task` (passed in: looking it up costs more than
        most of what happens here). `claimed_at` (`time.perf_counter()` at the claim) times
        the claim-to-answer latency."""
        # The claimer prefetched the alert and its state: no await until the limiter queue,
        # so workers reach it in queue (priority) order.
        stored = self.alerts.peek(delivery.alert_id) or await self.alerts.get(delivery.alert_id)
        if stored is None:  # cannot happen with the foreign key; fail loudly, not silently
            return self._finished(delivery, DeliveryState.FAILED, "alert not found")
        key = self._keys.get(stored.id)
        if key is None:
            if len(self._keys) > 4096:
                self._keys.clear()
            key = self._keys[stored.id] = reference_parts(stored.alert.reference_key)
        stopped = await self._stopped(stored, key)
        if stopped is not None:
            return self._finished(delivery, DeliveryState.CANCELLED, stopped)
        if self._expired(delivery):
            return self._finished(delivery, DeliveryState.EXPIRED, "alert expired")
        await self.breaker.wait_ready()
        started: float | None = None
        try:
            cost = self.channel.cost(stored, delivery.recipient)
            while True:
                grant = await self.limiter.acquire(cost)
                self._wait_seconds.observe(grant.waited)
                # From here to the send: no await, so the fence's answer holds at the send.
                status = self.fence.status(key)
                if status is not FenceStatus.HELD:
                    break
                # A Cancel of this alert is committing: wait for it, then take a fresh
                # grant (sending late on an old one could bunch sends above the rate).
                await self.fence.wait_settled()
            if self.stopping():
                self.breaker.release_trial()
                return None  # not attempted: given back to the outbox
            if status is FenceStatus.CLOSED:
                self.breaker.release_trial()
                return self._finished(delivery, DeliveryState.CANCELLED, "alert was cancelled")
            if self._expired(delivery):
                self.breaker.release_trial()
                return self._finished(delivery, DeliveryState.EXPIRED, "alert expired")
            message = Outbound(delivery=delivery, alert=stored, sender=grant.sender)
            self.before_send(task)
            started = time.perf_counter()
            receipt = await self._send(message, task)
        except PermanentDeliveryError as exc:
            self._answered(started, claimed_at)
            self.breaker.record_success()  # the provider answered: it is healthy
            self.metrics.provider_errors.labels(
                self.channel.name, "permanent", exc.code or "-"
            ).inc()
            return self._finished(delivery, DeliveryState.FAILED, f"permanent: {exc}")
        except TransientDeliveryError as exc:
            self._answered(started, claimed_at)
            return self._transient(delivery, exc)
        except BaseException:
            self.breaker.release_trial()
            raise
        self._answered(started, claimed_at)
        self.breaker.record_success()
        if receipt.rate_remaining is not None or receipt.rate_reset_at is not None:
            self.limiter.observe(receipt.rate_remaining, receipt.rate_reset_at)
        self._outcomes["sent"].inc()
        sent_at = self.now()
        since_received = (sent_at - stored.received_at).total_seconds()
        self.metrics.first_sent(self.channel.name, stored.id, since_received)
        if stored.alert.msg_type is MsgType.CANCEL:
            self.metrics.correction_sent(stored.id, since_received)
        return DeliveryOutcome(
            delivery.id, DeliveryState.SENT, sent_at, provider_ref=receipt.provider_ref
        )

    def _answered(self, started: float | None, claimed_at: float | None) -> None:
        """The provider answered (or the send timed out): time the send, and the whole way
        from the claim."""
        if started is None:  # the error came before the send started
            return
        now = time.perf_counter()
        self._send_seconds.observe(now - started)
        if claimed_at is not None:
            self._latency_seconds.observe(now - claimed_at)

    async def watch_deadlines(self) -> None:
        """Run for the life of the channel: cancel sends past `send_timeout`, which then
        fail as transient. Precision is a quarter of the timeout (at most 1 s)."""
        period = min(1.0, self.send_timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for task, deadline in list(self._deadlines.items()):
                if now >= deadline and task not in self._timed_out:
                    self._timed_out.add(task)
                    task.cancel()

    async def _send(self, message: Outbound, task: asyncio.Task[Any]) -> SendReceipt:
        """The channel's send with a deadline; a timeout or an unexpected exception from an
        adapter is transient (retried, and bounded by the retry policy)."""
        self._deadlines[task] = time.monotonic() + self.send_timeout
        try:
            return await self.channel.send(message)
        except asyncio.CancelledError as exc:
            if task not in self._timed_out:
                raise  # a real cancellation (shutdown)
            raise TransientDeliveryError(f"no answer within {self.send_timeout:g} s") from exc
        except TimeoutError as exc:  # the channel's own deadline
            raise TransientDeliveryError(f"timed out: {exc}") from exc
        except (TransientDeliveryError, PermanentDeliveryError):
            raise
        except Exception as exc:  # an adapter bug must not kill the worker
            log.exception("channel %s raised an unexpected error", self.channel.name)
            raise TransientDeliveryError(f"unexpected {type(exc).__name__}") from exc
        finally:
            del self._deadlines[task]
            if task in self._timed_out:
                # Our watchdog's cancel, consumed here: the worker goes on.
                self._timed_out.discard(task)
                task.uncancel()

    def _transient(self, delivery: ClaimedDelivery, exc: TransientDeliveryError) -> DeliveryOutcome:
        code = "rate_limited" if exc.retry_after is not None else "transient"
        self.metrics.provider_errors.labels(self.channel.name, "transient", code).inc()
        if exc.retry_after is not None:
            # The provider says slow down: that is about the account, not this message.
            self.limiter.pause_for(exc.retry_after)
            self.breaker.release_trial()
        else:
            self.breaker.record_failure()
        now = self.now()
        delay = self.retry.backoff(delivery.attempts, retry_after=exc.retry_after, rand=self.rand)
        age = (now - delivery.created_at).total_seconds()
        if self.retry.gives_up(delivery.attempts, age_seconds=age, delay_seconds=delay):
            return self._finished(
                delivery,
                DeliveryState.FAILED,
                f"gave up after {delivery.attempts} attempt(s): {exc}",
            )
        self._outcomes["retry"].inc()
        return DeliveryOutcome(
            delivery.id,
            DeliveryState.PENDING,
            now,
            error=f"attempt {delivery.attempts}: {exc}",
            next_attempt_at=now + timedelta(seconds=delay),
        )

    async def _stopped(self, stored: StoredAlert, key: tuple[str, str, str]) -> str | None:
        """Why this alert sends no more, or None. Waits while a Cancel of it commits."""
        while True:
            status = self.fence.status(key)
            if status is FenceStatus.CLOSED:
                return "alert was cancelled"
            if status is FenceStatus.OPEN:
                break
            await self.fence.wait_settled()
        state = self.alerts.peek_state(stored.id)
        if state is None:
            state = await self.alerts.state(stored.id)
        if state in _STOPPED_STATES:
            return f"alert was {state.value}"
        return None

    def _expired(self, delivery: ClaimedDelivery) -> bool:
        return delivery.expires_at is not None and delivery.expires_at <= self.now()

    def _finished(
        self, delivery: ClaimedDelivery, state: DeliveryState, error: str
    ) -> DeliveryOutcome:
        self._outcomes[state.value].inc()
        return DeliveryOutcome(delivery.id, state, self.now(), error=error)
