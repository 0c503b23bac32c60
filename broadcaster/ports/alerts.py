"""Alert and delivery records: what the core stores about an alert and each message of it.

An alert (`NewAlert` to store, `StoredAlert` as stored) moves through `AlertState`; each of
its messages is a delivery that moves through `DeliveryState`, from `PlannedDelivery`
through the outbox (`ClaimedDelivery`, `DeliveryOutcome`) to what the API shows
(`DeliveryRecord`). The leaf of the ports package: imports no other port module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from alerts.models import Alert
from broadcaster.audit import AuditEntry
from broadcaster.storable import storable_text


class AlertState(StrEnum):
    """Where an accepted alert stands in its life (deliveries have their own states)."""

    ACCEPTED = "accepted"
    PENDING_APPROVAL = "pending_approval"
    # Referenced by a committed Cancel: nothing more of it is sent.
    CANCELLED = "cancelled"
    # Referenced by a committed Update: its pending deliveries stopped; the update replaces it.
    SUPERSEDED = "superseded"
    # Refused by an approver (two-person rule): never planned, never public.
    REJECTED = "rejected"
    # Nobody approved it within `approval.pending_expiry_minutes`: never planned, never public.
    EXPIRED_UNAPPROVED = "expired_unapproved"


class DeliveryState(StrEnum):
    """pending -> sending -> sent | failed | cancelled | expired; receipts later move a sent
    delivery to delivered | undelivered | failed."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"


# States whose recipient has received the message, and so is owed the correction when the
# alert is updated or cancelled. A delivery `sending` at that moment is owed it only if it
# turns out sent: `finish_deliveries` plans the correction then.
REACHED_STATES: tuple[DeliveryState, ...] = (DeliveryState.SENT, DeliveryState.DELIVERED)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One message to send: the alert on `channel` to `recipient` (a phone number, an account,
    a webhook URL ...; opaque to the core)."""

    channel: str
    recipient: str


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert ready to be stored. `idempotency_key` is already scoped to its issuer."""

    id: str
    alert: Alert
    channels: tuple[str, ...]
    source: str
    state: AlertState
    created_by: str | None
    idempotency_key: str | None
    body_hash: str
    cap_xml: str | None
    received_at: datetime
    # Written in the alert's own transaction, only when the alert is created in state
    # `accepted` (an alert pending approval plans nothing until it is approved).
    deliveries: tuple[PlannedDelivery, ...] = ()
    # Claim order of those deliveries: lower goes first (see planner.delivery_priority).
    priority: int = 0
    # The pre-approved template it was filled from (alerts.template_library), with the
    # values given, so that its ready correction can be filled from them.
    template: str | None = None
    template_values: tuple[tuple[str, str], ...] = ()
    # Appended to the audit log, in this order, in the alert's own transaction when it is
    # created (not for a repeat), so no stored alert lacks its `alert.create` row, nor a
    # one-step cancel its `alert.cancel` row.
    audit: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as stored; `seq` orders alerts by arrival and pages lists."""

    seq: int
    id: str
    alert: Alert
    channels: tuple[str, ...]
    source: str
    state: AlertState
    created_by: str | None
    idempotency_key: str | None
    body_hash: str
    cap_xml: str | None
    received_at: datetime
    template: str | None = None
    template_values: tuple[tuple[str, str], ...] = ()
    # Who approved or rejected it (a token name, or "system" when it expired unapproved),
    # when and why; None while nobody has.
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None


class AlertEventKind(StrEnum):
    """What an alert event tells the public: a new alert, an update of one, a cancellation."""

    CREATED = "created"
    UPDATED = "updated"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert became public (stored accepted, or approved later). `seq` only grows within
    one store and is the SSE event id; it may have gaps."""

    seq: int
    alert_id: str
    kind: AlertEventKind
    at: datetime


@dataclass(frozen=True, slots=True)
class InsertResult:
    """`created` is False when an equal alert (same idempotency key, or same CAP
    sender+identifier+sent) was already stored; `alert` is then that earlier alert, and the
    caller compares `body_hash` to spot a key reused for a different body."""

    alert: StoredAlert
    created: bool


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery leased to one worker (state `sending`). `attempts` counts this attempt."""

    id: int
    alert_id: str
    channel: str
    recipient: str
    priority: int
    attempts: int
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What became of a claimed delivery. `state` is SENT, FAILED, CANCELLED, EXPIRED, or
    PENDING for a retry at `next_attempt_at`."""

    delivery_id: int
    state: DeliveryState
    at: datetime
    provider_ref: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None

    def __post_init__(self) -> None:
        # A provider's answer (its error text, its id for the message) is outside input: one
        # character PostgreSQL cannot store would stop the whole batch of outcomes being
        # recorded, and every delivery in it would be claimed and sent again.
        for name in ("provider_ref", "error"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, storable_text(value))


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as the API shows it."""

    id: int
    alert_id: str
    channel: str
    recipient: str
    state: DeliveryState
    priority: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    provider_ref: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """Open deliveries of one channel in one state (pending or sending), and the creation
    time of the oldest of them: the outbox gauges."""

    channel: str
    state: str
    count: int
    oldest: datetime | None
