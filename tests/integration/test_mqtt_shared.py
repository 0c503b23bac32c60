"""MQTT intake as a shared subscription (`[mqtt] shared_group`): two services subscribed as one
group on a real Mosquitto (MQTT 3.1.1, which Mosquitto serves `$share/...` to) split the
alerts between them, each alert handled by exactly one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from tests.conftest import RunningService, start_service
from tests.integration.test_mqtt_intake import (
    TOPIC,
    connected,
    payload,
    publish_all,
    stored_headlines,
    wait_until,
)
from tests.support.broker import Broker

ALERTS = 300


@contextlib.asynccontextmanager
async def member(tmp_path: Path, broker: Broker, name: str) -> AsyncIterator[RunningService]:
    folder = tmp_path / name
    folder.mkdir()
    mqtt = {
        "url": broker.url,
        "alerts_topic": TOPIC,
        "publish_prefix": "test",
        "client_id": f"broadcaster-{name}-{broker.port}",
        "shared_group": "broadcaster",
    }
    service = start_service(folder, mqtt=mqtt)
    running = await anext(service)
    try:
        await wait_until(partial(connected, running))
        yield running
    finally:
        await anext(service, None)  # runs the service down


async def test_shared_group_splits_alerts_between_members(tmp_path: Path, broker: Broker) -> None:
    async with member(tmp_path, broker, "a") as a, member(tmp_path, broker, "b") as b:
        await publish_all(broker, [payload(n) for n in range(ALERTS)])

        def total() -> bool:
            received = a.service.metrics.alerts_received.labels("mqtt", "json", "created")
            other = b.service.metrics.alerts_received.labels("mqtt", "json", "created")
            return bool(received._value.get() + other._value.get() >= ALERTS)

        await wait_until(total)
        got_a, got_b = await stored_headlines(a), await stored_headlines(b)
    assert sorted(got_a + got_b) == sorted(f"Alert {n}" for n in range(ALERTS))
    assert got_a, (len(got_a), len(got_b))
    assert got_b, (len(got_a), len(got_b))
    assert not set(got_a) & set(got_b)
