"""The MQTT-out channel through the real engine against a real broker (Mosquitto or amqtt):
the live stream per severity, retained messages per area for late subscribers, Update and
Cancel clearing them, drills kept off the retained topics, and retries while the broker is
down."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiomqtt

from adapters.mqtt_out import MqttOutChannel
from broadcaster.config import MqttSettings
from broadcaster.ports import StoredAlert
from broadcaster.service import Service
from tests.integration.engine import counts, engine, submit, until, until_outbox_empty
from tests.support.broker import Broker

PREFIX = "city/bc"
PUBLIC_URL = "https://alerts.example.org"
AREAS = [{"description": "Market St"}, {"description": "Old Town (North)"}]


class Listener:
    """A subscriber that records every message on `topic` from the moment it subscribed."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self.messages: list[tuple[str, bytes, bool]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker.port) as client:
            await client.subscribe(self.topic, qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                self.messages.append((str(message.topic), bytes(payload), message.retain))

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def json(self) -> list[tuple[str, dict[str, Any]]]:
        return [(topic, json.loads(body)) for topic, body, _ in self.messages if body]


async def retained(broker: Broker, topic: str, seconds: float = 0.7) -> dict[str, bytes]:
    """What a client subscribing now gets at once: the retained messages, by topic."""
    async with Listener(broker, topic) as late:
        await asyncio.sleep(seconds)
    return {topic: body for topic, body, was_retained in late.messages if was_retained}


def mqtt_channel(
    broker: Broker, holder: list[Service] | None = None, *, exercises: bool = False
) -> MqttOutChannel:
    async def superseded(stored: StoredAlert) -> Sequence[StoredAlert]:
        assert holder
        store = holder[0].store
        found = [await store.get_alert(i) for i in await store.superseded_by(stored.id)]
        return [alert for alert in found if alert is not None]

    settings = MqttSettings(
        url=broker.url, publish_prefix=PREFIX, client_id="bc-test", exercises=exercises
    )
    return MqttOutChannel(
        settings,
        base_url=PUBLIC_URL,
        superseded=superseded if holder is not None else None,
        timeout_seconds=2.0,
    )


async def test_alert_reaches_a_subscriber_on_its_severity_topic(
    tmp_path: Path, broker: Broker
) -> None:
    """A Severe alert is published once, not retained, on <prefix>/alerts/severe as JSON."""
    channel = mqtt_channel(broker)
    async with Listener(broker, f"{PREFIX}/alerts/#") as live, engine(tmp_path, channel) as svc:
        alert = await submit(svc, areas=AREAS, instruction="Stay indoors")
        svc.start_dispatcher()
        await until_outbox_empty(svc)
        await until(lambda: len(live.messages) == 1, 5, "the live message")
        assert await counts(svc, alert.id, "mqtt") == {"sent": 1}
    [(topic, body, was_retained)] = live.messages
    assert (topic, was_retained) == (f"{PREFIX}/alerts/severe", False)
    payload = json.loads(body)
    assert payload == {
        "id": alert.id,
        "kind": "created",
        "msg_type": "Alert",
        "status": "Actual",
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
        "event": "Gas leak",
        "headline": "Avoid Market St",
        "areas": ["Market St", "Old Town (North)"],
        "sent": payload["sent"],
        "expires": None,
        "links": {
            "page": f"{PUBLIC_URL}/alerts/{alert.id}",
            "cap": f"{PUBLIC_URL}/alerts/{alert.id}.cap",
        },
        "replaces": [],
    }


async def test_late_subscriber_gets_retained_areas_and_update_cancel_clear_them(
    tmp_path: Path, broker: Broker
) -> None:
    """Each area is retained for late subscribers; an Update replaces and prunes them, and a
    Cancel clears every one of them with an empty retained payload."""
    holder: list[Service] = []
    channel = mqtt_channel(broker, holder)
    async with Listener(broker, f"{PREFIX}/#") as live, engine(tmp_path, channel) as svc:
        holder.append(svc)
        alert = await submit(svc, areas=AREAS)
        svc.start_dispatcher()
        await until_outbox_empty(svc)
        got = await retained(broker, f"{PREFIX}/areas/#")
        assert set(got) == {f"{PREFIX}/areas/market-st", f"{PREFIX}/areas/old-town-north"}
        assert {json.loads(body)["id"] for body in got.values()} == {alert.id}

        update = await submit(
            svc,
            msg_type="Update",
            references=[alert.id],
            headline="Avoid Market St until 18:00",
            areas=AREAS[:1],
        )
        await until_outbox_empty(svc)
        got = await retained(broker, f"{PREFIX}/areas/#")
        assert list(got) == [f"{PREFIX}/areas/market-st"]
        market = json.loads(got[f"{PREFIX}/areas/market-st"])
        assert (market["id"], market["kind"], market["replaces"]) == (
            update.id,
            "updated",
            [alert.id],
        )

        cancel = await submit(svc, msg_type="Cancel", references=[update.id], headline="All clear")
        await until_outbox_empty(svc)
        assert await retained(broker, f"{PREFIX}/areas/#") == {}
        assert await counts(svc, cancel.id, "mqtt") == {"sent": 1}
        await until(
            lambda: any(p["kind"] == "cancelled" for _, p in live.json()),
            5,
            "the cancel on the live stream",
        )
    kinds = [(topic, payload["kind"]) for topic, payload in live.json() if "/alerts/" in topic]
    assert kinds == [
        (f"{PREFIX}/alerts/severe", "created"),
        (f"{PREFIX}/alerts/severe", "updated"),
        (f"{PREFIX}/alerts/severe", "cancelled"),
    ]
    # The clears were empty retained payloads on exactly the areas that held something.
    cleared = sorted(topic for topic, body, _ in live.messages if not body)
    assert cleared == [f"{PREFIX}/areas/market-st", f"{PREFIX}/areas/old-town-north"]


async def test_exercise_is_streamed_with_its_status_but_never_retained(
    tmp_path: Path, broker: Broker
) -> None:
    """With `exercises` on, an Exercise goes to the live stream marked status Exercise and
    leaves areas alone."""
    channel = mqtt_channel(broker, exercises=True)
    async with Listener(broker, f"{PREFIX}/alerts/#") as live, engine(tmp_path, channel) as svc:
        await submit(svc, status="Exercise", severity="Minor", areas=AREAS)
        svc.start_dispatcher()
        await until_outbox_empty(svc)
        await until(lambda: len(live.messages) == 1, 5, "the live message")
    [(topic, payload)] = live.json()
    assert (topic, payload["status"]) == (f"{PREFIX}/alerts/minor", "Exercise")
    assert await retained(broker, f"{PREFIX}/areas/#") == {}


async def test_broker_down_deliveries_are_retried_and_sent_when_it_is_back(
    tmp_path: Path, broker: Broker
) -> None:
    """With the broker stopped sends fail as transient and are retried; once it is back the
    alert is published and retained."""
    channel = mqtt_channel(broker)
    async with engine(
        tmp_path,
        channel,
        backoff_base_seconds=0.1,
        backoff_cap_seconds=0.3,
        breaker_failures=100,
    ) as svc:
        # Connected first, so the outage also exercises dropping a dead connection.
        await submit(svc, headline="Before the outage")
        svc.start_dispatcher()
        await until_outbox_empty(svc)
        await asyncio.to_thread(broker.stop)
        alert = await submit(svc, areas=AREAS[:1])

        async def failed_attempts() -> int:
            rows = await svc.store.list_deliveries(alert.id, limit=5)
            return max((r.attempts for r in rows if r.last_error), default=0)

        for _ in range(200):
            if await failed_attempts() >= 2:
                break
            await asyncio.sleep(0.05)
        [row] = await svc.store.list_deliveries(alert.id, limit=5)
        # Retried, not given up: between attempts it is pending, or sending when a retry is
        # under way at the moment we look (the backoff is 0.1-0.3 s).
        assert row.state.value in ("pending", "sending")
        assert "mqtt broker" in (row.last_error or "")
        await asyncio.to_thread(broker.start)
        await until_outbox_empty(svc)
        [row] = await svc.store.list_deliveries(alert.id, limit=5)
        assert row.state.value == "sent"
        assert row.attempts >= 3
    got = await retained(broker, f"{PREFIX}/areas/#")
    assert json.loads(got[f"{PREFIX}/areas/market-st"])["id"] == alert.id


async def test_close_disconnects_and_a_send_reconnects(broker: Broker, tmp_path: Path) -> None:
    """close() drops the connection; the next send opens a new one with the -out client id."""
    channel = mqtt_channel(broker)
    assert "bc-test-out" in repr(channel)
    async with engine(tmp_path, channel) as svc:
        svc.start_dispatcher()
        one = await submit(svc, headline="One")
        await until_outbox_empty(svc)
        await channel.close()
        two = await submit(svc, headline="Two")
        await until_outbox_empty(svc)
        assert await counts(svc, one.id, "mqtt") == await counts(svc, two.id, "mqtt") == {"sent": 1}
        assert channel.audience(one.alert) == ["broker"]
    await channel.close()
