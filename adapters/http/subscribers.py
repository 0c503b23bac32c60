"""Admin REST for SMS subscribers: create (or update) one, read, page, delete.

Contract: admin role only. `POST /v1/subscribers` takes {phone, lat?, lon?, area_code?,
language?, groups?: [..]}, validated like a CSV row (E.164 by phonenumbers); 201 when new,
200 when it updated an existing number (opt-out state is kept). `GET /v1/subscribers`
pages by id (`limit`, `after`); `GET` / `DELETE /v1/subscribers/{phone}` address one by its
E.164 number (URL-encode the `+` as %2B). Each change reloads the SMS audience index.

Reads show `flagged` (why Twilio refused the number, e.g. "21614 not a mobile number") and
`flagged_at`; a flagged subscriber is texted no more. The phone is the key, so a refused
number is never "changed" by an update: an update through this API of one subscriber is the
admin's word that the record is fixed (the number was checked, or became a mobile), and it
clears the flag. A CSV import does not: importing the same list again must not re-text every
number Twilio refused (as it never re-subscribes an opt-out). To replace a wrong number,
delete it and create the right one.

Every create, update and delete is audited (`subscriber.create|update|delete`) with the
subscriber's id and the admin token: never the number, as the log is kept for good.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.http.access import request_token
from adapters.http.errors import json_error, json_response
from broadcaster.audit import record as audit_record
from broadcaster.errors import IntakeError, MalformedPayload, PayloadError
from broadcaster.intake import describe_validation_error
from broadcaster.ports import Subscriber
from broadcaster.service import Service
from broadcaster.subscribers import RowProblem, normalise_phone


class SubscriberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=40)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    area_code: str | None = Field(default=None, max_length=40)
    language: str = Field(default="en-US", pattern=r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
    groups: list[str] = Field(default_factory=list, max_length=50)


def subscriber_view(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.id,
        "phone": subscriber.phone,
        "lat": subscriber.lat,
        "lon": subscriber.lon,
        "area_code": subscriber.area_code,
        "language": subscriber.language,
        "groups": list(subscriber.groups),
        "opted_out_at": subscriber.opted_out_at.isoformat() if subscriber.opted_out_at else None,
        "created_at": subscriber.created_at.isoformat() if subscriber.created_at else None,
        "flagged": subscriber.flagged,
        "flagged_at": subscriber.flagged_at.isoformat() if subscriber.flagged_at else None,
    }


async def create_subscriber(request: web.Request, service: Service) -> web.Response:
    body = await request.read()
    try:
        wanted = SubscriberRequest.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise MalformedPayload(describe_validation_error(exc)) from exc
        raise PayloadError(describe_validation_error(exc), code="invalid_subscriber") from exc
    if (wanted.lat is None) != (wanted.lon is None):
        raise PayloadError("lat and lon must be given together", code="invalid_subscriber")
    try:
        phone = normalise_phone(wanted.phone)
    except RowProblem as exc:
        raise PayloadError(str(exc), code="invalid_phone") from None
    subscriber = Subscriber(
        phone=phone,
        lat=wanted.lat,
        lon=wanted.lon,
        area_code=wanted.area_code,
        language=wanted.language,
        groups=tuple(g.strip() for g in wanted.groups if g.strip()),
    )
    created, _updated = await service.store.upsert_subscribers([subscriber], datetime.now(UTC))
    if not created:  # the admin fixed the record: text it again
        await service.store.flag_subscriber(phone, None, None)
    await service.notify_subscribers_changed()
    stored = await service.store.get_subscriber(phone)
    await audit_record(
        service.store,
        request_token(request),
        "subscriber.create" if created else "subscriber.update",
        id=None if stored is None else stored.id,
        created=created,
        updated=not created,
    )
    if stored is None:  # deleted in between: report what we know
        return json_response(subscriber_view(subscriber), status=201 if created else 200)
    return json_response(subscriber_view(stored), status=201 if created else 200)


async def list_subscribers(request: web.Request, service: Service) -> web.Response:
    try:
        limit = int(request.query.get("limit", "100"))
        after = int(request.query["after"]) if "after" in request.query else None
    except ValueError:
        raise IntakeError("limit and after must be integers", code="bad_query") from None
    if not 1 <= limit <= 1000:
        raise IntakeError("limit must be between 1 and 1000", code="bad_query")
    if after is not None and not 0 <= after <= 2**62:
        # Past SQLite's and PostgreSQL's 64-bit integers the driver would fail (a 500).
        raise IntakeError("after must be between 0 and 2^62", code="bad_query")
    rows = await service.store.list_subscribers(limit=limit, after_id=after)
    body: dict[str, Any] = {"subscribers": [subscriber_view(s) for s in rows]}
    if len(rows) == limit and rows[-1].id is not None:
        body["next"] = f"/v1/subscribers?limit={limit}&after={rows[-1].id}"
    return json_response(body)


async def get_subscriber(request: web.Request, service: Service) -> web.Response:
    subscriber = await service.store.get_subscriber(request.match_info["phone"])
    if subscriber is None:
        return json_error(404, "not_found", "no such subscriber")
    return json_response(subscriber_view(subscriber))


async def delete_subscriber(request: web.Request, service: Service) -> web.Response:
    known = await service.store.get_subscriber(request.match_info["phone"])
    if not await service.store.delete_subscriber(request.match_info["phone"]):
        return json_error(404, "not_found", "no such subscriber")
    await service.notify_subscribers_changed()
    await audit_record(
        service.store,
        request_token(request),
        "subscriber.delete",
        id=None if known is None else known.id,
        deleted=1,
    )
    return web.Response(status=204)
