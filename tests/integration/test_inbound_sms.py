"""Inbound SMS end to end: the Twilio simulator texts the service's signed webhook; replies are
stored and linked, keywords change subscriptions, and poll answers are counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.simulators.twilio import TwilioSimulator
from adapters.store.sqlite import SqliteStore
from broadcaster.ports import ReplySource, Role, Subscriber
from broadcaster.sms_inbox import HELP_TEXT
from tests.conftest import RunningService
from tests.support.broker import free_port
from tests.support.replies import all_replies, eventually, sms_channel, start_listening

PHONES = ["+447911000001", "+447911000002", "+447911000003"]
NEWCOMER = "+447911000099"
CENTRE = {"description": "centre", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 5}}


def alert(headline: str, **fields: Any) -> dict[str, Any]:
    return {
        "event": "Gas leak",
        "headline": headline,
        "severity": "Severe",
        "urgency": "Immediate",
        "channels": ["sms"],
        "areas": [CENTRE],
        **fields,
    }


class Sms:
    """The service with SMS through the simulator, and a way to text it."""

    def __init__(self, app: RunningService, twilio: TwilioSimulator, public: str) -> None:
        self.app = app
        self.twilio = twilio
        self.hook = f"{public}/hooks/twilio/sms"

    async def text(self, phone: str, body: str, **kwargs: Any) -> tuple[int, str]:
        return await self.twilio.send_inbound(self.hook, phone, body, **kwargs)

    async def post_alert(self, body: dict[str, Any]) -> str:
        async with self.app.http.post(
            f"{self.app.url}/v1/alerts", json=body, headers=self.app.auth(Role.ISSUER)
        ) as response:
            assert response.status == 201, await response.text()
            alert_id: str = (await response.json())["id"]

        async def settled() -> bool:
            rows = await self.app.service.store.list_deliveries(alert_id, limit=100)
            return all(r.state.value in ("sent", "delivered") for r in rows)

        await eventually(settled, what=f"alert {alert_id} sent")
        return alert_id

    async def recipients(self, alert_id: str) -> set[str]:
        rows = await self.app.service.store.list_deliveries(alert_id, limit=100)
        return {r.recipient for r in rows}


@pytest.fixture
async def sms(tmp_path: Path) -> AsyncIterator[Sms]:
    store = await SqliteStore.open(tmp_path / "broadcaster.db")
    await store.migrate()
    people = [Subscriber(phone, 53.48, -2.24) for phone in PHONES]
    await store.upsert_subscribers(people, datetime.now(UTC))
    await store.close()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with TwilioSimulator() as twilio:
        settings = sms_channel(twilio, rate_per_second=100)
        async for app in start_listening(
            tmp_path, http={"port": port, "public_url": public}, channels={"sms": settings}
        ):
            yield Sms(app, twilio, public)


async def test_signed_reply_is_stored_and_linked_forgery_is_refused(sms: Sms) -> None:
    """A signed reply links to the last alert sent to that number and is triaged; an
    unsigned or forged one is 403 and stores nothing; a Twilio retry is stored once."""
    await sms.post_alert(alert("Avoid Market St"))
    second = await sms.post_alert(alert("Stay indoors"))
    status, answer = await sms.text(PHONES[0], "  Smoke coming from the warehouse  ")
    assert status == 200
    assert answer.endswith("<Response />")
    replies = await all_replies(sms.app)
    assert len(replies) == 1
    stored = replies[0]
    assert stored.source is ReplySource.SMS
    assert stored.external_id == sms.twilio.inbound[-1].params["MessageSid"]
    assert stored.sender == PHONES[0]
    assert stored.text == "Smoke coming from the warehouse"
    assert stored.alert_id == second
    assert stored.categories == ("hazard",)

    status, _ = await sms.text(PHONES[1], "fire!", signature="forged")
    assert status == 403
    async with sms.app.http.post(sms.hook, data={"From": PHONES[1], "Body": "x"}) as response:
        assert response.status == 403
        assert (await response.json())["error"] == "bad_signature"
    assert len(await all_replies(sms.app)) == 1

    # Twilio retries a webhook it got no answer from: the same MessageSid is one reply.
    retry = dict(sms.twilio.inbound[0].params)
    signature = sms.twilio.validator.compute_signature(sms.hook, retry)
    async with sms.app.http.post(
        sms.hook, data=retry, headers={"X-Twilio-Signature": signature}
    ) as response:
        assert response.status == 200
    assert len(await all_replies(sms.app)) == 1


async def test_hook_body_that_is_not_utf8_is_400(sms: Sms) -> None:
    """A hook body with bytes that are not UTF-8 is a 400 JSON error, not a 500, and stores
    nothing."""
    for raw in (b"From=%2B447911000001&Body=\xff\xfe", b"From=%2B447911000001&Body=\xc3"):
        async with sms.app.http.post(
            sms.hook,
            data=raw,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": "x",
            },
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "malformed_form"
    assert await all_replies(sms.app) == []


async def test_stop_start_join_and_help(sms: Sms) -> None:
    """STOP keeps a number out of the next alert, START brings it back, JOIN M1 1AE
    subscribes a new number with area code M1 (reached by an M1 geocode), HELP answers."""
    status, answer = await sms.text(PHONES[1], " stop ")
    assert status == 200
    assert "<Message>You will get no more alerts" in answer
    subscriber = await sms.app.service.store.get_subscriber(PHONES[1])
    assert subscriber is not None
    assert subscriber.opted_out_at is not None
    stopped = await sms.post_alert(alert("After STOP"))
    assert await sms.recipients(stopped) == {PHONES[0], PHONES[2]}

    status, answer = await sms.text(PHONES[1], "Start")
    assert "<Message>You will get alerts again" in answer
    restarted = await sms.post_alert(alert("After START"))
    assert await sms.recipients(restarted) == set(PHONES)

    status, answer = await sms.text(NEWCOMER, "JOIN m1 1ae")
    assert status == 200
    assert "You will get alerts for M1" in answer
    joined = await sms.app.service.store.get_subscriber(NEWCOMER)
    assert joined is not None
    assert joined.area_code == "M1"
    assert joined.opted_out_at is None
    by_postcode = await sms.post_alert(
        alert("Water main burst", areas=[{"description": "M1", "geocodes": {"postcode": "M1"}}])
    )
    assert await sms.recipients(by_postcode) == {NEWCOMER}
    assert any(m["to"] == NEWCOMER for m in sms.twilio.messages)

    # STOP from a number we never knew is recorded, so nothing can start texting it later.
    await sms.text("+447911000077", "UNSUBSCRIBE")
    unknown = await sms.app.service.store.get_subscriber("+447911000077")
    assert unknown is not None
    assert unknown.opted_out_at is not None

    async with sms.app.http.post(sms.hook, data={}) as response:
        assert response.status == 403  # unsigned, even when empty
    status, answer = await sms.text(PHONES[2], "help")
    assert status == 200
    assert sms.twilio.inbound[-1].answer == answer
    assert f"<Message>{HELP_TEXT}</Message>" in answer
    assert await all_replies(sms.app) == []  # keywords are not replies


async def test_poll_answers_are_counted_one_vote_per_number(sms: Sms) -> None:
    """An alert offering responses says so in its SMS; answers by key or label are tallied
    per number (the latest wins) in GET /v1/alerts/{id}; other replies are not votes."""
    responses = [{"key": "1", "label": "SAFE"}, {"key": "2", "label": "NEED HELP"}]
    alert_id = await sms.post_alert(alert("Flooding on the ring road", responses=responses))
    texts = {m["body"] for m in sms.twilio.messages}
    assert all("Reply 1 SAFE, 2 NEED HELP" in t for t in texts)
    await sms.text(PHONES[0], "1")
    await sms.text(PHONES[1], "need help")
    await sms.text(PHONES[2], "Safe.")
    await sms.text(PHONES[0], " 2 ")  # changes its vote
    await sms.text(PHONES[2], "the water is rising fast")  # a report, not a vote
    async with sms.app.http.get(
        f"{sms.app.url}/v1/alerts/{alert_id}", headers=sms.app.auth(Role.RESPONDER)
    ) as response:
        view = await response.json()
    assert view["poll"] == {
        "1": {"label": "SAFE", "count": 1},
        "2": {"label": "NEED HELP", "count": 2},
    }
    assert view["alert"]["infos"][0]["parameters"] == [
        {"value_name": "broadcaster:response", "value": "1=SAFE"},
        {"value_name": "broadcaster:response", "value": "2=NEED HELP"},
    ]
    assert len(await all_replies(sms.app)) == 5
