"""Channels: where messages go, how fast they may go, and what one send carries and returns.

A `Channel` (implemented in adapters/) sends one `Outbound` within its `ChannelLimits` and
answers with a `SendReceipt` or raises a delivery error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from alerts.models import Alert
from broadcaster.ports.alerts import ClaimedDelivery, StoredAlert


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """How fast and how wide a channel may send. Rates are in cost units per second (one
    unit per message; SMS counts segments). A limit of None is no limit."""

    # The whole channel, whatever the sender.
    rate_per_second: float | None = None
    burst: int = 1
    # Sender keys that share the load (SMS from-numbers; one account elsewhere).
    senders: tuple[str, ...] = ("default",)
    sender_rate_per_second: float | None = None
    sender_burst: int = 1
    # A provider quota per fixed window (X: posts per 15 minutes), corrected by its headers.
    window_limit: int | None = None
    window_seconds: float = 900.0
    # Sends in flight at once.
    concurrency: int = 16
    # Pace this fraction slower than the rates above, so jitter between our send and the
    # provider's count never shows a window over the limit (see TokenBucket).
    safety: float = 0.01


@dataclass(frozen=True, slots=True)
class Outbound:
    """One send: the claimed delivery, its alert, and the sender key the rate limiter chose."""

    delivery: ClaimedDelivery
    alert: StoredAlert
    sender: str


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """The provider accepted the message. Rate fields carry the provider's own view of the
    budget (X's x-rate-limit-remaining / -reset, reset as epoch seconds) when it sends one."""

    provider_ref: str | None = None
    rate_remaining: int | None = None
    rate_reset_at: float | None = None


class Channel(Protocol):
    """Where messages go. Implementations live in adapters/ and render with alerts/."""

    @property
    def name(self) -> str: ...

    @property
    def limits(self) -> ChannelLimits: ...

    def audience(self, alert: Alert) -> Sequence[str]:
        """The recipients of `alert` on this channel, decided when the alert is planned."""
        ...

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        """Rate-limit units this message uses (1; SMS: its segment count). At least 1."""
        ...

    async def send(self, message: Outbound) -> SendReceipt:
        """Send once. Raises TransientDeliveryError (retry: timeouts, connection errors,
        5xx, 429 with retry_after) or PermanentDeliveryError (never retry this one)."""
        ...

    async def close(self) -> None: ...
