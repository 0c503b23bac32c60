"""Chaos (a): the MQTT broker restarts in the middle of a stream of 1,000 alerts.

Figures: alerts lost (0), duplicates stored (0), and the time to recover: from the broker
listening again to the next alert stored.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import RunningService, start_service
from tests.integration.test_mqtt_intake import (
    TOPIC,
    connected,
    payload,
    publish_all,
    reached,
    stored_headlines,
    wait_until,
)
from tests.support.broker import Broker

pytestmark = pytest.mark.chaos

ALERTS = 1_000
RESTART_AFTER = 400
RECOVER_WITHIN_S = 15.0


class TimedBroker(Broker):
    """A Broker that notes when it is back after a restart."""

    back_at: float | None = None

    def restart(self) -> None:
        super().restart()
        self.back_at = time.monotonic()


async def sample_stored(app: RunningService, samples: list[tuple[float, float]]) -> None:
    """Every 5 ms, (time.monotonic(), MQTT alerts stored so far), until cancelled."""
    created = app.service.metrics.alerts_received.labels("mqtt", "json", "created")
    while True:
        samples.append((time.monotonic(), created._value.get()))
        await asyncio.sleep(0.005)


async def test_broker_restart_mid_stream(tmp_path: Path) -> None:
    broker = TimedBroker(tmp_path / "broker")
    broker.start()
    try:
        overrides = {
            "mqtt": {
                "url": broker.url,
                "alerts_topic": TOPIC,
                "publish_prefix": "test",
                "client_id": f"chaos-{broker.port}",
            }
        }
        async for app in start_service(tmp_path, **overrides):
            await wait_until(partial(connected, app))
            samples: list[tuple[float, float]] = []
            sampler = asyncio.create_task(sample_stored(app, samples))
            started = time.monotonic()
            try:
                await publish_all(
                    broker, [payload(n) for n in range(ALERTS)], restart_after=RESTART_AFTER
                )
                await wait_until(partial(reached, app, ALERTS), within=60)
            finally:
                sampler.cancel()
            elapsed = time.monotonic() - started
            await asyncio.sleep(0.5)  # late redeliveries would show up as extra rows
            headlines = await stored_headlines(app)

        assert broker.back_at is not None
        at_back = max((n for t, n in samples if t <= broker.back_at), default=0.0)
        next_stored = next(t for t, n in samples if t > broker.back_at and n > at_back)
        recover_s = next_stored - broker.back_at
        lost = len({f"Alert {n}" for n in range(ALERTS)} - set(headlines))
        duplicates = len(headlines) - len(set(headlines))
        print(
            f"\nchaos (a) MQTT broker restart after {RESTART_AFTER} of {ALERTS} alerts: "
            f"lost {lost}, duplicates stored {duplicates}, "
            f"recovered {recover_s:.2f} s after the broker was back "
            f"({at_back:.0f} stored by then), all stored in {elapsed:.1f} s"
        )
        assert lost == 0
        assert duplicates == 0
        assert len(headlines) == ALERTS
        assert recover_s < RECOVER_WITHIN_S
    finally:
        broker.stop()
