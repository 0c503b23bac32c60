"""The HTTP edge: aiohttp routes for the REST API, health and metrics.

Routes call into the core (`Service`) and translate its answers to HTTP; they hold no business
rules. Bodies are capped by aiohttp's `client_max_size` (413 before the body is buffered whole).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.http import subscribers
from adapters.http.access import authenticate
from adapters.http.alert_actions import register_alert_actions
from adapters.http.audit import register_audit
from adapters.http.dashboard import register_dashboard
from adapters.http.errors import MAX_BODY_BYTES, error_middleware, json_error, json_response
from adapters.http.feeds import get_cap_item, register_feeds
from adapters.http.openapi import build_openapi
from adapters.http.pages import register_pages
from adapters.http.responders import register_responder_api
from adapters.http.security import install as install_security_headers
from adapters.http.signing import Signer
from adapters.http.tips import ClientLimiter, register_tips
from adapters.http.twilio_hooks import SMS_LIMITER, twilio_sms, twilio_status
from adapters.http.views import ALERT_ID, ALERT_ROUTE, alert_view, delivery_view
from broadcaster.errors import IntakeError
from broadcaster.intake import PayloadFormat, Submission
from broadcaster.ports import ApiToken, Role
from broadcaster.service import Service

SERVICE = web.AppKey("service", Service)

_JSON_TYPES = {"application/json", "application/alert+json"}
_CAP_TYPES = {"application/cap+xml", "application/xml", "text/xml"}
_ANY_ROLE = (Role.ISSUER, Role.APPROVER, Role.RESPONDER, Role.ADMIN)


def create_app(service: Service) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=service.settings.http.max_body_bytes
    )
    app[SERVICE] = service
    app[MAX_BODY_BYTES] = service.settings.http.max_body_bytes
    install_security_headers(app, service.settings.http.cors_origins)
    sms = service.settings.channels.sms
    app[SMS_LIMITER] = ClientLimiter(sms.inbound_per_minute, sms.inbound_burst)
    app.router.add_post("/v1/alerts", post_alert)
    register_alert_actions(app, service)
    app.router.add_get("/v1/alerts", list_alerts)
    app.router.add_get(ALERT_ROUTE, get_alert)
    app.router.add_get(ALERT_ROUTE + "/deliveries", list_deliveries)
    app.router.add_get("/alerts/{id:" + ALERT_ID + "}.cap", get_alert_cap)
    register_feeds(app)
    app.router.add_post("/hooks/twilio/status", twilio_status_hook)
    app.router.add_post("/hooks/twilio/sms", twilio_sms_hook)
    register_tips(app, service)
    secret = service.settings.http.session_secret
    signer = Signer(secret.get_secret_value().encode() if secret else None)
    register_responder_api(app, service, signer)
    register_dashboard(app, service, signer)
    app.router.add_post("/v1/subscribers", _admin(subscribers.create_subscriber))
    app.router.add_get("/v1/subscribers", _admin(subscribers.list_subscribers))
    app.router.add_get("/v1/subscribers/{phone}", _admin(subscribers.get_subscriber))
    app.router.add_delete("/v1/subscribers/{phone}", _admin(subscribers.delete_subscriber))
    register_audit(app, service)
    app.router.add_get("/openapi.json", get_openapi)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    register_pages(app)
    return app


async def _authenticate(request: web.Request, *roles: Role) -> ApiToken:
    return await authenticate(request, request.app[SERVICE], *roles)


async def post_alert(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    token = await _authenticate(request, Role.ISSUER)
    content_type = request.content_type
    if content_type in _JSON_TYPES:
        fmt = PayloadFormat.JSON
    elif content_type in _CAP_TYPES:
        fmt = PayloadFormat.CAP
    else:
        return json_error(
            415, "unsupported_media_type", "send application/json or application/cap+xml"
        )
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise IntakeError("Idempotency-Key must be 1 to 200 characters", code="bad_idempotency_key")
    body = await request.read()
    if not body:
        raise IntakeError("empty body", code="empty_body")
    results = await service.intake.submit(
        Submission(
            body=body,
            format=fmt,
            source="rest",
            actor=token.id,
            idempotency_key=key,
            actor_name=token.name,
        )
    )
    base = service.settings.http.base_url
    created = any(r.created for r in results)
    status = 201 if created else 200
    if len(results) == 1:
        view = alert_view(results[0].alert, base)
        return json_response(view, status=status, headers={"Location": f"/v1/alerts/{view['id']}"})
    return json_response({"alerts": [alert_view(r.alert, base) for r in results]}, status=status)


def _int_query(
    request: web.Request, name: str, default: int | None, low: int, high: int
) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise IntakeError(f"query parameter {name} must be an integer", code="bad_query") from None
    if not low <= value <= high:
        raise IntakeError(
            f"query parameter {name} must be between {low} and {high}", code="bad_query"
        )
    return value


async def list_alerts(request: web.Request) -> web.Response:
    await _authenticate(request, *_ANY_ROLE)
    limit = _int_query(request, "limit", 50, 1, 500) or 50
    before = _int_query(request, "before", None, 1, 2**62)
    service = request.app[SERVICE]
    rows = await service.store.list_alerts(limit=limit, before_seq=before)
    base = service.settings.http.base_url
    counts = await service.store.delivery_counts_for([r.id for r in rows])
    views = [alert_view(r, base) for r in rows]
    for view, row in zip(views, rows, strict=True):
        view["deliveries"] = counts.get(row.id, {})
    body: dict[str, Any] = {"alerts": views}
    if len(rows) == limit:
        body["next"] = f"/v1/alerts?limit={limit}&before={rows[-1].seq}"
    return json_response(body)


async def get_alert(request: web.Request) -> web.Response:
    await _authenticate(request, *_ANY_ROLE)
    service = request.app[SERVICE]
    stored = await service.store.get_alert(request.match_info["id"])
    if stored is None:
        return json_error(404, "not_found", "no such alert")
    view = alert_view(stored, service.settings.http.base_url)
    view["deliveries"] = await service.store.delivery_counts(stored.id)
    options = stored.alert.responses
    if options:
        votes = await service.store.poll_tally(stored.id)
        view["poll"] = {k: {"label": label, "count": votes.get(k, 0)} for k, label in options}
    return json_response(view)


async def list_deliveries(request: web.Request) -> web.Response:
    """One alert's deliveries, by id: who it went to on which channel, and what happened."""
    await _authenticate(request, *_ANY_ROLE)
    service = request.app[SERVICE]
    alert_id = request.match_info["id"]
    limit = _int_query(request, "limit", 100, 1, 1000) or 100
    after = _int_query(request, "after", None, 0, 2**62)
    if await service.store.get_alert(alert_id) is None:
        return json_error(404, "not_found", "no such alert")
    rows = await service.store.list_deliveries(alert_id, limit=limit, after_id=after)
    body: dict[str, Any] = {"deliveries": [delivery_view(r) for r in rows]}
    if len(rows) == limit:
        body["next"] = f"/v1/alerts/{alert_id}/deliveries?limit={limit}&after={rows[-1].id}"
    return json_response(body)


async def get_alert_cap(request: web.Request) -> web.Response:
    """The alert as CAP 1.2 XML once it is public (the feeds link here), with conditional GET."""
    return await get_cap_item(request)


def _admin(
    handler: Callable[[web.Request, Service], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An admin-only route whose handler takes the service."""

    async def route(request: web.Request) -> web.StreamResponse:
        await _authenticate(request, Role.ADMIN)
        return await handler(request, request.app[SERVICE])

    return route


async def twilio_status_hook(request: web.Request) -> web.Response:
    """Twilio delivery receipts; authenticated by Twilio's signature, not a token."""
    return await twilio_status(request, request.app[SERVICE])


async def twilio_sms_hook(request: web.Request) -> web.Response:
    """Inbound SMS (keywords and replies); authenticated by Twilio's signature."""
    return await twilio_sms(request, request.app[SERVICE])


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(build_openapi(request.app[SERVICE].settings.http.base_url))


async def healthz(request: web.Request) -> web.Response:
    """Alive: the event loop answers. Nothing else is checked (that is /readyz)."""
    service = request.app[SERVICE]
    uptime = round(time.time() - service.started_at, 1)
    return json_response({"status": "ok", "uptime_seconds": uptime})


async def readyz(request: web.Request) -> web.Response:
    ready, body = await request.app[SERVICE].readiness_report()
    return json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[SERVICE].metrics.registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})
