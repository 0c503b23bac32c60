"""MQTT intake through a real broker: exactly-once storage, restarts, bad payloads."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import RunningService, start_service
from tests.support.broker import Broker

TOPIC = "test/alerts"


def payload(n: int) -> bytes:
    return json.dumps(
        {
            "event": "Drill",
            "headline": f"Alert {n}",
            "severity": "Minor",
            "urgency": "Expected",
            "certainty": "Likely",
        }
    ).encode()


@pytest.fixture
async def mqtt_app(tmp_path: Path, broker: Broker) -> AsyncIterator[RunningService]:
    """The service with MQTT intake on the test's own broker, connected."""
    async for running in start_service(
        tmp_path,
        mqtt={
            "url": broker.url,
            "alerts_topic": TOPIC,
            "publish_prefix": "test",
            "client_id": f"broadcaster-{broker.port}",
        },
    ):
        await wait_until(partial(connected, running))
        yield running


async def wait_until(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


def connected(app: RunningService) -> bool:
    return bool(app.service.metrics.mqtt_connected.labels("intake")._value.get() == 1)


def reached(app: RunningService, count: int) -> bool:
    """True once `count` MQTT alerts have been newly stored."""
    metric = app.service.metrics.alerts_received.labels("mqtt", "json", "created")
    return bool(metric._value.get() >= count)


async def publish_all(
    broker: Broker, payloads: list[bytes], restart_after: int | None = None
) -> None:
    """Publish at QoS 1, at least once: anything not PUBACKed is sent again after a reconnect."""
    next_index = 0
    restarted = restart_after is None
    while next_index < len(payloads):
        try:
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, identifier="publisher", clean_session=True
            ) as client:
                while next_index < len(payloads):
                    if not restarted and next_index >= restart_after:  # type: ignore[operator]
                        restarted = True
                        await asyncio.to_thread(broker.restart)
                    await asyncio.wait_for(
                        client.publish(TOPIC, payloads[next_index], qos=1), timeout=5
                    )
                    next_index += 1
        except (aiomqtt.MqttError, TimeoutError):
            await asyncio.sleep(0.2)


async def stored_headlines(app: RunningService) -> list[str]:
    rows = await app.service.store.list_alerts(limit=5000)
    return [r.alert.infos[0].headline or "" for r in rows]


async def test_thousand_alerts_stored_exactly_once(
    mqtt_app: RunningService, broker: Broker
) -> None:
    """1,000 alerts published at QoS 1 are each stored exactly once."""
    await publish_all(broker, [payload(n) for n in range(1000)])
    await wait_until(partial(reached, mqtt_app, 1000))
    headlines = await stored_headlines(mqtt_app)
    assert sorted(headlines) == sorted(f"Alert {n}" for n in range(1000))


@pytest.mark.slow
async def test_broker_restart_mid_stream_loses_nothing(
    mqtt_app: RunningService, broker: Broker
) -> None:
    """With the broker restarted mid-stream, all 1,000 alerts are stored, none twice."""
    await publish_all(broker, [payload(n) for n in range(1000)], restart_after=400)
    await wait_until(partial(reached, mqtt_app, 1000), within=60)
    await asyncio.sleep(0.5)  # late redeliveries would show up as extra rows
    headlines = await stored_headlines(mqtt_app)
    assert len(headlines) == 1000
    assert set(headlines) == {f"Alert {n}" for n in range(1000)}


async def test_bad_payload_reported_and_loop_continues(
    mqtt_app: RunningService, broker: Broker
) -> None:
    """A bad payload is reported on <prefix>/errors and the next good one is still stored."""
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="watcher") as watcher:
        await watcher.subscribe("test/errors", qos=1)
        await publish_all(broker, [b"{not json", b"<alert>", payload(1)])
        reports = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                async for message in watcher.messages:
                    reports.append(json.loads(message.payload))  # type: ignore[arg-type]
                    if len(reports) == 2:
                        break
    assert [r["error"] for r in reports] == ["malformed_json", "invalid_cap"]
    await wait_until(partial(reached, mqtt_app, 1))
    assert await stored_headlines(mqtt_app) == ["Alert 1"]
    rejected = mqtt_app.service.metrics.alerts_received.labels("mqtt", "json", "rejected")
    assert rejected._value.get() == 1


async def test_oversized_payloads_are_reported_and_acknowledged(
    mqtt_app: RunningService, broker: Broker
) -> None:
    """An alert payload over the size limit is reported on <prefix>/errors as
    payload_too_large (it was an unhandled error before), and the next good one is stored."""
    huge = b'{"event": "' + b"x" * 1_100_000 + b'"}'
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="watcher") as watcher:
        await watcher.subscribe("test/errors", qos=1)
        await publish_all(broker, [huge, payload(1)])
        async with asyncio.timeout(10):
            async for message in watcher.messages:
                report = json.loads(message.payload)  # type: ignore[arg-type]
                break
    assert report["error"] == "payload_too_large"
    assert report["payload_bytes"] == len(huge)
    await wait_until(partial(reached, mqtt_app, 1))
    assert await stored_headlines(mqtt_app) == ["Alert 1"]


async def test_alerts_published_while_service_is_down_arrive(
    tmp_path: Path, broker: Broker
) -> None:
    """Alerts published while the service is stopped are delivered by the persistent session."""
    overrides = {"mqtt": {"url": broker.url, "alerts_topic": TOPIC, "client_id": "persist"}}
    async for running in start_service(tmp_path, **overrides):
        await wait_until(partial(connected, running))
    await publish_all(broker, [payload(n) for n in range(50)])
    async for running in start_service(tmp_path, **overrides):
        await wait_until(partial(reached, running, 50))
        assert len(await stored_headlines(running)) == 50
