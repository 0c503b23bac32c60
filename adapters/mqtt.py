"""MQTT intake on aiomqtt: alerts arrive on `[mqtt] alerts_topic` at QoS 1.

Contract: a message is acknowledged (PUBACK) only after its alert has committed, so a broker
redelivers whatever a crash or a lost connection interrupted; intake's de-duplication turns
those redeliveries into no-ops. The session is persistent (clean_session=False) so the broker
queues alerts while we are away. A bad payload is logged, counted, reported on
`<publish_prefix>/errors` and acknowledged: it never stops the loop and is never redelivered
forever. The loop reconnects with capped exponential backoff until cancelled.

Replies from the public arrive on `[mqtt] replies_topic` in the same session, as JSON
`{id, text, sender?, alert_id?, lat?, lon?}` (`id` is the publisher's own id: a reply is
stored once per id). They are ingested with source "mqtt" and acknowledged after the commit,
like alerts; a bad one is reported on `<publish_prefix>/errors` and acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import unquote, urlsplit

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broadcaster.config import MqttSettings
from broadcaster.errors import IntakeError, PayloadError, PayloadTooLarge, StoreError
from broadcaster.intake import Submission, describe_validation_error, sniff_format
from broadcaster.ports import Reply, ReplySource
from broadcaster.service import Service

log = logging.getLogger(__name__)


class MqttReply(BaseModel):
    """A reply published on the replies topic."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Annotated[str, Field(min_length=1, max_length=200)]
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    sender: Annotated[str, Field(max_length=200)] | None = None
    alert_id: Annotated[str, Field(max_length=64)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


def parse_reply(body: bytes, received_at: datetime) -> Reply:
    """The reply a replies-topic payload carries; PayloadError when it is not one."""
    try:
        wanted = MqttReply.model_validate_json(body)
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc), code="invalid_reply") from exc
    if (wanted.lat is None) != (wanted.lon is None):
        raise PayloadError("lat and lon must be given together", code="invalid_reply")
    return Reply(
        source=ReplySource.MQTT,
        external_id=wanted.id,
        text=wanted.text,
        received_at=received_at,
        sender=wanted.sender or None,
        alert_id=wanted.alert_id or None,
        lat=wanted.lat,
        lon=wanted.lon,
    )


class MqttIntake:
    """Subscribes to the alerts topic and feeds intake; run `run()` as a background task."""

    def __init__(self, settings: MqttSettings, service: Service, *, max_payload_bytes: int) -> None:
        if settings.url is None:
            raise ValueError("MQTT intake needs [mqtt] url")
        parts = urlsplit(settings.url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._settings = settings
        self._service = service
        self._max_payload = max_payload_bytes
        self._connected = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        service.readiness["mqtt"] = self._ready
        service.metrics.mqtt_connected.labels("intake").set(0)  # the series exists from start

    @property
    def topic(self) -> str:
        return self._subscription(self._settings.alerts_topic)

    @property
    def replies_topic(self) -> str:
        return self._subscription(self._settings.replies_topic)

    def _subscription(self, topic: str) -> str:
        group = self._settings.shared_group
        return f"$share/{group}/{topic}" if group else topic

    async def run(self) -> None:
        delay = 0.5
        metrics = self._service.metrics
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(self.topic, qos=1)
                    await client.subscribe(self.replies_topic, qos=1)
                    self._connected.set()
                    metrics.mqtt_connected.labels("intake").set(1)
                    log.info(
                        "mqtt connected to %s:%s, subscribed to %s",
                        self._host,
                        self._port,
                        self.topic,
                    )
                    delay = 0.5
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt connection lost or refused (%s); retrying in %.1fs", exc, delay)
            finally:
                self._connected.clear()
                metrics.mqtt_connected.labels("intake").set(0)
            metrics.mqtt_reconnects.inc()
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, 30.0)

    def _client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=self._settings.client_id,
            clean_session=False,
            keepalive=30,
            # No cap on aiomqtt's queue: when full it drops messages, and a dropped message is
            # never acknowledged, so the broker's in-flight window clogs. The broker's own
            # in-flight limit already bounds what arrives before we acknowledge.
        )
        # aiomqtt has no manual-ack switch; paho's own is the supported way to delay PUBACK
        # until after the commit. Fenced here, the one place that reaches into aiomqtt.
        client._client.manual_ack_set(True)
        return client

    async def _consume(self, client: aiomqtt.Client) -> None:
        slots = asyncio.Semaphore(self._settings.max_in_flight)
        try:
            async for message in client.messages:
                await slots.acquire()
                task = asyncio.create_task(self._handle(client, message))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                task.add_done_callback(lambda _t: slots.release())
        finally:
            # Let in-flight commits finish so their PUBACKs go out before we disconnect.
            if self._in_flight:
                await asyncio.wait(set(self._in_flight), timeout=5.0)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload
        body = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
        body = bytes(body)
        try:
            if message.topic.matches(self._settings.replies_topic):
                await self._submit_reply(body)
            else:
                await self._submit(body)
        except IntakeError as exc:  # PayloadError, and PayloadTooLarge, which is not one
            await self._report_bad_payload(client, str(message.topic), body, exc)
        except asyncio.CancelledError:
            raise  # not acknowledged: the broker redelivers it to the next session
        self._ack(client, message)

    async def _submit(self, body: bytes) -> None:
        if len(body) > self._max_payload:
            self._service.metrics.alerts_received.labels("mqtt", "unknown", "rejected").inc()
            raise PayloadTooLarge(f"payload of {len(body)} bytes exceeds {self._max_payload}")
        submission = Submission(body=body, format=sniff_format(body), source="mqtt")
        delay = 0.1
        while True:
            try:
                await self._service.intake.submit(submission)
                return
            except StoreError as exc:
                # Not acknowledged until stored: keep it and retry rather than drop it.
                log.warning("store unavailable for an MQTT alert (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _submit_reply(self, body: bytes) -> None:
        if len(body) > self._max_payload:
            raise PayloadTooLarge(f"payload of {len(body)} bytes exceeds {self._max_payload}")
        reply = parse_reply(body, datetime.now(UTC))
        delay = 0.1
        while True:
            try:
                await self._service.replies.ingest(reply)
                return
            except StoreError as exc:
                # Not acknowledged until stored: keep it and retry rather than drop it.
                log.warning("store unavailable for an MQTT reply (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _report_bad_payload(
        self, client: aiomqtt.Client, topic: str, body: bytes, exc: IntakeError
    ) -> None:
        log.warning("refused MQTT payload on %s: %s", topic, exc.detail)
        report = {
            "topic": topic,
            "error": exc.code,
            "detail": exc.detail,
            "payload_sha256": hashlib.sha256(body).hexdigest(),
            "payload_bytes": len(body),
        }
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                f"{self._settings.publish_prefix}/errors", json.dumps(report), qos=1
            )

    @staticmethod
    def _ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if message.qos > 0:
            client._client.ack(message.mid, message.qos)

    async def _ready(self) -> tuple[bool, str]:
        if self._connected.is_set():
            return True, f"connected to {self._host}:{self._port}"
        return False, "not connected to the broker"
