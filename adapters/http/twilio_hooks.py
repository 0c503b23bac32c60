"""Twilio webhooks: delivery receipts (`POST /hooks/twilio/status`) and inbound messages
(`POST /hooks/twilio/sms`).

Contract: the request must carry a valid `X-Twilio-Signature`, computed with twilio's own
`RequestValidator` and compared with `hmac.compare_digest`, against the URL Twilio called —
`http.public_url` + the path (+ query) — and the auth token; anything else is 403 and
changes nothing. A valid receipt moves the delivery sent as `MessageSid` to delivered /
undelivered / failed (with Twilio's ErrorCode); intermediate statuses (queued, sending,
sent) are acknowledged and ignored. Twilio retries on 5xx, so a receipt for an unknown
message is acknowledged (200), not an error.

Inbound messages (configure the number's "A message comes in" webhook as
`<public_url>/hooks/twilio/sms`, HTTP POST) pass the same signature check, then go to the
core's `SmsInbox` (keywords STOP/START/HELP/JOIN, everything else a reply; see
`broadcaster.sms_inbox`). The answer is TwiML (`text/xml`): `<Response><Message>..`
for a keyword's confirmation, an empty `<Response/>` for a reply. A Twilio retry of the
same MessageSid is stored once.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from aiohttp import web
from twilio.request_validator import RequestValidator, add_port, remove_port
from twilio.twiml.messaging_response import MessagingResponse

from adapters.http.errors import json_error, json_response, read_form
from adapters.http.tips import ClientLimiter
from broadcaster.ports import DeliveryState
from broadcaster.service import Service
from broadcaster.sms_inbox import STOP_WORDS, InboundSms

# One token bucket per sending number (see SmsSettings.inbound_per_minute).
SMS_LIMITER = web.AppKey("sms_limiter", ClientLimiter)

_FINAL = {
    "delivered": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.FAILED,
}


def signed_url(service: Service, request: web.Request) -> str:
    """The URL Twilio signed: ours as the public sees it, not as the socket does."""
    base = service.settings.http.base_url
    return f"{base}{request.rel_url}"


async def _signed_form(request: web.Request, service: Service) -> dict[str, str] | web.Response:
    """The form Twilio posted, or the 404/403 answer when SMS is off or the signature fails."""
    sms = service.settings.channels.sms
    if sms.auth_token is None:
        return json_error(404, "not_found", "SMS is not configured")
    form = await read_form(request)
    params = {key: str(value) for key, value in form.items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    validator = RequestValidator(sms.auth_token.get_secret_value())
    # The form itself, not `params`: twilio reads values with getall() and, given a plain
    # dict, raises and catches an AttributeError per field (a third of the check's cost).
    if not signature or not _signature_valid(
        validator, signed_url(service, request), form, signature
    ):
        return json_error(403, "bad_signature", "X-Twilio-Signature does not match")
    return params


def _signature_valid(
    validator: RequestValidator, url: str, params: Mapping[str, Any], signature: str
) -> bool:
    """twilio's own signature (HMAC-SHA1 over the URL and the sorted form), over the URL with
    and without its default port as Twilio signs either, each compared with
    `hmac.compare_digest`. The second form is tried only when the first does not match:
    which URL form matched reveals nothing about the secret."""
    given = signature.encode("utf-8", "replace")
    return any(
        hmac.compare_digest(validator.compute_signature(candidate, params).encode(), given)
        for candidate in _url_forms(url)
    )


@functools.lru_cache(maxsize=64)
def _url_forms(url: str) -> tuple[str, str]:
    """The URL without and with its default port, the form it already has first: Twilio
    signs the URL as configured, so the first HMAC is usually the one that matches. Cached:
    the hook's URL hardly ever varies."""
    parsed = urlparse(url)
    without, with_port = remove_port(parsed), add_port(parsed)
    return (with_port, without) if parsed.port else (without, with_port)


@functools.lru_cache(maxsize=256)
def _twiml(answer: str | None) -> str:
    """The TwiML for an answer (an empty `<Response/>` for None). Cached: the answers are a
    handful of constant texts (and JOIN's per area), and building XML per request is not
    free."""
    twiml = MessagingResponse()
    if answer:
        twiml.message(answer)
    return str(twiml)


async def twilio_sms(request: web.Request, service: Service) -> web.Response:
    params = await _signed_form(request, service)
    if isinstance(params, web.Response):
        return params
    sid = params.get("MessageSid") or params.get("SmsSid")
    phone = params.get("From", "").strip()
    if not sid or not phone:
        return json_error(400, "bad_request", "MessageSid and From are required")
    body = params.get("Body", "")
    limiter = request.app.get(SMS_LIMITER)
    if limiter is not None and body.strip().upper() not in STOP_WORDS and limiter.take(phone):
        # A flood from one number: answered (Twilio must not retry) but dropped unstored.
        return web.Response(text=_twiml(None), content_type="text/xml")
    media = params.get("MediaUrl0") if params.get("NumMedia", "0") not in ("", "0") else None
    message = InboundSms(
        sid=sid,
        phone=phone,
        body=body,
        received_at=datetime.now(UTC),
        media_url=media or None,
    )
    answer = await service.sms_inbox.receive(message)
    return web.Response(text=_twiml(answer), content_type="text/xml")


async def twilio_status(request: web.Request, service: Service) -> web.Response:
    params = await _signed_form(request, service)
    if isinstance(params, web.Response):
        return params
    sid = params.get("MessageSid") or params.get("SmsSid")
    state = _FINAL.get(params.get("MessageStatus", params.get("SmsStatus", "")))
    if not sid or state is None:
        return json_response({"applied": False})
    code = params.get("ErrorCode")
    error = f"twilio {params.get('MessageStatus')}: error {code}" if code else None
    applied = await service.store.record_receipt(sid, state, error, datetime.now(UTC))
    return json_response({"applied": applied})
