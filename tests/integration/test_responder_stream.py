"""The responder stream (`/v1/replies/stream`) on a real socket: new and changed replies as
they happen, resume with Last-Event-ID, tickets for EventSource, roles; and triaged replies
published to MQTT per category without the sender's number."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import aiomqtt
import pytest

from broadcaster.ports import Role
from tests.conftest import RunningService
from tests.integration.test_mqtt_intake import connected, wait_until
from tests.integration.test_responder_api import PHONE, tip
from tests.support.broker import Broker
from tests.support.public_web import SseReader
from tests.support.replies import start_listening

STREAM = "/v1/replies/stream"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[RunningService]:
    async for running in start_listening(
        tmp_path, http={"port": 0, "sse_keepalive_seconds": 0.5, "tips_burst": 50}
    ):
        yield running


async def test_stream_delivers_new_and_changed_replies_and_resumes(app: RunningService) -> None:
    """A new tip arrives as `event: reply` with the sender; acknowledging it sends an
    update; reconnecting with Last-Event-ID of the first event replays exactly the update."""
    async with app.http.get(f"{app.url}{STREAM}", headers=app.auth(Role.RESPONDER)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        reader = SseReader(response)
        reply_id = await tip(app, "Smoke from the school roof", contact=PHONE)
        created = await reader.next_event(2.0)
        assert created.event == "reply"
        body = created.json()
        assert (body["id"], body["event"], body["sender"]) == (reply_id, "created", PHONE)
        assert body["categories"] == ["hazard"]
        async with app.http.post(
            f"{app.url}/v1/replies/{reply_id}/acknowledge", headers=app.auth(Role.RESPONDER)
        ) as answer:
            assert answer.status == 200
        updated = await reader.next_event(2.0)
        assert updated.json()["state"] == "acknowledged"
        assert updated.json()["event"] == "updated"
        assert created.id is not None
        assert updated.id is not None
        assert int(updated.id) > int(created.id)
        keepalive = await reader.next(2.0)
        assert keepalive.comment == "keep-alive"

    headers = {**app.auth(Role.RESPONDER), "Last-Event-ID": str(created.id)}
    async with app.http.get(f"{app.url}{STREAM}", headers=headers) as response:
        replay = await SseReader(response).next_event(2.0)
        assert replay.id == updated.id
        assert replay.json()["state_by"] == "test-responder"


async def test_stream_needs_a_responder_token_ticket_or_session(app: RunningService) -> None:
    """No credentials: 401; an issuer: 403; a ticket from POST /v1/replies/stream-ticket
    opens it without a header; a forged ticket is 401."""
    async with app.http.get(f"{app.url}{STREAM}") as response:
        assert response.status == 401
    async with app.http.get(f"{app.url}{STREAM}", headers=app.auth(Role.ISSUER)) as response:
        assert response.status == 403
    async with app.http.post(
        f"{app.url}/v1/replies/stream-ticket", headers=app.auth(Role.ISSUER)
    ) as response:
        assert response.status == 403
    async with app.http.post(
        f"{app.url}/v1/replies/stream-ticket", headers=app.auth(Role.RESPONDER)
    ) as response:
        assert response.status == 200
        ticket = (await response.json())["ticket"]
    async with app.http.get(f"{app.url}{STREAM}", params={"ticket": ticket}) as response:
        assert response.status == 200
        reader = SseReader(response)
        reply_id = await tip(app, "Fire in the car park")
        assert (await reader.next_event(2.0)).json()["id"] == reply_id
    forged = ticket[:-4] + "0000"
    async with app.http.get(f"{app.url}{STREAM}", params={"ticket": forged}) as response:
        assert response.status == 401


async def test_triaged_replies_are_published_per_category_without_the_number(
    tmp_path: Path, broker: Broker
) -> None:
    """A hazard tip reaches <prefix>/replies/hazard (QoS 1, not retained) without the
    sender's phone number; a reply with no category is not published."""
    async for app in start_listening(
        tmp_path,
        mqtt={
            "url": broker.url,
            "alerts_topic": "test/alerts",
            "replies_topic": "test/replies",
            "publish_prefix": "test",
            "client_id": f"broadcaster-{broker.port}",
            "publish_alerts": False,
        },
    ):
        await wait_until(partial(connected, app))
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="desk") as desk:
            await desk.subscribe("test/replies/#", qos=1)
            await tip(app, "All fine here, thanks", contact=PHONE)
            reply_id = await tip(app, "Smoke and fire at the mill", contact=PHONE)
            # The first message to arrive: the uncategorised tip, sent first, is never one.
            message = await asyncio.wait_for(anext(aiter(desk.messages)), 5.0)
        topic, payload, retained = str(message.topic), message.payload, message.retain
        assert isinstance(payload, bytes)
        assert topic == "test/replies/hazard"
        assert not retained
        body = json.loads(payload)
        assert body["id"] == reply_id
        assert body["categories"] == ["hazard"]
        assert "sender" not in body
        assert PHONE.encode() not in payload
