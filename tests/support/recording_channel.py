"""A Channel that records every message it accepts and fails on demand: the fake provider
the delivery-engine tests drive. No mocks: it implements the real `Channel` port.

Failure modes (decided per send, from a seeded RNG so a run can be repeated):
- `fail_ratio`: a 5xx-like TransientDeliveryError; nothing recorded.
- `rate_limit_ratio`: a 429-like TransientDeliveryError with `retry_after`; nothing recorded.
- `lose_answer_ratio`: the message IS recorded (the provider accepted it), then a transient
  error as if the answer was lost on the way back; the retry will be a duplicate.
- `permanent_recipients`: PermanentDeliveryError for these recipients.
`sends` holds (monotonic time at the start of send, delivery id, alert id, recipient,
priority) for every accepted message, in acceptance order. The time is taken before any
await, i.e. at the instant the dispatcher handed the message over.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alerts.models import Alert
from broadcaster.errors import PermanentDeliveryError, TransientDeliveryError
from broadcaster.ports import ChannelLimits, Outbound, SendReceipt, StoredAlert


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    delivery_id: int
    alert_id: str
    recipient: str
    priority: int
    sender: str


@dataclass
class RecordingChannel:
    channel_name: str = "recording"
    channel_limits: ChannelLimits = field(default_factory=ChannelLimits)
    recipients: Callable[[Alert], Sequence[str]] = lambda alert: ["r0"]
    fail_ratio: float = 0.0
    rate_limit_ratio: float = 0.0
    retry_after: float = 0.2
    lose_answer_ratio: float = 0.0
    permanent_recipients: frozenset[str] = frozenset()
    latency: float = 0.0
    seed: int = 1
    sends: list[Sent] = field(default_factory=list)
    attempts: int = 0
    injected: dict[str, int] = field(
        default_factory=lambda: {"5xx": 0, "429": 0, "answer_lost": 0, "permanent": 0}
    )
    closed: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # fault injection: repeatable, not secret

    @property
    def name(self) -> str:
        return self.channel_name

    @property
    def limits(self) -> ChannelLimits:
        return self.channel_limits

    def audience(self, alert: Alert) -> Sequence[str]:
        return self.recipients(alert)

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        return 1

    async def send(self, message: Outbound) -> SendReceipt:
        at = time.monotonic()  # before any await: the hand-over instant
        self.attempts += 1
        delivery = message.delivery
        if delivery.recipient in self.permanent_recipients:
            self.injected["permanent"] += 1
            raise PermanentDeliveryError("recipient refused", code="21610")
        roll = self._rng.random()
        if roll < self.fail_ratio:
            self.injected["5xx"] += 1
            raise TransientDeliveryError("503 Service Unavailable")
        if roll < self.fail_ratio + self.rate_limit_ratio:
            self.injected["429"] += 1
            raise TransientDeliveryError("429 Too Many Requests", retry_after=self.retry_after)
        self.sends.append(
            Sent(
                at,
                delivery.id,
                delivery.alert_id,
                delivery.recipient,
                delivery.priority,
                message.sender,
            )
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._rng.random() < self.lose_answer_ratio:
            self.injected["answer_lost"] += 1
            raise TransientDeliveryError("connection reset before the answer")
        return SendReceipt(provider_ref=f"p{delivery.id}")

    async def close(self) -> None:
        self.closed = True


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window [t, t + window) over sorted `times`."""
    best = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
