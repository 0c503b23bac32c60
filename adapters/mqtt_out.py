"""The "mqtt" delivery channel: every alert published to our MQTT broker, for sirens, signage
and other systems that listen there.

Contract:
- On when `[mqtt] url` is set and `[mqtt] publish_alerts` is true (the default). One
  recipient, "broker": one delivery per alert event (Alert = created, Update = updated,
  Cancel = cancelled), retried by the engine like any other.
- Each send publishes, at QoS 1, compact JSON (`alert_payload`: id, kind, msg_type, status,
  severity, urgency, certainty, event, headline, areas, sent, expires, links to
  `<public_url>/alerts/<id>` and `.cap`, and `replaces`: the ids an Update/Cancel stops) to
    - `<publish_prefix>/alerts/<severity, lower case>`, not retained: the live stream;
    - `<publish_prefix>/areas/<area slug>`, retained, for each area of an Actual alert: what a
      siren or sign that connects later must show. The newest alert for the area wins; an
      Update re-publishes its areas and clears the areas of the alert it replaces that it no
      longer names; a Cancel clears its own and the cancelled alert's areas by publishing an
      empty retained payload. Exercises, tests and system messages are never retained (a
      drill must not displace a live alert for latecomers); they are on the live stream with
      their `status`, which consumers must check.
- Expiry: the engine sends nothing after an alert's `expires`, but a broker keeps a retained
  message until it is replaced or cleared, so each payload carries `expires` and consumers
  must treat a retained alert past it as cleared.
- Order: within this process a retained area topic never goes back to an older alert
  (`RetainedAreas` remembers the newest alert published or cleared per area, by arrival
  order); retries of an older alert skip areas a newer one has taken. Across processes and
  restarts the broker's last write wins.
- `send` returns only after the broker acknowledged every publish (PUBACK). Connection
  errors, refusals and timeouts are TransientDeliveryError, so the engine retries; a retry
  publishes again, so consumers may see an event twice (drop repeats by `id` + `kind`).
- Its own connection (client id `<client_id>-out`, clean session), opened at the first send
  and again after a failure; `close()` disconnects. The payload holds no credentials: only
  alert fields and public links.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from alerts.models import Alert, MsgType, Status, format_cap_time
from broadcaster.config import MqttSettings
from broadcaster.errors import TransientDeliveryError
from broadcaster.ports import ChannelLimits, Outbound, SendReceipt, StoredAlert

log = logging.getLogger(__name__)

RECIPIENT = "broker"
KINDS = {MsgType.ALERT: "created", MsgType.UPDATE: "updated", MsgType.CANCEL: "cancelled"}
_NOT_SLUG = re.compile(r"[^a-z0-9]+")

# The alerts an Update/Cancel stops, oldest first (from the store, see adapters.channels).
SupersededLookup = Callable[[StoredAlert], Awaitable[Sequence[StoredAlert]]]


def area_slug(description: str) -> str:
    """The topic level of an area: lower case ASCII, every run of other characters one "-"
    ("Market St. (North)" -> "market-st-north"; accents dropped). A description with no
    letters or digits at all gets "area-<8 hex of its SHA-256>"."""
    ascii_text = unicodedata.normalize("NFKD", description).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")
    if slug:
        return slug
    return "area-" + hashlib.sha256(description.encode()).hexdigest()[:8]


def event_kind(msg_type: MsgType) -> str:
    return KINDS.get(msg_type, msg_type.value.lower())


def area_slugs(alert: Alert) -> list[str]:
    """The distinct slugs of the alert's areas over all its info blocks, in order."""
    slugs: dict[str, None] = {}
    for info in alert.infos:
        for area in info.areas:
            slugs.setdefault(area_slug(area.description))
    return list(slugs)


def alert_payload(
    stored: StoredAlert, *, base_url: str, replaces: Sequence[str] = ()
) -> dict[str, Any]:
    """The JSON object published for `stored` (no secrets: alert fields and public links)."""
    alert = stored.alert
    info = alert.infos[0] if alert.infos else None
    areas: dict[str, None] = {}
    for block in alert.infos:
        for area in block.areas:
            areas.setdefault(area.description)
    expires = alert.expires
    base = base_url.rstrip("/")
    return {
        "id": stored.id,
        "kind": event_kind(alert.msg_type),
        "msg_type": alert.msg_type.value,
        "status": alert.status.value,
        "severity": info.severity.value if info else "Unknown",
        "urgency": info.urgency.value if info else "Unknown",
        "certainty": info.certainty.value if info else "Unknown",
        "event": info.event if info else None,
        "headline": info.headline if info else None,
        "areas": list(areas),
        "sent": format_cap_time(alert.sent),
        "expires": format_cap_time(expires) if expires is not None else None,
        "links": {"page": f"{base}/alerts/{stored.id}", "cap": f"{base}/alerts/{stored.id}.cap"},
        "replaces": list(replaces),
    }


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    retain: bool


class RetainedAreas:
    """Which alert (by arrival `seq`) last set or cleared each retained area topic in this
    process, so that a late or retried older alert never overwrites a newer one."""

    def __init__(self) -> None:
        self._owner: dict[str, int] = {}

    def owner(self, slug: str) -> int | None:
        return self._owner.get(slug)

    def take(self, slug: str, seq: int, *, at_most: int) -> bool:
        """Claim `slug` for `seq` when its current owner is unknown or <= `at_most`."""
        current = self._owner.get(slug)
        if current is not None and current > at_most:
            return False
        self._owner[slug] = max(seq, current) if current is not None else seq
        return True


def plan_publishes(
    stored: StoredAlert,
    superseded: Sequence[StoredAlert],
    *,
    prefix: str,
    base_url: str,
    areas: RetainedAreas,
) -> list[Publish]:
    """What one send publishes, in order (see the module docstring). Claims area topics in
    `areas` as it decides."""
    alert = stored.alert
    payload = json.dumps(
        alert_payload(stored, base_url=base_url, replaces=[s.id for s in superseded]),
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    severity = alert.infos[0].severity.value.lower() if alert.infos else "unknown"
    publishes = [Publish(f"{prefix}/alerts/{severity}", payload, retain=False)]
    if alert.status is not Status.ACTUAL:
        return publishes
    own = area_slugs(alert)
    old = list(dict.fromkeys(slug for o in superseded for slug in area_slugs(o.alert)))
    # Clear an area only while the replaced alert (or an older one) holds it.
    threshold = max((o.seq for o in superseded), default=stored.seq)
    if alert.msg_type is MsgType.CANCEL:
        for slug in dict.fromkeys([*own, *old]):
            if areas.take(slug, stored.seq, at_most=threshold):
                publishes.append(Publish(f"{prefix}/areas/{slug}", b"", retain=True))
        return publishes
    for slug in own:
        if areas.take(slug, stored.seq, at_most=stored.seq):
            publishes.append(Publish(f"{prefix}/areas/{slug}", payload, retain=True))
    for slug in old:
        if slug not in own and areas.take(slug, stored.seq, at_most=threshold):
            publishes.append(Publish(f"{prefix}/areas/{slug}", b"", retain=True))
    return publishes


class MqttOutChannel:
    """Publishes alerts to the broker on a connection of its own (see the module docstring)."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        base_url: str,
        superseded: SupersededLookup | None = None,
        concurrency: int = 32,
        timeout_seconds: float = 10.0,
    ) -> None:
        if settings.url is None:
            raise ValueError("the mqtt channel needs [mqtt] url")
        parts = urlsplit(settings.url)
        self._tls = parts.scheme == "mqtts"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if self._tls else 1883)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._identifier = f"{settings.client_id}-out"
        self._exercises = settings.exercises
        self._prefix = settings.publish_prefix
        self._base_url = base_url.rstrip("/")
        self._superseded = superseded
        self._timeout = timeout_seconds
        self._limits = ChannelLimits(concurrency=concurrency)
        self._areas = RetainedAreas()
        self._client: aiomqtt.Client | None = None
        self._connecting = asyncio.Lock()
        # Told True on each connect, False when a connection is dropped (a metrics gauge).
        self.on_connection: Callable[[bool], None] = lambda up: None

    def __repr__(self) -> str:
        return (
            f"MqttOutChannel(broker={self._host}:{self._port}, prefix={self._prefix!r}, "
            f"client_id={self._identifier!r})"
        )

    @property
    def name(self) -> str:
        return "mqtt"

    @property
    def limits(self) -> ChannelLimits:
        return self._limits

    def audience(self, alert: Alert) -> list[str]:
        return [RECIPIENT]

    def exercise_audience(self, alert: Alert) -> list[str]:
        """Exercises and tests are published only when `mqtt.exercises` is set."""
        return [RECIPIENT] if self._exercises else []

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        return 1

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _disconnect(client)

    async def _connected(self) -> aiomqtt.Client:
        client = self._client
        # paho's own flag: false once the socket closed (aiomqtt has no public one).
        if client is not None and client._client.is_connected():
            return client
        async with self._connecting:
            if self._client is not None and self._client is not client:
                return self._client  # another send reconnected meanwhile
            if self._client is not None:
                stale, self._client = self._client, None
                self.on_connection(False)
                await _disconnect(stale)
            fresh = aiomqtt.Client(
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
            try:
                await fresh.__aenter__()
            except (aiomqtt.MqttError, OSError) as exc:
                raise TransientDeliveryError(
                    f"mqtt broker {self._host}:{self._port}: cannot connect: {exc}"
                ) from exc
            log.info("mqtt publisher connected to %s:%s", self._host, self._port)
            self._client = fresh
            self.on_connection(True)
            return fresh

    async def send(self, message: Outbound) -> SendReceipt:
        """Publish once and wait for every PUBACK; TransientDeliveryError on any failure."""
        stored = message.alert
        superseded: Sequence[StoredAlert] = ()
        if self._superseded is not None and stored.alert.msg_type in (
            MsgType.UPDATE,
            MsgType.CANCEL,
        ):
            superseded = await self._superseded(stored)
        client = await self._connected()
        # From the plan to the publish calls there is no await: gather starts the publishes
        # as tasks in this order, so the broker receives concurrent sends in plan order.
        publishes = plan_publishes(
            stored, superseded, prefix=self._prefix, base_url=self._base_url, areas=self._areas
        )
        try:
            await asyncio.gather(
                *(client.publish(p.topic, p.payload, qos=1, retain=p.retain) for p in publishes)
            )
        except (aiomqtt.MqttError, OSError) as exc:
            if self._client is client:
                self._client = None
                self.on_connection(False)
                await _disconnect(client)
            raise TransientDeliveryError(
                f"mqtt broker {self._host}:{self._port}: publish failed: {exc}"
            ) from exc
        return SendReceipt()


async def _disconnect(client: aiomqtt.Client) -> None:
    with contextlib.suppress(aiomqtt.MqttError, OSError, RuntimeError):
        await client.__aexit__(None, None, None)
    # After a lost connection aiomqtt leaves the reason in a future nobody awaits, and asyncio
    # would log "Future exception was never retrieved": we already reported it as transient.
    lost = client._disconnected
    if lost.done() and not lost.cancelled():
        lost.exception()


__all__ = [
    "MqttOutChannel",
    "Publish",
    "RetainedAreas",
    "alert_payload",
    "area_slug",
    "area_slugs",
    "event_kind",
    "plan_publishes",
]
