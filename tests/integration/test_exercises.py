"""Test versus live: Exercise, Test and System alerts are planned only for recipients
configured for exercises (an SMS exercise group, X accounts, webhook receivers), through
the real engine and the Twilio and X simulators."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from adapters.simulators.twilio import TwilioSimulator
from adapters.simulators.x import XSimulator
from adapters.webhook import WebhookChannel
from adapters.x import XChannel
from alerts.models import Status
from alerts.render import STATUS_MARKERS
from alerts.requests import AlertRequest
from alerts.sms import SMS_STATUS_MARKERS
from broadcaster.audience import SubscriberDirectory
from broadcaster.config import WebhookReceiver
from broadcaster.errors import PayloadError
from broadcaster.intake import PayloadFormat, Submission
from broadcaster.planner import Planner
from broadcaster.ports import PlannedDelivery
from tests.integration.engine import alert_body, engine, submit, until, until_outbox_empty
from tests.integration.test_sms_channel import CENTRE, channel_for, people
from tests.integration.test_x_channel import settings_for
from tests.support.recording_channel import RecordingChannel

DRILL_GROUP = "exercise"


async def test_an_exercise_never_reaches_a_live_subscriber(tmp_path: Path) -> None:
    """An Exercise goes by SMS only to the exercise group, marked; a channel with no
    exercise audience gets nothing; the Actual alert after it reaches everyone."""
    subscribers = people(10)
    subscribers[:3] = [dataclasses.replace(s, groups=(DRILL_GROUP,)) for s in subscribers[:3]]
    drill_phones = {s.phone for s in subscribers[:3]}
    recording = RecordingChannel()
    async with TwilioSimulator(mps=50) as twilio:
        sms = channel_for(twilio, SubscriberDirectory(subscribers), exercise_group=DRILL_GROUP)
        async with engine(tmp_path, sms, recording) as service:
            drill = await submit(service, status="Exercise", areas=[CENTRE])
            service.start_dispatcher()
            await until_outbox_empty(service)
            assert {m["to"] for m in twilio.messages} == drill_phones
            marker = SMS_STATUS_MARKERS[Status.EXERCISE]
            assert all(m["body"].startswith(marker) for m in twilio.messages)
            assert recording.sends == []
            assert await service.store.delivery_counts(drill.id) == {"sms": {"sent": 3}}
            await submit(service, areas=[CENTRE])
            await until(lambda: len(twilio.messages) == 13, 10, "the live alert to all ten")
            await until(lambda: len(recording.sends) == 1, 5, "the live alert on recording")


async def test_without_an_exercise_group_sms_plans_no_exercise(tmp_path: Path) -> None:
    """With no `exercise_group` an exercise or test is planned for nobody by SMS."""
    async with TwilioSimulator(mps=50) as twilio:
        sms = channel_for(twilio, SubscriberDirectory(people(5)))
        async with engine(tmp_path, sms) as service:
            service.start_dispatcher()  # which closes the channel when it stops
            for status in ("Exercise", "Test", "System"):
                alert = await submit(service, status=status, areas=[CENTRE])
                assert await service.store.delivery_counts(alert.id) == {}
    assert twilio.messages == []


@pytest.mark.parametrize("enabled", [False, True])
async def test_a_test_alert_reaches_only_an_x_account_enabled_for_exercises(
    tmp_path: Path, enabled: bool
) -> None:
    """A Test alert is posted, with its TEST marker, only where `exercises = true`."""
    async with XSimulator() as x_sim:
        channel = XChannel(settings_for(x_sim, exercises=enabled), public_url=None)
        async with engine(tmp_path, channel) as service:
            alert = await submit(service, status="Test")
            service.start_dispatcher()
            await until_outbox_empty(service)
            counts = await service.store.delivery_counts(alert.id)
        if enabled:
            assert counts == {"x": {"sent": 1}}
            [post] = x_sim.posts
            assert post["text"].startswith(STATUS_MARKERS[Status.TEST])
        else:
            assert counts == {}
            assert x_sim.posts == []


async def test_webhook_receivers_opt_in_to_exercises_one_by_one() -> None:
    """Only receivers with `exercises = true` are an exercise's audience; all are live's."""
    receivers = [
        WebhookReceiver(url="https://live.example/hook", secret=SecretStr("s1")),
        WebhookReceiver(url="https://drill.example/hook", secret=SecretStr("s2"), exercises=True),
    ]
    async with aiohttp.ClientSession() as session:
        channel = WebhookChannel(receivers, session)
        alert = AlertRequest.model_validate(alert_body(status="Exercise")).to_alert(
            identifier="x", sender="s@example", sent=datetime.now(UTC)
        )
        assert channel.exercise_audience(alert) == ["https://drill.example/hook"]
        assert channel.audience(alert) == [r.url for r in receivers]
        # Asking for the web channel plans the webhooks the same way: a drill only to the
        # receiver that opted in.
        planner = Planner({"webhook": channel})
        assert planner.plan(alert, ("web",)) == (
            PlannedDelivery("webhook", "https://drill.example/hook"),
        )


async def test_an_exercise_may_not_cancel_a_live_alert(tmp_path: Path) -> None:
    """An Exercise Cancel naming a live alert is refused (its correction would reach the
    live alert's recipients)."""
    async with engine(tmp_path, RecordingChannel()) as service:
        live = await submit(service)
        body = json.dumps(
            alert_body(status="Exercise", msg_type="Cancel", references=[live.id])
        ).encode()
        with pytest.raises(PayloadError) as refused:
            await service.intake.submit(
                Submission(body=body, format=PayloadFormat.JSON, source="rest", actor="t")
            )
        assert refused.value.code == "live_reference"
