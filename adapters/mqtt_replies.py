"""Triaged replies published to the broker, for responders' systems that listen there.

Contract:
- On when `[mqtt] url` is set. Each newly stored reply with at least one category is
  published, at QoS 1 and not retained, to `<publish_prefix>/replies/<category>` once per
  category, as compact JSON (`reply_payload`): id, source, text, received_at, alert_id,
  categories, score, entities, cluster_id, lat, lon, media_url. The sender (a phone number
  or a handle) is left out unless `[mqtt] replies_include_sender` is true: these topics are
  read by signage and other systems, not only by responders.
- Replies are handed over by the service (`offer`, never blocking ingest) and published in
  order by one task on a connection of its own (client id `<client_id>-replies`, clean
  session). A failed publish is retried with capped backoff until it goes; meanwhile up to
  `queue_size` replies wait, and past that the newest are dropped and logged. Not durable:
  replies waiting at shutdown are not published (they are stored, and on the responder API
  and stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from broadcaster.config import MqttSettings
from broadcaster.ports import StoredReply

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


def reply_payload(reply: StoredReply, *, include_sender: bool) -> dict[str, Any]:
    """The JSON object published for one reply."""
    body: dict[str, Any] = {
        "id": reply.id,
        "source": reply.source.value,
        "text": reply.text,
        "received_at": reply.received_at.isoformat(),
        "alert_id": reply.alert_id,
        "categories": list(reply.categories),
        "score": reply.score,
        "entities": reply.entities,
        "cluster_id": reply.cluster_id,
        "lat": reply.lat,
        "lon": reply.lon,
        "media_url": reply.media_url,
    }
    if include_sender:
        body["sender"] = reply.sender
    return body


def topic_level(category: str) -> str:
    """A category as one topic level: no wildcards or separators."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in category.lower()) or "_"


class ReplyPublisher:
    def __init__(
        self, settings: MqttSettings, *, queue_size: int = 10_000, timeout_seconds: float = 10.0
    ) -> None:
        if settings.url is None:
            raise ValueError("the reply publisher needs [mqtt] url")
        parts = urlsplit(settings.url)
        self._tls = parts.scheme == "mqtts"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if self._tls else 1883)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._identifier = f"{settings.client_id}-replies"
        self._prefix = settings.publish_prefix
        self._include_sender = settings.replies_include_sender
        self._timeout = timeout_seconds
        self._queue: asyncio.Queue[StoredReply] = asyncio.Queue(queue_size)
        self.published = 0
        # Told True on each connect, False when the connection is dropped (a metrics gauge).
        self.on_connection: Callable[[bool], None] = lambda up: None

    def __repr__(self) -> str:
        return f"ReplyPublisher(broker={self._host}:{self._port}, prefix={self._prefix!r})"

    def offer(self, reply: StoredReply) -> None:
        """Queue a newly stored reply (those without a category are not published)."""
        if not reply.categories:
            return
        try:
            self._queue.put_nowait(reply)
        except asyncio.QueueFull:
            log.error("mqtt reply queue full: reply %s is not published", reply.id)

    def messages(self, reply: StoredReply) -> list[tuple[str, bytes]]:
        payload = json.dumps(
            reply_payload(reply, include_sender=self._include_sender),
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        return [(f"{self._prefix}/replies/{topic_level(c)}", payload) for c in reply.categories]

    async def run(self) -> None:
        """Publish queued replies until cancelled."""
        client: aiomqtt.Client | None = None
        backoff = 0.5
        try:
            while True:
                reply = await self._queue.get()
                while True:
                    try:
                        if client is None:
                            client = await self._connect()
                        for topic, payload in self.messages(reply):
                            await client.publish(topic, payload, qos=1, retain=False)
                        self.published += 1
                        backoff = 0.5
                        break
                    except (aiomqtt.MqttError, OSError) as exc:
                        log.warning("mqtt reply %s not published (retrying): %s", reply.id, exc)
                        if client is not None:
                            self.on_connection(False)
                            await _disconnect(client)
                            client = None
                        await asyncio.sleep(backoff)
                        backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
        finally:
            if client is not None:
                self.on_connection(False)
                await _disconnect(client)

    async def _connect(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=self._identifier,
            clean_session=True,
            keepalive=30,
            timeout=self._timeout,
            tls_params=aiomqtt.TLSParameters() if self._tls else None,
        )
        await client.__aenter__()
        log.info("mqtt reply publisher connected to %s:%s", self._host, self._port)
        self.on_connection(True)
        return client


async def _disconnect(client: aiomqtt.Client) -> None:
    with contextlib.suppress(aiomqtt.MqttError, OSError, RuntimeError):
        await client.__aexit__(None, None, None)
    # aiomqtt leaves a lost connection's reason in a future nobody awaits (see mqtt_out).
    lost = client._disconnected
    if lost.done() and not lost.cancelled():
        lost.exception()
