"""Twilio webhooks: delivery receipts (`POST /hooks/twilio/status`).

Contract: the request must carry a valid `X-Twilio-Signature`, checked with twilio's own
`RequestValidator` against the URL Twilio called — `http.public_url` + the path (+ query) —
and the auth token; anything else is 403 and changes nothing. A valid receipt moves the
delivery sent as `MessageSid` to delivered / undelivered / failed (with Twilio's ErrorCode);
intermediate statuses (queued, sending, sent) are acknowledged and ignored. Twilio retries
on 5xx, so a receipt for an unknown message is acknowledged (200), not an error.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from twilio.request_validator import RequestValidator

from adapters.http.errors import json_error, json_response
from broadcaster.ports import DeliveryState
from broadcaster.service import Service

_FINAL = {
    "delivered": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.FAILED,
}


def signed_url(service: Service, request: web.Request) -> str:
    """The URL Twilio signed: ours as the public sees it, not as the socket does."""
    base = service.settings.http.base_url
    return f"{base}{request.rel_url}"


async def twilio_status(request: web.Request, service: Service) -> web.Response:
    sms = service.settings.channels.sms
    if sms.auth_token is None:
        return json_error(404, "not_found", "SMS is not configured")
    form = await request.post()
    params = {key: str(value) for key, value in form.items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    validator = RequestValidator(sms.auth_token.get_secret_value())
    if not signature or not validator.validate(signed_url(service, request), params, signature):
        return json_error(403, "bad_signature", "X-Twilio-Signature does not match")
    sid = params.get("MessageSid") or params.get("SmsSid")
    state = _FINAL.get(params.get("MessageStatus", params.get("SmsStatus", "")))
    if not sid or state is None:
        return json_response({"applied": False})
    code = params.get("ErrorCode")
    error = f"twilio {params.get('MessageStatus')}: error {code}" if code else None
    applied = await service.store.record_receipt(sid, state, error, datetime.now(UTC))
    return json_response({"applied": applied})
