"""The comms desk's one-step correction (cancel) over real HTTP, by SMS through the Twilio
simulator and the real engine, and an SMS audience that follows the database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from adapters.simulators.twilio import TwilioSimulator
from adapters.sms import SmsChannel
from adapters.store import open_store
from broadcaster.audience import SubscriberDirectory
from broadcaster.config import SmsSettings
from broadcaster.ports import Role
from tests.integration.engine import until, until_outbox_empty
from tests.integration.test_sms_channel import CENTRE, SENDERS, people
from tests.support.comms_desk import MARKET, audit_actions, call, desk, issue
from tests.support.recording_channel import RecordingChannel

# --- the one-step correction --------------------------------------------------------------


def sms_channel(simulator: TwilioSimulator, count: int) -> SmsChannel:
    settings = SmsSettings(
        account_sid=simulator.account_sid,
        auth_token=simulator.auth_token,
        from_numbers=SENDERS,
        api_base=simulator.url,
        rate_per_second=10,
        rate_margin=0.1,
        max_segments=2,
    )
    return SmsChannel(settings, SubscriberDirectory(people(count)), public_url=None)


async def test_cancel_corrects_exactly_those_reached_and_stops_the_rest(tmp_path: Path) -> None:
    """POST .../cancel mid fan-out: the false_alarm Cancel goes by SMS to exactly the numbers
    that got the original (as the Twilio simulator saw them), the rest is stopped; audited
    with the reason; the first send is timed in the metric; a second cancel is 409."""
    async with TwilioSimulator(mps=10) as twilio:
        channel = sms_channel(twilio, 200)
        async with desk(tmp_path, {"sms": channel}) as app:
            original = await issue(app, areas=[CENTRE])
            await until(lambda: len(twilio.messages) >= 30, 20, "30 messages")
            path = f"/v1/alerts/{original['id']}/cancel"
            status, cancel = await call(
                app, "POST", path, Role.APPROVER, {"reason": "sent in error"}
            )
            assert status == 201, cancel
            assert (cancel["msg_type"], cancel["template"], cancel["cancels"]) == (
                "Cancel",
                "false_alarm",
                original["id"],
            )
            await until_outbox_empty(app.service, 60)
            await asyncio.sleep(0.1)
            got = [m for m in twilio.messages if "FALSE ALARM" not in m["body"]]
            corrected = [m for m in twilio.messages if "FALSE ALARM" in m["body"]]
            assert 30 <= len(got) < 200
            assert sorted(m["to"] for m in corrected) == sorted(m["to"] for m in got)
            assert "Gas leak" in corrected[0]["body"]
            counts = await app.service.store.delivery_counts(original["id"])
            assert counts["sms"]["cancelled"] == 200 - len(got)
            stored = await app.service.store.get_alert(original["id"])
            assert stored is not None
            assert stored.state.value == "cancelled"
            [row] = await audit_actions(app, "alert.cancel")
            assert (row["actor"], row["reason"], row["cancel_id"]) == (
                "test-approver",
                "sent in error",
                cancel["id"],
            )
            registry = app.service.metrics.registry
            observed = registry.get_sample_value("broadcaster_correction_first_send_seconds_count")
            assert observed == 1
            status, error = await call(app, "POST", path, Role.ISSUER, {"reason": "again"})
            assert (status, error["error"]) == (409, "already_cancelled")
            status, _ = await call(app, "POST", path, Role.RESPONDER, {"reason": "x"})
            assert status == 403


async def test_cancel_uses_the_templates_own_correction(tmp_path: Path) -> None:
    """An alert from gas_leak is corrected with gas_leak_all_clear (as a Cancel), filled
    with the original's values; a pending alert cannot be cancelled (reject it)."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        body = {"values": {"location": "Market Street"}, "areas": [MARKET]}
        status, view = await call(
            app, "POST", "/v1/alerts/from-template/gas_leak", Role.ISSUER, body
        )
        assert status == 201
        await until(lambda: len(channel.sends) == 1, 5, "the alert's send")
        status, cancel = await call(
            app, "POST", f"/v1/alerts/{view['id']}/cancel", Role.ISSUER, {"reason": "made safe"}
        )
        assert status == 201, cancel
        assert cancel["template"] == "gas_leak_all_clear"
        assert cancel["msg_type"] == "Cancel"
        assert cancel["headline"] == "All clear: gas leak near Market Street"
        await until(lambda: len(channel.sends) == 2, 5, "the correction's send")
        assert channel.sends[1].alert_id == cancel["id"]
        held = await issue(app, severity="Extreme")
        status, error = await call(
            app, "POST", f"/v1/alerts/{held['id']}/cancel", Role.ISSUER, {"reason": "x"}
        )
        assert (status, error["error"]) == (409, "not_sent")


async def test_subscribers_written_by_another_process_are_texted_next(tmp_path: Path) -> None:
    """A subscriber written to the database by another process (as `subscribers import`
    does) is in the next alert's SMS audience without a restart; one deleted there is out."""
    database = tmp_path / "desk.db"
    async with TwilioSimulator(mps=100) as twilio:
        channel = sms_channel(twilio, 0)
        async with desk(
            tmp_path,
            {"sms": channel},
            channels={"sms": {"subscribers_poll_seconds": 0.1}},
        ) as app:
            await channel.directory.load(app.service.store)  # as serve does at start
            other = await open_store(f"sqlite:///{database}")  # the CLI's own connection
            try:
                newcomer, leaver = people(2)
                await other.upsert_subscribers([newcomer, leaver], datetime.now(UTC))
                await until(lambda: len(channel.directory) == 2, 5, "the import picked up")
                await issue(app, areas=[CENTRE])
                await until(lambda: len(twilio.messages) == 2, 10, "both texted")
                assert await other.delete_subscriber(leaver.phone)
                await until(lambda: len(channel.directory) == 1, 5, "the delete picked up")
                await issue(app, areas=[CENTRE])
                await until(lambda: len(twilio.messages) == 3, 10, "the third text")
            finally:
                await other.close()
        to = [m["to"] for m in twilio.messages]
        assert sorted(to[:2]) == sorted([newcomer.phone, leaver.phone])
        assert to[2:] == [newcomer.phone]
