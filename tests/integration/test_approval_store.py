"""The store side of the two-person rule, on SQLite and PostgreSQL: approval plans and
publishes in one transaction (with an Update's supersession), refusals, pending listing,
and the template an alert came from."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from alerts.models import MsgType
from broadcaster.audit import AuditEntry, verify_chain
from broadcaster.ports import AlertState, DeliveryOutcome, DeliveryState, PlannedDelivery, Store
from tests.integration.test_store import make_alert, make_new

PHONES = ("+447900000001", "+447900000002", "+447900000003")


def entry(action: str, alert_id: str) -> AuditEntry:
    return AuditEntry(
        datetime.now(UTC), "approver-1", action, {"alert_id": alert_id, "reason": "ok"}
    )


async def test_approve_plans_publishes_and_audits_in_one_go(store: Store) -> None:
    """Approving a pending alert moves it to accepted with its deliveries, decision, alert
    event and audit row; a second decision finds it no longer pending."""
    new = make_new(state=AlertState.PENDING_APPROVAL)
    await store.insert_alert(new)
    assert await store.delivery_counts(new.id) == {}
    events_before = await store.last_event_seq()
    at = datetime.now(UTC)
    planned = [PlannedDelivery("sms", p) for p in PHONES]
    approved = await store.approve_alert(
        new.id, planned, 3, by="approver-1", reason="checked", at=at, audit=entry("a", new.id)
    )
    assert approved is not None
    assert approved.state is AlertState.ACCEPTED
    assert (approved.decided_by, approved.decision_reason) == ("approver-1", "checked")
    assert approved.decided_at == at
    assert await store.delivery_counts(new.id) == {"sms": {"pending": 3}}
    [event] = await store.events_after(events_before, 10)
    assert event.alert_id == new.id
    rows = await store.audit_rows(0, 100)
    assert [r.action for r in rows] == ["a"]
    assert verify_chain(rows) is None
    again = await store.approve_alert(
        new.id, planned, 3, by="x", reason="again", at=at, audit=entry("b", new.id)
    )
    assert again is None
    assert (
        await store.reject_alert(
            new.id, AlertState.REJECTED, by="x", reason="no", at=at, audit=entry("c", new.id)
        )
        is None
    )
    assert [r.action for r in await store.audit_rows(0, 100)] == ["a"]


async def test_approved_update_supersedes_what_it_references(store: Store) -> None:
    """An Update approved later stops the original's pending deliveries and is planned to
    those it reached, as an Update accepted at once would be."""
    original = make_new()
    original = dataclasses.replace(
        original, deliveries=tuple(PlannedDelivery("sms", p) for p in PHONES)
    )
    await store.insert_alert(original)
    now = datetime.now(UTC)
    claimed = await store.claim_deliveries(
        "sms", limit=1, now=now + timedelta(seconds=1), lease_until=now + timedelta(minutes=1)
    )
    await store.finish_deliveries([DeliveryOutcome(claimed[0].id, DeliveryState.SENT, now)])
    alert = make_alert()
    update_alert = alert.model_copy(
        update={"msg_type": MsgType.UPDATE, "references": (original.alert.reference_key,)}
    )
    update = make_new(update_alert, state=AlertState.PENDING_APPROVAL)
    await store.insert_alert(update)
    assert (await store.get_alert(original.id)).state is AlertState.ACCEPTED  # type: ignore[union-attr]
    approved = await store.approve_alert(
        update.id, [], 1, by="approver-1", reason="ok", at=now, audit=entry("a", update.id)
    )
    assert approved is not None
    assert (await store.get_alert(original.id)).state is AlertState.SUPERSEDED  # type: ignore[union-attr]
    assert await store.delivery_counts(original.id) == {"sms": {"sent": 1, "cancelled": 2}}
    rows = await store.list_deliveries(update.id, limit=10)
    assert [(r.channel, r.recipient) for r in rows] == [("sms", claimed[0].recipient)]


async def test_reject_and_expire_are_refusals_that_plan_nothing(store: Store) -> None:
    """Rejected and expired_unapproved alerts keep no deliveries and no alert event;
    `pending_alerts` lists only the pending ones received before the cut-off."""
    old = make_new(
        state=AlertState.PENDING_APPROVAL, received_at=datetime.now(UTC) - timedelta(hours=2)
    )
    fresh = make_new(state=AlertState.PENDING_APPROVAL)
    other = make_new(state=AlertState.PENDING_APPROVAL)
    for new in (old, fresh, other):
        await store.insert_alert(new)
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    assert [a.id for a in await store.pending_alerts(cutoff, 10)] == [old.id]
    now = datetime.now(UTC)
    expired = await store.reject_alert(
        old.id,
        AlertState.EXPIRED_UNAPPROVED,
        by="system",
        reason="not approved in time",
        at=now,
        audit=entry("expire", old.id),
    )
    assert expired is not None
    assert expired.state is AlertState.EXPIRED_UNAPPROVED
    rejected = await store.reject_alert(
        other.id,
        AlertState.REJECTED,
        by="approver-1",
        reason="wrong area",
        at=now,
        audit=entry("reject", other.id),
    )
    assert rejected is not None
    assert rejected.decision_reason == "wrong area"
    assert await store.pending_alerts(now + timedelta(hours=1), 10) == [
        await store.get_alert(fresh.id)
    ]
    assert await store.last_event_seq() == 0
    assert [r.action for r in await store.audit_rows(0, 10)] == ["expire", "reject"]


async def test_template_and_its_values_are_stored_with_the_alert(store: Store) -> None:
    """An alert filled from a template reads back with the template's name and values."""
    new = make_new(template="gas_leak", template_values=(("location", "Market St"),))
    result = await store.insert_alert(new)
    assert result.alert.template == "gas_leak"
    stored = await store.get_alert(new.id)
    assert stored is not None
    assert (stored.template, stored.template_values) == ("gas_leak", (("location", "Market St"),))
    plain = make_new()
    await store.insert_alert(plain)
    assert (await store.get_alert(plain.id)).template is None  # type: ignore[union-attr]
