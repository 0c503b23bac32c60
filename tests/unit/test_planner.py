"""Planner, priority, cancel fence, and how intake uses them (no I/O)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from alerts.models import Alert, MsgType, Severity, Status, Urgency, reference_parts
from alerts.requests import AlertRequest
from broadcaster.errors import PayloadError
from broadcaster.fence import CancelFence, FenceStatus
from broadcaster.intake import IntakeService, PayloadFormat, Submission
from broadcaster.metrics import Metrics
from broadcaster.planner import Planner, delivery_priority
from broadcaster.ports import AlertState, PlannedDelivery
from tests.support.fake_store import MemoryStore
from tests.support.recording_channel import RecordingChannel

SENT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_alert(**fields: object) -> Alert:
    body: dict[str, object] = {"event": "Fire", "headline": "Leave", "severity": "Severe"}
    body.update(fields)
    references = tuple(str(r) for r in body.pop("references", []))  # type: ignore[attr-defined]
    return AlertRequest.model_validate(body).to_alert(
        identifier="a1", sender="desk@example.org", sent=SENT, references=references
    )


def channels(**audiences: Sequence[str]) -> dict[str, RecordingChannel]:
    return {
        name: RecordingChannel(channel_name=name, recipients=lambda a, r=recipients: list(r))
        for name, recipients in audiences.items()
    }


def test_priority_puts_extreme_or_immediate_first_then_severity() -> None:
    """Extreme or Immediate come first, then by severity; lower sorts first."""
    ranked = sorted(
        [
            ("minor-future", make_alert(severity="Minor", urgency="Future")),
            ("severe-expected", make_alert(severity="Severe", urgency="Expected")),
            ("minor-immediate", make_alert(severity="Minor", urgency="Immediate")),
            ("extreme-future", make_alert(severity="Extreme", urgency="Future")),
            ("moderate-expected", make_alert(severity="Moderate", urgency="Expected")),
        ],
        key=lambda item: delivery_priority(item[1]),
    )
    assert [name for name, _ in ranked] == [
        "extreme-future",
        "minor-immediate",
        "severe-expected",
        "moderate-expected",
        "minor-future",
    ]


def test_plan_covers_every_channel_when_none_is_named() -> None:
    """No channels named: every configured channel, each recipient once, in order."""
    planner = Planner(channels(sms=["+1", "+2", "+1"], x=["@feed"]))
    assert planner.plan(make_alert(), ()) == (
        PlannedDelivery("sms", "+1"),
        PlannedDelivery("sms", "+2"),
        PlannedDelivery("x", "@feed"),
    )
    assert planner.plan(make_alert(), ("x",)) == (PlannedDelivery("x", "@feed"),)


def test_plan_of_draft_cancel_and_ack_is_empty() -> None:
    """Drafts, Acks and Cancels plan nothing (a Cancel goes to whom the store says)."""
    planner = Planner(channels(sms=["+1"]))
    assert planner.plan(make_alert(status=Status.DRAFT.value), ()) == ()
    cancel = make_alert(msg_type=MsgType.CANCEL.value, references=["a,b,2026-01-01T00:00:00Z"])
    assert planner.plan(cancel, ()) == ()
    assert planner.plan(make_alert(msg_type=MsgType.UPDATE.value, references=["a,b,c"]), ()) == (
        PlannedDelivery("sms", "+1"),
    )


def test_requested_channel_must_be_available() -> None:
    """A channel that is not configured is refused by name; web is always available."""
    planner = Planner(channels(sms=["+1"]))
    planner.check_requested(("sms", "web"))
    with pytest.raises(PayloadError, match=r"channels.1: channel 'x' is not configured"):
        planner.check_requested(("sms", "x"))


async def test_fence_holds_then_closes_or_reopens() -> None:
    """A held alert waits for the commit; it closes on commit and reopens on failure."""
    fence = CancelFence()
    key = ("desk", "a1", "2026-11-22T12:00:00+00:00")
    fence.hold([key])
    fence.hold([key])
    assert fence.status(key) is FenceStatus.HELD
    waiter = asyncio.create_task(fence.wait_settled())
    await asyncio.sleep(0)
    fence.settle([key], stopped=False)
    await asyncio.wait_for(waiter, 1)
    assert fence.status(key) is FenceStatus.HELD  # the second hold is still open
    fence.settle([key], stopped=True)
    assert fence.status(key) is FenceStatus.CLOSED
    other = ("desk", "a2", "2026-11-22T12:00:00+00:00")
    fence.hold([other])
    fence.settle([other], stopped=False)
    assert fence.status(other) is FenceStatus.OPEN


async def test_intake_plans_accepted_alerts_and_closes_the_fence_on_cancel() -> None:
    """Intake stores planned deliveries with an accepted alert, none pending approval, and
    a committed Cancel closes the fence on the alert it names."""
    store = MemoryStore()
    fence = CancelFence()
    woken: list[bool] = []
    intake = IntakeService(
        store,
        sender="desk@example.org",
        two_person_severities=frozenset({Severity.EXTREME}),
        metrics=Metrics(),
        planner=Planner(channels(sms=["+1", "+2"])),
        fence=fence,
        on_planned=lambda: woken.append(True),
    )

    async def submit(**fields: object) -> str:
        body = {"event": "Fire", "headline": "Leave", "severity": "Severe", **fields}
        submission = Submission(json.dumps(body).encode(), PayloadFormat.JSON, "rest", "t1")
        return (await intake.submit(submission))[0].alert.id

    first = await submit(urgency=Urgency.IMMEDIATE.value)
    assert [p for a, p in store.planned if a == first] == [
        PlannedDelivery("sms", "+1"),
        PlannedDelivery("sms", "+2"),
    ]
    assert woken == [True]
    pending = await submit(severity="Extreme")
    assert not [p for a, p in store.planned if a == pending]
    stored = await store.get_alert(pending)
    assert stored is not None
    assert stored.state is AlertState.PENDING_APPROVAL
    await submit(msg_type="Cancel", references=[first])
    original = await store.get_alert(first)
    assert original is not None
    assert fence.status(reference_parts(original.alert.reference_key)) is FenceStatus.CLOSED
    with pytest.raises(PayloadError, match="not configured"):
        await submit(channels=["x"])


def test_web_includes_the_webhook_receivers() -> None:
    """Asking for `web` plans the webhooks too (`[channels.web] webhooks`), once each;
    `webhook` alone names only them; with no webhook channel `web` plans nothing."""
    planner = Planner(channels(sms=["+1"], webhook=["https://a.example/hook"]))
    hook = PlannedDelivery("webhook", "https://a.example/hook")
    assert planner.plan(make_alert(), ("web",)) == (hook,)
    assert planner.plan(make_alert(), ("webhook", "web", "sms")) == (
        hook,
        PlannedDelivery("sms", "+1"),
    )
    assert Planner(channels(sms=["+1"])).plan(make_alert(), ("web",)) == ()
