"""Builders for the Outbox store tests: alerts and their planned deliveries, claims and
outcomes.

Times are fixed (T0 and offsets from it) and passed explicitly as `now`, so the tests never
depend on the wall clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from alerts.models import Alert, Info, MsgType
from broadcaster.ports import (
    AlertState,
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryState,
    NewAlert,
    PlannedDelivery,
    Store,
)

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
LEASE = T0 + timedelta(seconds=60)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def make_alert(
    *,
    msg_type: MsgType = MsgType.ALERT,
    references: Sequence[str] = (),
    expires: datetime | None = None,
    sent: datetime = T0,
) -> Alert:
    return Alert(
        identifier=f"id-{uuid4().hex}",
        sender="test@example.org",
        sent=sent,
        status="Actual",
        msg_type=msg_type,
        scope="Public",
        references=tuple(references),
        infos=(
            Info(
                categories=("Safety",),
                event="Gas leak",
                urgency="Immediate",
                severity="Severe",
                certainty="Observed",
                headline="Avoid Market St",
                expires=expires,
            ),
        ),
    )


def make_new(
    alert: Alert | None = None,
    *,
    deliveries: Sequence[PlannedDelivery] = (),
    priority: int = 0,
    state: AlertState = AlertState.ACCEPTED,
    key: str | None = None,
    received_at: datetime = T0,
    **changes: object,
) -> NewAlert:
    alert = alert or make_alert()
    new = NewAlert(
        id=f"a-{uuid4().hex}",
        alert=alert,
        channels=tuple(sorted({d.channel for d in deliveries})),
        source="rest",
        state=state,
        created_by="issuer-1",
        idempotency_key=key,
        body_hash=hashlib.sha256(alert.model_dump_json().encode()).hexdigest(),
        cap_xml=None,
        received_at=received_at,
        deliveries=tuple(deliveries),
        priority=priority,
    )
    return dataclasses.replace(new, **changes)  # type: ignore[arg-type]


def plan(channel: str, *recipients: str) -> tuple[PlannedDelivery, ...]:
    return tuple(PlannedDelivery(channel, r) for r in recipients)


def cancel_of(*originals: NewAlert, **kwargs: object) -> NewAlert:
    refs = [o.alert.reference_key for o in originals]
    return make_new(make_alert(msg_type=MsgType.CANCEL, references=refs), **kwargs)  # type: ignore[arg-type]


async def claim(
    store: Store, channel: str = "sms", *, limit: int = 100, now: datetime = T0
) -> list[ClaimedDelivery]:
    return await store.claim_deliveries(channel, limit=limit, now=now, lease_until=LEASE)


async def records(store: Store, alert_id: str) -> dict[str, DeliveryRecord]:
    """An alert's deliveries by recipient (recipients are unique per test alert)."""
    return {r.recipient: r for r in await store.list_deliveries(alert_id, limit=1000)}


def outcome(delivery: ClaimedDelivery, state: DeliveryState, **kwargs: object) -> DeliveryOutcome:
    at = kwargs.pop("at", T0 + 5 * SECOND)
    return DeliveryOutcome(delivery.id, state, at, **kwargs)  # type: ignore[arg-type]
