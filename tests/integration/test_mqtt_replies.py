"""Replies over MQTT: the intake client also takes the replies topic, stores each reply once
(by its id) and acknowledges it after the commit; a bad one is reported, not stored."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path

import aiomqtt

from broadcaster.ports import ReplySource
from tests.conftest import RunningService
from tests.integration.test_mqtt_intake import connected, wait_until
from tests.support.broker import Broker
from tests.support.public_web import post_alert
from tests.support.replies import all_replies, eventually, start_listening

REPLIES = "test/replies"


async def publish(broker: Broker, *payloads: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="reply-publisher") as client:
        for payload in payloads:
            await client.publish(REPLIES, payload, qos=1)


async def _count(app: RunningService, count: int) -> bool:
    return len(await all_replies(app)) >= count


async def test_mqtt_reply_is_ingested_once(tmp_path: Path, broker: Broker) -> None:
    """The same reply published twice is stored once, linked and triaged; a malformed one
    is reported on <prefix>/errors and the loop goes on."""
    async for app in start_listening(
        tmp_path,
        mqtt={
            "url": broker.url,
            "alerts_topic": "test/alerts",
            "replies_topic": REPLIES,
            "publish_prefix": "test",
            "client_id": f"broadcaster-{broker.port}",
            "publish_alerts": False,
        },
    ):
        await wait_until(partial(connected, app))
        alert = await post_alert(app, "Avoid Market St")
        reply = {
            "id": "sensor-7:42",
            "text": "Gas smell reported at the gate",
            "sender": "gate-sensor-7",
            "alert_id": alert["id"],
            "lat": 53.48,
            "lon": -2.24,
        }
        body = json.dumps(reply).encode()
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="watcher") as watcher:
            await watcher.subscribe("test/errors", qos=1)
            await publish(broker, body, b'{"id": "x"}', body)
            async with asyncio.timeout(10):
                async for message in watcher.messages:
                    report = json.loads(message.payload)  # type: ignore[arg-type]
                    break
        assert report["error"] == "invalid_reply"
        await eventually(partial(_count, app, 1), what="the MQTT reply stored")
        await asyncio.sleep(0.3)  # the repeat is handled by now; it must not add a row
        replies = await all_replies(app)
        assert len(replies) == 1
        stored = replies[0]
        assert stored.source is ReplySource.MQTT
        assert stored.external_id == "sensor-7:42"
        assert stored.sender == "gate-sensor-7"
        assert stored.alert_id == alert["id"]
        assert (stored.lat, stored.lon) == (53.48, -2.24)
        assert stored.categories == ("hazard",)
        assert app.service.metrics.replies.labels("mqtt", "hazard")._value.get() == 1
