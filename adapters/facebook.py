"""The Facebook Page channel: each alert becomes a post on the configured Page.

Contract:
- On when `[channels.facebook] page_id` and `page_token` are set. The audience is the one
  Page (recipient = its id); each alert, Update and Cancel is one post
  `POST {api_base}/{api_version}/{page_id}/feed` with form fields `message`
  (alerts.facebook.render_post: marker, "UPDATE:"/"CANCELLED:" prefix, headline, instruction,
  trimmed description, link to `<public_url>/alerts/<id>`) and `access_token`. An Update or
  Cancel is a new post rather than a comment under the original: comments are folded away
  and rarely shown in followers' feeds, and a correction must be seen as widely as the alert.
- `{"id": "<page-id>_<post-id>"}` -> SendReceipt(provider_ref=id).
- Graph errors (`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`) map
  by `classify` below: rate limits (codes 4, 17, 32, 341, 613, 80001, and HTTP 429) are
  TransientDeliveryError with `retry_after` from the `X-Business-Use-Case-Usage` /
  `X-Page-Usage` / `X-App-Usage` headers' `estimated_time_to_regain_access` (minutes) when
  given, else `rate_limit_retry_seconds` (60); codes 1, 2, `is_transient: true` and HTTP 5xx
  are transient without a hint; everything else (190 token, 10 / 200-299 permissions, 100
  parameter, 368 blocked, 506 duplicate, other 4xx) is PermanentDeliveryError with code
  `graph_<code>`. Timeouts and connection errors are transient.
- The page token goes in the form body, never in the URL, so no URL we or aiohttp print
  carries it; it is also cut out of any provider message we keep, and never logged or shown
  in a repr. The aiohttp session belongs to the caller.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from alerts.facebook import render_post
from alerts.models import Alert
from broadcaster.config import FacebookSettings
from broadcaster.errors import PermanentDeliveryError, TransientDeliveryError
from broadcaster.ports import ChannelLimits, Outbound, SendReceipt, StoredAlert

RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80001})
TRANSIENT_CODES = frozenset({1, 2})
USAGE_HEADERS = ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-App-Usage")
# A provider message is kept for last_error, but not all of it.
_MAX_MESSAGE = 300
_MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class GraphError:
    """The parts of a Graph error body we use; `code` None when the body was not Graph's."""

    status: int
    code: int | None = None
    subcode: int | None = None
    type: str | None = None
    message: str = ""
    fbtrace_id: str | None = None
    is_transient: bool = False


def parse_error(status: int, body: bytes) -> GraphError:
    """A Graph error from an HTTP status and its body (any body: junk gives code None)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return GraphError(status=status)
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return GraphError(status=status)

    def as_int(value: object) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return None

    message = error.get("message")
    kind = error.get("type")
    trace = error.get("fbtrace_id")
    return GraphError(
        status=status,
        code=as_int(error.get("code")),
        subcode=as_int(error.get("error_subcode")),
        type=kind if isinstance(kind, str) else None,
        message=message if isinstance(message, str) else "",
        fbtrace_id=trace if isinstance(trace, str) else None,
        is_transient=error.get("is_transient") is True,
    )


def regain_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds until Graph lets us call again, from the usage headers'
    `estimated_time_to_regain_access` (minutes; the largest over all of them), or None when
    no header gives a positive one. Unreadable headers are ignored."""
    minutes: list[float] = []

    def collect(entry: object) -> None:
        if isinstance(entry, dict):
            value = entry.get("estimated_time_to_regain_access")
            if isinstance(value, bool) or not isinstance(value, int | float):
                return
            if math.isfinite(value) and value > 0:
                minutes.append(float(value))

    for name in USAGE_HEADERS:
        raw = headers.get(name)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        if name == "X-Business-Use-Case-Usage" and isinstance(usage, dict):
            # {"<business id>": [{"type": "pages", "call_count": ..., ...}, ...]}
            for entries in usage.values():
                for entry in entries if isinstance(entries, list) else []:
                    collect(entry)
        else:
            collect(usage)
    return max(minutes) * 60.0 if minutes else None


def redact(text: str, secret: str) -> str:
    """`text` with `secret` cut out (and cut short): provider messages may quote the token."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def classify(
    error: GraphError,
    headers: Mapping[str, str],
    *,
    secret: str,
    rate_limit_retry_seconds: float = 60.0,
) -> TransientDeliveryError | PermanentDeliveryError:
    """The delivery error for a Graph error answer (see the module docstring)."""
    if error.code is None:
        detail = f"facebook answered HTTP {error.status}"
    else:
        detail = f"facebook answered HTTP {error.status}: Graph error {error.code}"
        if error.subcode is not None:
            detail += f"/{error.subcode}"
        if error.type:
            detail += f" ({error.type})"
        if error.message:
            detail += f": {redact(error.message, secret)}"
        if error.fbtrace_id:
            detail += f" [fbtrace_id {redact(error.fbtrace_id, secret)}]"
    if error.code in RATE_LIMIT_CODES or error.status == 429:
        retry_after = regain_seconds(headers)
        return TransientDeliveryError(
            detail,
            retry_after=retry_after if retry_after is not None else rate_limit_retry_seconds,
        )
    if error.code in TRANSIENT_CODES or error.is_transient or error.status >= 500:
        return TransientDeliveryError(detail)
    code = f"graph_{error.code}" if error.code is not None else f"http_{error.status}"
    return PermanentDeliveryError(detail, code=code)


class FacebookChannel:
    """Posts to one Facebook Page through the Graph API (see the module docstring)."""

    def __init__(
        self,
        settings: FacebookSettings,
        session: aiohttp.ClientSession,
        *,
        public_url: str | None,
        timeout_seconds: float = 10.0,
        rate_limit_retry_seconds: float = 60.0,
    ) -> None:
        if settings.page_id is None or settings.page_token is None:
            raise ValueError("the Facebook channel needs [channels.facebook] page_id and token")
        self._page_id = settings.page_id
        self._exercises = settings.exercises
        self._token = settings.page_token
        self._url = f"{settings.api_base}/{settings.api_version}/{settings.page_id}/feed"
        self._session = session
        self._public_url = public_url.rstrip("/") if public_url else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._rate_limit_retry = rate_limit_retry_seconds
        # One Page, one account: posts go out one at a time, in claim order.
        self._limits = ChannelLimits(rate_per_second=settings.rate_per_second, concurrency=1)

    def __repr__(self) -> str:
        return f"FacebookChannel(page_id={self._page_id!r}, url={self._url!r})"

    @property
    def name(self) -> str:
        return "facebook"

    @property
    def limits(self) -> ChannelLimits:
        return self._limits

    def audience(self, alert: Alert) -> list[str]:
        return [self._page_id]

    def exercise_audience(self, alert: Alert) -> list[str]:
        """Exercises and tests are posted only on a Page configured for them."""
        return [self._page_id] if self._exercises else []

    def cost(self, alert: StoredAlert, recipient: str) -> int:
        return 1

    async def close(self) -> None:
        return None

    def message_for(self, stored: StoredAlert) -> str:
        link = f"{self._public_url}/alerts/{stored.id}" if self._public_url else None
        return render_post(stored.alert, link=link)

    async def send(self, message: Outbound) -> SendReceipt:
        """Post once; raise TransientDeliveryError or PermanentDeliveryError on failure."""
        if message.delivery.recipient != self._page_id:
            raise PermanentDeliveryError(
                f"facebook page {message.delivery.recipient} is no longer configured",
                code="unknown_page",
            )
        secret = self._token.get_secret_value()
        form = {"message": self.message_for(message.alert), "access_token": secret}
        try:
            async with self._session.post(
                self._url, data=form, timeout=self._timeout, allow_redirects=False
            ) as response:
                status = response.status
                headers = response.headers.copy()  # case-insensitive
                body = await response.content.read(_MAX_BODY)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # The class only, as the webhook does; the chained cause keeps the rest (the URL,
            # which holds no secret: the token travels in the body).
            raise TransientDeliveryError(f"facebook: {type(exc).__name__}") from exc
        if 200 <= status < 300:
            post_id = _post_id(body)
            return SendReceipt(provider_ref=post_id)
        raise classify(
            parse_error(status, body),
            headers,
            secret=secret,
            rate_limit_retry_seconds=self._rate_limit_retry,
        )


def _post_id(body: bytes) -> str | None:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return None
    value = payload.get("id") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


__all__ = [
    "FacebookChannel",
    "GraphError",
    "classify",
    "parse_error",
    "redact",
    "regain_seconds",
]
