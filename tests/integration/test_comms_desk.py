"""Comms-desk safeguards over real HTTP: the two-person rule (approve, reject, expiry),
alerts from templates, and the one-step correction (cancel), through the real engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from adapters.server import running_service
from adapters.simulators.twilio import TwilioSimulator
from adapters.sms import SmsChannel
from adapters.store import open_store
from broadcaster.audience import SubscriberDirectory
from broadcaster.auth import create_token
from broadcaster.config import SmsSettings, load_settings
from broadcaster.ports import Channel, Role
from tests.conftest import RunningService
from tests.integration.engine import alert_body, until, until_outbox_empty
from tests.integration.test_sms_channel import CENTRE, SENDERS, people
from tests.support.recording_channel import RecordingChannel

MARKET = {"description": "Market St", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 2}}


@contextlib.asynccontextmanager
async def desk(
    tmp_path: Path, extra_channels: Mapping[str, Channel], **overrides: Any
) -> AsyncIterator[RunningService]:
    """The whole service on loopback with these channels, a token per role and a second
    issuer (`tokens["issuer2"]`)."""
    overrides.setdefault("database", {"url": f"sqlite:///{tmp_path / 'desk.db'}"})
    overrides.setdefault("http", {"port": 0})
    overrides.setdefault("delivery", {"poll_seconds": 0.05, "shutdown_grace_seconds": 1.0})
    settings = load_settings(None, **overrides)
    async with (
        running_service(settings, extra_channels=extra_channels) as (service, url),
        aiohttp.ClientSession() as http,
    ):
        running = RunningService(service, url, http)
        for role in Role:
            running.tokens[role], _ = await create_token(
                service.store, role=role, name=f"test-{role.value}"
            )
        yield running


async def call(
    app: RunningService, method: str, path: str, role: Role, body: Any = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    async with app.http.request(
        method, app.url + path, json=body, headers={**app.auth(role), **headers}
    ) as response:
        return response.status, await response.json()


async def issue(app: RunningService, role: Role = Role.ISSUER, **fields: Any) -> dict[str, Any]:
    status, view = await call(app, "POST", "/v1/alerts", role, alert_body(**fields))
    assert status == 201, view
    return view


async def audit_actions(app: RunningService, action: str) -> list[dict[str, Any]]:
    rows = await app.service.store.audit_rows(0, 1000)
    return [{"actor": r.actor, **r.detail} for r in rows if r.action == action]


async def page_status(app: RunningService, alert_id: str) -> int:
    async with app.http.get(f"{app.url}/alerts/{alert_id}") as response:
        return response.status


# --- the two-person rule ------------------------------------------------------------------


async def test_an_extreme_alert_without_approval_sends_nothing(tmp_path: Path) -> None:
    """An Extreme alert is held pending_approval: nothing planned, sent or public."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        view = await issue(app, severity="Extreme")
        assert view["state"] == "pending_approval"
        await asyncio.sleep(0.5)
        assert channel.sends == []
        status, fetched = await call(app, "GET", f"/v1/alerts/{view['id']}", Role.ISSUER)
        assert (status, fetched["deliveries"]) == (200, {})
        assert await page_status(app, view["id"]) == 404


async def test_self_approval_is_refused_and_another_approver_sends_it(tmp_path: Path) -> None:
    """The issuer cannot approve their own alert (403 self_approval), an issuer role cannot
    approve at all; an approver's approval plans, sends, publishes and is audited."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        # An admin may issue and approve, but not both for one alert.
        view = await issue(app, Role.ADMIN, severity="Extreme")
        path = f"/v1/alerts/{view['id']}/approve"
        status, error = await call(app, "POST", path, Role.ADMIN, {"reason": "mine"})
        assert (status, error["error"]) == (403, "self_approval")
        status, error = await call(app, "POST", path, Role.ISSUER, {"reason": "looks fine"})
        assert (status, error["error"]) == (403, "forbidden")
        status, error = await call(app, "POST", path, Role.APPROVER, {})
        assert (status, error["error"]) == (422, "reason_required")
        assert channel.sends == []
        status, approved = await call(app, "POST", path, Role.APPROVER, {"reason": "verified"})
        assert status == 200, approved
        assert approved["state"] == "accepted"
        assert approved["decision"]["by"] == "test-approver"
        assert approved["decision"]["reason"] == "verified"
        await until(lambda: len(channel.sends) == 1, 5, "the approved alert's send")
        assert channel.sends[0].alert_id == view["id"]
        assert await page_status(app, view["id"]) == 200
        status, error = await call(app, "POST", path, Role.APPROVER, {"reason": "again"})
        assert (status, error["error"]) == (409, "not_pending")
        [row] = await audit_actions(app, "alert.approve")
        assert (row["actor"], row["alert_id"], row["reason"]) == (
            "test-approver",
            view["id"],
            "verified",
        )


async def test_action_bodies_bare_wrong_type_or_broken_get_clear_4xx(tmp_path: Path) -> None:
    """approve / reject / cancel: a bare POST (no body, no type) is read as `{}`, so the
    answer names what is missing (422 reason_required); a body not JSON-typed is 415, broken
    JSON 400, a JSON array 422. Nothing changes state."""
    async with desk(tmp_path, {"recording": RecordingChannel()}) as app:
        view = await issue(app, severity="Extreme")
        for action in ("approve", "reject", "cancel"):
            url = f"{app.url}/v1/alerts/{view['id']}/{action}"
            role = Role.ISSUER if action == "cancel" else Role.APPROVER
            cases: list[tuple[bytes, dict[str, str], int, str]] = [
                (b"", {}, 422, "reason_required"),
                (b"reason=ok", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
                (b'{"reason": ', {"Content-Type": "application/json"}, 400, "malformed_json"),
                (b"[]", {"Content-Type": "application/json"}, 422, "invalid_request"),
            ]
            for body, headers, status, code in cases:
                async with app.http.post(
                    url, data=body, headers={**app.auth(role), **headers}
                ) as response:
                    answer = await response.json()
                    assert (response.status, answer["error"]) == (status, code), (
                        action,
                        body,
                        answer,
                    )
        status, fetched = await call(app, "GET", f"/v1/alerts/{view['id']}", Role.ISSUER)
        assert fetched["state"] == "pending_approval"


async def test_a_rejected_alert_is_never_sent_nor_public(tmp_path: Path) -> None:
    """Rejecting needs a reason, moves the alert to rejected, is audited; it cannot be
    approved afterwards and never reaches a channel or the public."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        view = await issue(app, severity="Extreme")
        path = f"/v1/alerts/{view['id']}/reject"
        status, rejected = await call(app, "POST", path, Role.APPROVER, {"reason": "wrong area"})
        assert status == 200, rejected
        assert rejected["state"] == "rejected"
        assert rejected["decision"]["reason"] == "wrong area"
        approve = f"/v1/alerts/{view['id']}/approve"
        status, error = await call(app, "POST", approve, Role.APPROVER, {"reason": "ok"})
        assert (status, error["error"]) == (409, "not_pending")
        await asyncio.sleep(0.3)
        assert channel.sends == []
        assert await page_status(app, view["id"]) == 404
        async with app.http.get(f"{app.url}/feed.atom") as response:
            assert view["id"] not in await response.text()
        [row] = await audit_actions(app, "alert.reject")
        assert (row["actor"], row["reason"]) == ("test-approver", "wrong area")
        status, error = await call(
            app, "POST", "/v1/alerts/nope/approve", Role.APPROVER, {"reason": "x"}
        )
        assert (status, error["error"]) == (404, "not_found")


async def test_an_unapproved_alert_expires_and_is_audited(tmp_path: Path) -> None:
    """The background expiry moves an alert nobody approved in time to expired_unapproved,
    by "system", audited; it is never sent."""
    channel = RecordingChannel()
    approval = {"pending_expiry_minutes": 0.005, "expiry_check_seconds": 0.05}
    async with desk(tmp_path, {"recording": channel}, approval=approval) as app:
        view = await issue(app, severity="Extreme")

        async def state() -> str:
            stored = await app.service.store.get_alert(view["id"])
            assert stored is not None
            return stored.state.value

        for _ in range(100):
            if await state() == "expired_unapproved":
                break
            await asyncio.sleep(0.05)
        _status, fetched = await call(app, "GET", f"/v1/alerts/{view['id']}", Role.ISSUER)
        assert fetched["state"] == "expired_unapproved"
        assert fetched["decision"]["by"] == "system"
        assert fetched["decision"]["reason"] == "not approved in time"
        [row] = await audit_actions(app, "alert.expire_unapproved")
        assert row["alert_id"] == view["id"]
        assert channel.sends == []


async def test_two_person_scopes_hold_alerts_but_never_a_cancel(tmp_path: Path) -> None:
    """With two_person_scopes = ["Public"] a Minor public alert is held too; its one-step
    correction (a Cancel) is never held."""
    channel = RecordingChannel()
    approval = {"two_person_severities": [], "two_person_scopes": ["Public"]}
    async with desk(tmp_path, {"recording": channel}, approval=approval) as app:
        view = await issue(app, severity="Minor")
        assert view["state"] == "pending_approval"
        path = f"/v1/alerts/{view['id']}/approve"
        status, _ = await call(app, "POST", path, Role.APPROVER, {"reason": "fine"})
        assert status == 200
        await until(lambda: len(channel.sends) == 1, 5, "the alert's send")
        status, cancel = await call(
            app, "POST", f"/v1/alerts/{view['id']}/cancel", Role.ISSUER, {"reason": "error"}
        )
        assert status == 201, cancel
        assert (cancel["state"], cancel["msg_type"]) == ("accepted", "Cancel")
        await until(lambda: len(channel.sends) == 2, 5, "the correction's send")


# --- test versus live ---------------------------------------------------------------------


async def test_the_alert_view_says_whether_it_is_live(tmp_path: Path) -> None:
    """`live` is true for Actual alerts only; an Exercise plans nothing on a channel that
    has no exercise audience."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        drill = await issue(app, status="Exercise")
        real = await issue(app)
        assert (drill["status"], drill["live"]) == ("Exercise", False)
        assert (real["status"], real["live"]) == ("Actual", True)
        await until(lambda: len(channel.sends) == 1, 5, "the live alert's send")
        await asyncio.sleep(0.2)
        assert [s.alert_id for s in channel.sends] == [real["id"]]


# --- templates ----------------------------------------------------------------------------


async def test_an_alert_from_a_template_goes_the_normal_way(tmp_path: Path) -> None:
    """from-template fills the template, records its name, is idempotent on the key, is
    planned and sent; an Extreme template is held for approval like any Extreme alert."""
    channel = RecordingChannel()
    async with desk(tmp_path, {"recording": channel}) as app:
        body = {"values": {"location": "Market Street"}, "areas": [MARKET]}
        path = "/v1/alerts/from-template/gas_leak"
        status, view = await call(app, "POST", path, Role.ISSUER, body, **{"Idempotency-Key": "k1"})
        assert status == 201, view
        assert view["template"] == "gas_leak"
        assert view["headline"] == "Gas leak near Market Street: keep away"
        assert view["alert"]["infos"][0]["language"] == "en-GB"
        assert [i["language"] for i in view["alert"]["infos"]] == ["en-GB", "cy", "es"]
        status, again = await call(
            app, "POST", path, Role.ISSUER, body, **{"Idempotency-Key": "k1"}
        )
        assert (status, again["id"]) == (200, view["id"])
        await until(lambda: len(channel.sends) == 1, 5, "the alert's send")
        armed = {
            "values": {"location": "Market Street"},
            "areas": [MARKET],
            "languages": ["en-GB"],
        }
        status, held = await call(
            app, "POST", "/v1/alerts/from-template/armed_incident", Role.ISSUER, armed
        )
        assert status == 201, held
        assert (held["severity"], held["state"]) == ("Extreme", "pending_approval")


async def test_from_template_errors_name_what_is_wrong(tmp_path: Path) -> None:
    """Unknown template 404; missing or invalid values 422 naming the fields; unknown body
    fields 422; no issuer role 403; GET /v1/templates lists placeholders and corrections."""
    async with desk(tmp_path, {"recording": RecordingChannel()}) as app:
        status, error = await call(
            app, "POST", "/v1/alerts/from-template/nope", Role.ISSUER, {"values": {}}
        )
        assert (status, error["error"]) == (404, "unknown_template")
        path = "/v1/alerts/from-template/gas_leak"
        status, error = await call(app, "POST", path, Role.ISSUER, {"values": {}})
        assert (status, error["error"]) == (422, "invalid_template_values")
        assert "location" in error["detail"]
        bad = {"values": {"location": "Market St\n<script>", "colour": "red"}}
        status, error = await call(app, "POST", path, Role.ISSUER, bad)
        assert status == 422
        assert "colour" in error["detail"]
        assert "location" in error["detail"]
        status, error = await call(app, "POST", path, Role.ISSUER, {"value": {}})
        assert status == 422
        assert "value" in error["detail"]
        status, _ = await call(app, "POST", path, Role.RESPONDER, {"values": {}})
        assert status == 403
        status, listing = await call(app, "GET", "/v1/templates", Role.APPROVER)
        assert status == 200
        templates = {t["name"]: t for t in listing["templates"]}
        assert templates["gas_leak"]["correction"] == "gas_leak_all_clear"
        assert "location" in templates["gas_leak"]["placeholders"]
        assert templates["false_alarm"]["kind"] == "correction"
        status, _ = await call(app, "GET", "/v1/templates", Role.RESPONDER)
        assert status == 403


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
