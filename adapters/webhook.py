"""The webhook channel: each alert is POSTed as signed JSON to every configured receiver.

Contract:
- A delivery's recipient is the receiver URL; its secret is looked up by that URL at send
  time, so a receiver removed from the config fails its pending deliveries permanently
  (`PermanentDeliveryError(code="unknown_receiver")`) instead of posting unsigned.
- Body: compact UTF-8 JSON {"event": "alert.<msg_type lower>", "alert_id", "delivery_id",
  "attempt", "status", "msg_type", "severity", "urgency", "sent", "text", "alert"}.
- Headers: `X-Broadcaster-Event`, `X-Broadcaster-Delivery` (the delivery id: the same on every
  retry, so a receiver can drop duplicates), `X-Broadcaster-Timestamp` (unix seconds) and
  `X-Broadcaster-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>`.
  Receivers check them with `verify`, which also refuses stale timestamps (replays).
- Answers: 2xx -> SendReceipt(provider_ref=X-Request-Id); 408, 425, 429, 5xx, timeouts and
  connection errors -> TransientDeliveryError (retry_after from Retry-After when given); every
  other status (other 4xx, and 3xx: redirects are not followed, a signed body must not
  wander to another host) -> PermanentDeliveryError(code="http_<status>").
- Secrets never leave this module: not in reprs, exception details or logs. Error details
  name the receiver by scheme, host and path only (query strings often carry tokens too).
- The aiohttp session belongs to the caller; `close` only drops this channel's caches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp

from alerts.models import Alert, format_cap_time
from alerts.render import render_text
from broadcaster.config import WebhookReceiver
from broadcaster.errors import PermanentDeliveryError, TransientDeliveryError
from broadcaster.ports import ChannelLimits, Outbound, SendReceipt, StoredAlert

# One alert fans out to every receiver; its rendered body parts are reused across them.
_CACHE_SIZE = 64
# A receiver's answer is read (so the connection can be reused) but never kept; past this
# much we stop reading and let aiohttp close the connection instead.
_MAX_DRAIN_BYTES = 64 * 1024
_RETRYABLE_STATUSES = frozenset({408, 425, 429})


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Broadcaster-Signature` value of `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: float = 300,
) -> bool:
    """True when the signature matches and the timestamp is within `tolerance_seconds` of
    `now` (either way: a clock running ahead is as suspect as a replay)."""
    stamp = timestamp_header.strip()
    # int() alone would also accept "+12", "1_000" or non-ASCII digits.
    if not (stamp.isascii() and stamp.isdigit()):
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).encode()
    # Constant-time, so timing does not reveal how much of a forged signature was right.
    return hmac.compare_digest(expected, signature_header.strip().encode("utf-8", "replace"))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds or an HTTP-date; None if absent or
    unreadable (the dispatcher then uses its own backoff)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # nan and inf parse as floats but are no delay anyone can wait.
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - now, 0.0)


def _safe_url(url: str) -> str:
    """The URL without user info, query or fragment: fit for error details."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True, slots=True)
class _Receiver:
    safe_url: str
    # Kept out of the repr: this HMAC state is keyed with the receiver's secret.
    mac: hmac.HMAC = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The parts of a body that depend only on the alert, as JSON bytes."""

    event: str
    head: bytes  # {"event":...,"alert_id":...,"delivery_id":
    tail: bytes  # ,"status":...,"alert":{...}}


class WebhookChannel:
    """Signed JSON POSTs to the configured receivers (see the module docstring)."""

    def __init__(
        self,
        receivers: Sequence[WebhookReceiver],
        session: aiohttp.ClientSession,
        *,
        limits: ChannelLimits | None = None,
        timeout_seconds: float = 10.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._receivers: dict[str, _Receiver] = {}
        # Receivers that also take exercises and tests (a training system).
        self._exercise_receivers: list[str] = []
        # One keyed HMAC per distinct secret (receivers often share one): ~1 KB each.
        macs: dict[bytes, hmac.HMAC] = {}
        for receiver in receivers:
            # The first entry for a URL wins; a repeated URL is one receiver, not two sends.
            if receiver.url not in self._receivers:
                secret = receiver.secret.get_secret_value().encode()
                mac = macs.get(secret)
                if mac is None:
                    # Keyed once; each send copies it rather than re-deriving the key pads.
                    mac = macs[secret] = hmac.new(secret, digestmod=hashlib.sha256)
                self._receivers[receiver.url] = _Receiver(safe_url=_safe_url(receiver.url), mac=mac)
                if receiver.exercises:
                    self._exercise_receivers.append(receiver.url)
        self._session = session
        self._limits = limits if limits is not None else ChannelLimits(concurrency=32)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._wall = wall
        self._prepared: dict[str, _Prepared] = {}

    def __repr__(self) -> str:
        urls = [r.safe_url for r in self._receivers.values()]
        return f"WebhookChannel(receivers={urls!r}, timeout={self._timeout.total}s)"

    @property
    def name(self) -> str:
        return "webhook"

    @property
    def limits(self) -> ChannelLimits:
        return self._limits

    def audience(self, alert: Alert) -> list[str]:
        """Every receiver URL, in config order, each once."""
        return list(self._receivers)

    def exercise_audience(self, alert: Alert) -> list[str]:
        """The receivers configured with `exercises = true`, in config order."""
        return list(self._exercise_receivers)

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        return 1

    async def close(self) -> None:
        self._prepared.clear()

    def _prepare(self, stored: StoredAlert) -> _Prepared:
        prepared = self._prepared.get(stored.id)
        if prepared is not None:
            return prepared
        alert = stored.alert
        event = f"alert.{alert.msg_type.value.lower()}"

        def dump(value: object) -> str:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

        head = f'{{"event":{dump(event)},"alert_id":{dump(stored.id)},"delivery_id":'
        tail = (
            f',"status":{dump(alert.status.value)}'
            f',"msg_type":{dump(alert.msg_type.value)}'
            f',"severity":{dump(alert.severity.value)}'
            f',"urgency":{dump(alert.urgency.value)}'
            f',"sent":{dump(format_cap_time(alert.sent))}'
            f',"text":{dump(render_text(alert))}'
            f',"alert":{alert.model_dump_json()}}}'
        )
        prepared = _Prepared(event=event, head=head.encode(), tail=tail.encode())
        if len(self._prepared) >= _CACHE_SIZE:
            # Oldest first: alerts fan out in bursts, so the oldest is the one finished.
            del self._prepared[next(iter(self._prepared))]
        self._prepared[stored.id] = prepared
        return prepared

    async def send(self, message: Outbound) -> SendReceipt:
        """POST once; raise TransientDeliveryError or PermanentDeliveryError on failure."""
        delivery = message.delivery
        url = delivery.recipient
        receiver = self._receivers.get(url)
        if receiver is None:
            raise PermanentDeliveryError(
                f"webhook receiver {_safe_url(url)} is no longer configured",
                code="unknown_receiver",
            )
        prepared = self._prepare(message.alert)
        # Spliced rather than re-serialised: only these two numbers differ per delivery.
        body = b'%s%d,"attempt":%d%s' % (
            prepared.head,
            delivery.id,
            delivery.attempts,
            prepared.tail,
        )
        timestamp = int(self._wall())
        mac = receiver.mac.copy()
        mac.update(b"%d." % timestamp)
        mac.update(body)
        headers = {
            "Content-Type": "application/json",
            "X-Broadcaster-Event": prepared.event,
            "X-Broadcaster-Delivery": str(delivery.id),
            "X-Broadcaster-Timestamp": str(timestamp),
            "X-Broadcaster-Signature": "sha256=" + mac.hexdigest(),
        }
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                status = response.status
                request_id = response.headers.get("X-Request-Id")
                retry_after_header = response.headers.get("Retry-After")
                await _drain(response.content)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # The class says what happened; str(exc) may quote the full URL with its query,
            # which stays in the chained cause for debugging but out of the stored detail.
            raise TransientDeliveryError(
                f"webhook {receiver.safe_url}: {type(exc).__name__}"
            ) from exc
        if 200 <= status < 300:
            return SendReceipt(provider_ref=request_id)
        detail = f"webhook {receiver.safe_url} answered HTTP {status}"
        if status in _RETRYABLE_STATUSES or status >= 500:
            retry_after = parse_retry_after(retry_after_header, now=self._wall())
            raise TransientDeliveryError(detail, retry_after=retry_after)
        raise PermanentDeliveryError(detail, code=f"http_{status}")


async def _drain(content: aiohttp.StreamReader) -> None:
    left = _MAX_DRAIN_BYTES
    while left > 0:
        chunk = await content.readany()
        if not chunk:
            return
        left -= len(chunk)


__all__ = ["WebhookChannel", "parse_retry_after", "sign", "verify"]
