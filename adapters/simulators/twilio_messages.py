"""What the Twilio simulator says and decides, without I/O: the Message resource and the forms
Twilio posts, the send validation, SMS segment counting and the per-sender rate window.

Contract:
- Pure and deterministic: every function answers from its arguments only (the caller passes
  sids it drew and the current time), so `adapters.simulators.twilio` keeps all randomness,
  clocks and HTTP, and the same seed still gives the same sids and decisions.
- Dicts are built in a fixed key order, which is the order the simulator sends them in (JSON
  bodies, form fields).
- `adapters.simulators.twilio` re-exports the public names here; import them from there.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "simulated-auth-token"  # noqa: S105 - a loopback stand-in, not a secret
MAX_BODY_CHARS = 1600
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

# GSM 03.38 default alphabet (one septet each) and its extension table (escape + one septet).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def segments(body: str) -> int:
    """SMS segments for `body`: GSM-7 160 (153 when split), else UCS-2 70 (67 when split)."""
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in body):
        units = sum(2 if char in GSM7_EXTENSION else 1 for char in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2  # UTF-16 code units: an emoji is two
        single, multi = 70, 67
    if units <= single:
        return 1
    return math.ceil(units / multi)


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    """Twilio's error JSON, as the REST API answers it."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment)  # "Thu, 24 Aug 2023 05:01:45 +0000" for an aware UTC time


@dataclass(slots=True)
class Callback:
    """One status callback attempt."""

    url: str
    params: dict[str, str]
    signature: str
    status: int | None  # the receiver's HTTP status, None when it could not be reached
    at: float  # time.monotonic() when it was sent


@dataclass(slots=True)
class Inbound:
    """One inbound message posted to a webhook, and what the webhook answered."""

    url: str
    params: dict[str, str]
    status: int
    answer: str


@dataclass(slots=True)
class SenderWindow:
    """The segments one sender sent in the last rolling second: (monotonic time, segments)."""

    window: deque[tuple[float, int]] = field(default_factory=deque)

    def admit(self, parts: int, now: float, mps: float) -> bool:
        """Take `parts` segments if they fit in `mps` per rolling second. A message of more
        segments than `mps` passes when the window is empty: delayed, never starved."""
        window = self.window
        while window and window[0][0] <= now - 1.0:
            window.popleft()
        used = sum(taken for _, taken in window)
        if window and used + parts > mps:
            return False
        window.append((now, parts))
        return True


def send_refusal(
    to: str,
    sender: str | None,
    service: str | None,
    body: str,
    *,
    opted_out: Container[str],
    not_mobile: Container[str],
) -> tuple[int, str] | None:
    """Why Twilio answers 400 to this send, as (error code, message), checked in Twilio's
    order; None when the send is valid. `to` and `body` as posted (`to` stripped)."""
    if not to:
        return 21604, "A 'To' phone number is required."
    if not E164.match(to):
        return 21211, f"Invalid 'To' Phone Number: {to}"
    if sender is None and service is None:
        return 21603, "A 'From' phone number is required."
    if not body:
        return 21602, "Message body is required."
    if len(body) > MAX_BODY_CHARS:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    if to in opted_out:
        return 21610, "Attempt to send to unsubscribed recipient"
    if to in not_mobile:
        return 21614, f"'To' number {to} is not a valid mobile number"
    return None


def message_resource(
    *,
    account_sid: str,
    sid: str,
    to: str,
    sender: str | None,
    service: str | None,
    body: str,
    parts: int,
    now: datetime,
) -> dict[str, Any]:
    """A freshly accepted Message resource: "queued", or "accepted" when sent through a
    messaging service without From. `now` is an aware UTC time."""
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    stamp = _rfc2822(now)
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": stamp,
        "date_sent": None,
        "date_updated": stamp,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": str(parts),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued" if sender is not None else "accepted",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def advance(resource: dict[str, Any], status: str, now: datetime) -> None:
    """Move `resource` (in place) to `status`: "sent", "delivered" or "undelivered" (which
    sets ErrorCode 30003). `now` is an aware UTC time."""
    stamp = _rfc2822(now)
    resource["status"] = status
    resource["date_updated"] = stamp
    if status == "sent":
        resource["date_sent"] = stamp
    if status == "undelivered":
        resource["error_code"] = 30003
        resource["error_message"] = "Unreachable destination handset"


def status_callback_form(resource: dict[str, Any]) -> dict[str, str]:
    """The form Twilio posts to a StatusCallback for `resource` as it stands (unsigned)."""
    params = {
        "AccountSid": resource["account_sid"],
        "ApiVersion": API_VERSION,
        "MessageSid": resource["sid"],
        "MessageStatus": resource["status"],
        "SmsSid": resource["sid"],
        "SmsStatus": resource["status"],
        "To": resource["to"],
    }
    if resource["from"] is not None:
        params["From"] = resource["from"]
    if resource["messaging_service_sid"] is not None:
        params["MessagingServiceSid"] = resource["messaging_service_sid"]
    if resource["error_code"] is not None:
        params["ErrorCode"] = str(resource["error_code"])
    return params


def inbound_form(
    *, account_sid: str, sid: str, from_: str, to: str, body: str, media: list[str]
) -> dict[str, str]:
    """The form Twilio posts to a number's incoming-message webhook (unsigned); each media
    URL is announced as an image/jpeg."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "Body": body,
        "From": from_,
        "MessageSid": sid,
        "NumMedia": str(len(media)),
        "NumSegments": str(segments(body)),
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": to,
    }
    for index, url in enumerate(media):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = "image/jpeg"
    return params
