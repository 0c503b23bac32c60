"""Comms-desk actions on alerts: approve / reject (the two-person rule), issue from a
pre-approved template, and the one-step correction (cancel).

| route | role |
|---|---|
| `POST /v1/alerts/{id}/approve` `{"reason"}` | approver (admin) |
| `POST /v1/alerts/{id}/reject` `{"reason"}` | approver (admin) |
| `POST /v1/alerts/{id}/cancel` `{"reason", "values"?}` | issuer, approver (admin) |
| `POST /v1/alerts/from-template/{name}` | issuer (admin) |
| `GET /v1/templates` | issuer, approver (admin) |

Handlers translate to and from HTTP only: the rules live in `broadcaster.approval` and
`broadcaster.corrections`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from aiohttp import web

from adapters.http.access import authenticate
from adapters.http.errors import json_error, json_object_body, json_response
from adapters.http.views import ALERT_ROUTE, alert_view
from alerts.models import MsgType
from broadcaster.approval import AlertNotFound, clean_reason
from broadcaster.audit import AuditEntry, actor_detail
from broadcaster.corrections import correction_request, template_listing, template_submission
from broadcaster.errors import IntakeError, PayloadError, UnsupportedMediaType
from broadcaster.intake import PayloadFormat, Submission
from broadcaster.ports import AlertState, Role
from broadcaster.service import Service


def register_alert_actions(app: web.Application, service: Service) -> None:
    """Add the routes. Register before `/v1/alerts/{id}/...` look-alikes would shadow
    `from-template`."""
    routes = AlertActions(service)
    app.router.add_post("/v1/alerts/from-template/{name}", routes.from_template)
    app.router.add_post(ALERT_ROUTE + "/approve", routes.approve)
    app.router.add_post(ALERT_ROUTE + "/reject", routes.reject)
    app.router.add_post(ALERT_ROUTE + "/cancel", routes.cancel)
    app.router.add_get("/v1/templates", routes.templates)


def _only(body: dict[str, Any], *allowed: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise PayloadError(f"unknown field(s): {', '.join(unknown)}")


class AlertActions:
    def __init__(self, service: Service) -> None:
        self._service = service

    def _base(self) -> str:
        return self._service.settings.http.base_url

    async def approve(self, request: web.Request) -> web.Response:
        token = await authenticate(request, self._service, Role.APPROVER)
        body = await json_object_body(request)
        _only(body, "reason")
        stored = await self._service.approvals.approve(
            request.match_info["id"], token, body.get("reason")
        )
        view = alert_view(stored, self._base())
        view["deliveries"] = await self._service.store.delivery_counts(stored.id)
        return json_response(view)

    async def reject(self, request: web.Request) -> web.Response:
        token = await authenticate(request, self._service, Role.APPROVER)
        body = await json_object_body(request)
        _only(body, "reason")
        stored = await self._service.approvals.reject(
            request.match_info["id"], token, body.get("reason")
        )
        return json_response(alert_view(stored, self._base()))

    async def from_template(self, request: web.Request) -> web.Response:
        service = self._service
        token = await authenticate(request, service, Role.ISSUER)
        if request.content_type != "application/json":
            raise UnsupportedMediaType("send application/json")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 200:
            raise IntakeError(
                "Idempotency-Key must be 1 to 200 characters", code="bad_idempotency_key"
            )
        submission = template_submission(
            request.match_info["name"],
            await request.read(),
            actor=token.id,
            idempotency_key=key,
        )
        (result,) = await service.intake.submit(replace(submission, actor_name=token.name))
        view = alert_view(result.alert, self._base())
        return json_response(
            view,
            status=201 if result.created else 200,
            headers={"Location": f"/v1/alerts/{view['id']}"},
        )

    async def cancel(self, request: web.Request) -> web.Response:
        """The one-step correction: a Cancel from the ready correction template, to exactly
        those the alert reached, never held for approval; audited with the reason."""
        service = self._service
        token = await authenticate(request, service, Role.ISSUER, Role.APPROVER)
        body = await json_object_body(request)
        _only(body, "reason", "values")
        reason = clean_reason(body.get("reason"))
        values = body.get("values")
        if values is not None and not isinstance(values, dict):
            raise PayloadError("values: must be an object of placeholder values")
        alert_id = request.match_info["id"]
        stored = await service.store.get_alert(alert_id)
        if stored is None:
            raise AlertNotFound("no such alert")
        if stored.alert.msg_type is MsgType.CANCEL:
            detail = f"alert {alert_id} is itself a Cancel: there is nothing to correct"
            return json_error(409, "not_cancellable", detail)
        if stored.state is not AlertState.ACCEPTED:
            successor = await service.store.successor_of(alert_id)
            return _not_cancellable(stored.state, alert_id, successor)
        template, used, cancel = correction_request(
            stored.id, stored.alert, stored.template, dict(stored.template_values), values
        )
        name, identity = actor_detail(token)

        def cancel_entry(cancel_id: str, at: datetime) -> AuditEntry:
            return AuditEntry(
                at=at,
                actor=name,
                action="alert.cancel",
                detail={
                    "alert_id": stored.id,
                    "cancel_id": cancel_id,
                    "reason": reason,
                    "template": template.name,
                    **identity,
                },
            )

        submission = Submission(
            body=cancel.model_dump_json(exclude_none=True).encode(),
            format=PayloadFormat.JSON,
            source="rest",
            actor=token.id,
            actor_name=token.name,
            template=template.name,
            template_values=tuple(sorted(used.items())),
            # In the Cancel's own transaction: a cancel that commits is always on record
            # (with its reason), and a failed write leaves neither.
            also_audit=cancel_entry,
        )
        (result,) = await service.intake.submit(submission)
        correction = result.alert
        view = alert_view(correction, self._base())
        view["cancels"] = stored.id
        view["deliveries"] = await service.store.delivery_counts(correction.id)
        return json_response(view, status=201, headers={"Location": f"/v1/alerts/{correction.id}"})

    async def templates(self, request: web.Request) -> web.Response:
        await authenticate(request, self._service, Role.ISSUER, Role.APPROVER)
        return json_response({"templates": template_listing()})


def _not_cancellable(state: AlertState, alert_id: str, successor: str | None) -> web.Response:
    if state is AlertState.CANCELLED:
        detail = f"alert {alert_id} is already cancelled (by {successor})"
        return json_error(409, "already_cancelled", detail)
    if state is AlertState.SUPERSEDED:
        detail = f"alert {alert_id} was replaced by {successor}: cancel that one"
        return json_error(409, "superseded", detail)
    if state is AlertState.PENDING_APPROVAL:
        detail = f"alert {alert_id} was never sent: reject it instead"
        return json_error(409, "not_sent", detail)
    return json_error(409, "not_cancellable", f"alert {alert_id} is {state.value}")
