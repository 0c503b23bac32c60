"""The responder API: the replies feed, what responders do with replies, and their stream.

Contract:
- Every route needs the responder role (admin may do anything): `Authorization: Bearer`;
  none or a bad token is 401, another role (issuer, approver) 403. The stream also takes a
  stream ticket (`?ticket=`, from `POST /v1/replies/stream-ticket`, valid 60 s, for
  EventSource, which cannot set headers) or the dashboard's session cookie. The public never
  sees replies: no route here answers without a responder's token.
- `GET /v1/replies?category=&since=&state=&cluster=&alert=&limit=&before=&after=`: newest
  first (`alert=` the replies linked to that alert, `cluster=` one near-duplicate cluster);
  `before=`
  pages back (`next`), `after=` gives only replies with a larger id (the `limit` oldest of
  them, newest first): poll with the largest id you hold. Each reply as `reply_view`, the
  sender included (responders only), with `cluster_count`.
- `POST /v1/replies/{id}/acknowledge|escalate|dismiss` `{"note"?}` (JSON body optional) and
  `POST /v1/replies/{id}/respond` `{"text"}`: see `broadcaster.responders`. Provider
  failures of an answer are 502 (`provider_unavailable` with Retry-After when transient,
  `provider_refused` when permanent).
- `GET /v1/replies/stream?category=`: Server-Sent Events `event: reply`, `id:` the reply
  event's seq (`ReplyFeed`), data the reply view plus `"event": "created"|"updated"`;
  resume with `Last-Event-ID` (or `?last_event_id=`) exactly as `/v1/stream` does; a
  `: keep-alive` comment every `http.sse_keepalive_seconds`, when the token is checked
  again (a revoked token's stream ends). Shutdown ends every stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic_core import to_json

from adapters.http.access import client_of, route_name
from adapters.http.errors import json_error, json_object_body, json_response
from adapters.http.signing import Signer
from adapters.http.views import ALERT_ID
from broadcaster.auth import require_role
from broadcaster.errors import (
    AuthError,
    IntakeError,
    PayloadError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from broadcaster.ports import ApiToken, ReplyState, Role, StoredReply
from broadcaster.reply_feed import FeedItem
from broadcaster.service import Service

SESSION_COOKIE = "responder_session"
SESSION_PURPOSE = "session"
TICKET_PURPOSE = "stream-ticket"
TICKET_TTL_SECONDS = 60
MAX_ANSWER = 1600
# A cluster id is a reply id; 18 digits at most (the OpenAPI spec says the same).
MAX_CLUSTER = 10**18 - 1
_OFFSET_SPACE = re.compile(r" (\d{2}(?::?\d{2})?)$")
_CATEGORY = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
# An alert id as the store makes them (`new_id`; the public /alerts/{id} route and tips take
# the same alphabet). No control character reaches the store (PostgreSQL cannot hold a NUL).
_ALERT_ID = re.compile(ALERT_ID)
KEEPALIVE = b": keep-alive\n\n"
RETRY = b"retry: 2000\n\n"
FRAME_CACHE_SIZE = 4096
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def reply_view(reply: StoredReply, cluster_count: int) -> dict[str, Any]:
    """A reply as responders see it (sender included)."""
    return {
        "id": reply.id,
        "source": reply.source.value,
        "sender": reply.sender,
        "text": reply.text,
        "received_at": reply.received_at.isoformat(),
        "alert_id": reply.alert_id,
        "categories": list(reply.categories),
        "score": reply.score,
        "entities": reply.entities,
        "cluster_id": reply.cluster_id,
        "cluster_count": cluster_count,
        "state": reply.state.value,
        "state_by": reply.state_by,
        "state_at": None if reply.state_at is None else reply.state_at.isoformat(),
        "location": None if reply.lat is None else {"lat": reply.lat, "lon": reply.lon},
        "media_url": reply.media_url,
    }


# Every filter `parse_filters` knows, unset.
NO_FILTERS: dict[str, Any] = {
    "category": None,
    "since": None,
    "state": None,
    "cluster": None,
    "alert": None,
}


def parse_filters(query: Any) -> dict[str, Any]:
    """category, since, state, cluster, alert from a query string; IntakeError (400) when
    malformed."""
    filters = dict(NO_FILTERS)
    filters["cluster"] = _int(query, "cluster", None, 0, MAX_CLUSTER)
    alert = query.get("alert") or ""
    if alert:
        if not _ALERT_ID.fullmatch(alert):
            raise IntakeError("alert must be an alert id", code="bad_query")
        filters["alert"] = alert
    category = (query.get("category") or "").strip().lower()
    if category:
        if not _CATEGORY.fullmatch(category):
            raise IntakeError("category must be a category name", code="bad_query")
        filters["category"] = category
    state = (query.get("state") or "").strip().lower()
    if state:
        try:
            filters["state"] = ReplyState(state)
        except ValueError:
            names = ", ".join(s.value for s in ReplyState)
            raise IntakeError(f"state must be one of {names}", code="bad_query") from None
    since = (query.get("since") or "").strip()
    if since:
        moment = _iso_time(since)
        if moment is None:
            raise IntakeError(
                "since must be an ISO 8601 time, e.g. 2026-12-03T10:00:00Z", code="bad_query"
            )
        if moment.tzinfo is None:  # no offset: UTC, the time every page and answer is in
            moment = moment.replace(tzinfo=UTC)
        try:
            moment.astimezone(UTC)  # the store compares in UTC
        except OverflowError:
            raise IntakeError("since is out of range in UTC", code="bad_query") from None
        filters["since"] = moment
    return filters


def parse_before(query: Any) -> int | None:
    """The `before=` paging cursor (a reply id) from a query string; IntakeError (400) when
    malformed."""
    return _int(query, "before", None, 1, 2**62)


def _iso_time(text: str) -> datetime | None:
    """An ISO 8601 time, or None. An unencoded "+01:00" in a URL query arrives as " 01:00":
    when the text does not parse as it is, the "+" is put back and it is tried again."""
    for candidate in (text, _OFFSET_SPACE.sub(r"+\1", text)):
        try:
            return datetime.fromisoformat(candidate.replace("Z", "+00:00"))
        except ValueError:
            continue
    return None


def _int(query: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise IntakeError(f"query parameter {name} must be an integer", code="bad_query") from None
    if not low <= value <= high:
        raise IntakeError(f"query parameter {name} must be {low} to {high}", code="bad_query")
    return value


class ResponderApi:
    def __init__(self, service: Service, signer: Signer) -> None:
        self._service = service
        self.signer = signer
        self._frames: OrderedDict[int, bytes] = OrderedDict()
        self._closing = asyncio.Event()

    # --- authentication ------------------------------------------------------------------

    async def authenticate(self, request: web.Request, *, stream: bool = False) -> ApiToken:
        authenticator = self._service.authenticator
        header = request.headers.get("Authorization")
        if header is not None or not stream:
            token = await authenticator.authenticate(
                header, client=client_of(request, self._service), route=route_name(request)
            )
        else:
            token_hash = self.signer.verify(TICKET_PURPOSE, request.query.get("ticket"))
            if token_hash is None:
                token_hash = self.signer.verify(
                    SESSION_PURPOSE, request.cookies.get(SESSION_COOKIE)
                )
            if token_hash is None:
                raise AuthError("send Authorization: Bearer <token>, a ?ticket= or a session")
            token = await authenticator.authenticate_hash(token_hash)
            await authenticator.note_use(token, route_name(request))
        require_role(token, Role.RESPONDER)
        return token

    # --- routes ------------------------------------------------------------------------------

    async def list_replies(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        query = request.query
        filters = parse_filters(query)
        limit = _int(query, "limit", 50, 1, 500) or 50
        before = parse_before(query)
        after = _int(query, "after", None, 0, 2**62)
        store = self._service.store
        rows = await store.list_replies(limit=limit, before_id=before, after_id=after, **filters)
        if after is not None:
            rows.reverse()
        desk = self._service.desk
        body: dict[str, Any] = {
            "replies": [reply_view(r, n) for r, n in await desk.with_counts(rows)]
        }
        if after is None and len(rows) == limit:
            # The first of a repeated parameter, as parse_filters reads it.
            params = {k: query[k] for k in query if k not in ("before", "after")}
            params["before"] = str(rows[-1].id)
            body["next"] = str(request.rel_url.with_query(params))
        return json_response(body)

    async def get_reply(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        reply, count = await self._service.desk.get_reply(int(request.match_info["id"]))
        return json_response(reply_view(reply, count))

    async def act(self, request: web.Request) -> web.Response:
        token = await self.authenticate(request)
        body = await json_object_body(request)
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise PayloadError("note must be text", code="invalid_note")
        desk = self._service.desk
        reply_id = int(request.match_info["id"])
        await desk.act(reply_id, request.match_info["action"], token.name, note)
        reply, count = await desk.get_reply(reply_id)
        return json_response(reply_view(reply, count))

    async def respond(self, request: web.Request) -> web.Response:
        token = await self.authenticate(request)
        body = await json_object_body(request, required=True)
        text = body.get("text")
        if not isinstance(text, str) or not 1 <= len(text.strip()) <= MAX_ANSWER:
            raise PayloadError(f"text: 1 to {MAX_ANSWER} characters", code="invalid_answer")
        try:
            reply, reference = await self._service.desk.respond(
                int(request.match_info["id"]), text.strip(), token.name
            )
        except TransientDeliveryError as exc:
            wait = max(1, math.ceil(exc.retry_after or 1))
            return json_error(502, "provider_unavailable", str(exc), {"Retry-After": str(wait)})
        except PermanentDeliveryError as exc:
            return json_error(502, "provider_refused", str(exc))
        return json_response(
            {"id": reply.id, "source": reply.source.value, "provider_ref": reference}, status=201
        )

    async def stream_ticket(self, request: web.Request) -> web.Response:
        token = await self.authenticate(request)
        ticket = self.signer.sign(TICKET_PURPOSE, token.token_hash, TICKET_TTL_SECONDS)
        return json_response(
            {
                "ticket": ticket,
                "expires_in": TICKET_TTL_SECONDS,
                "url": str(request.url.with_path("/v1/replies/stream").with_query(ticket=ticket)),
            }
        )

    # --- the stream -------------------------------------------------------------------------

    def frame(self, item: FeedItem) -> bytes:
        seq = item.event.seq
        cached = self._frames.get(seq)
        if cached is not None:
            return cached
        view = reply_view(item.reply, item.cluster_count)
        view["event"] = item.event.kind.value
        frame = b"id: %d\nevent: reply\ndata: %s\n\n" % (seq, to_json(view))
        self._frames[seq] = frame
        if len(self._frames) > FRAME_CACHE_SIZE:
            self._frames.popitem(last=False)
        return frame

    async def stream(self, request: web.Request) -> web.StreamResponse:
        token = await self.authenticate(request, stream=True)
        resume = _resume_id(request)
        category = parse_filters(request.query)["category"]
        if self._closing.is_set():
            raise web.HTTPServiceUnavailable(text="shutting down")
        feed = self._service.reply_feed
        keepalive = self._service.settings.http.sse_keepalive_seconds
        response = web.StreamResponse(headers=STREAM_HEADERS)
        await response.prepare(request)
        if request.method == "HEAD":  # headers only: a body would break the framing
            return response
        with contextlib.suppress(ConnectionResetError):
            await response.write(RETRY)
            version = feed.version
            after = version if resume is None or resume > version else resume
            while not self._closing.is_set():
                if after >= feed.version and not await self._wait(
                    feed.wait_beyond(after), keepalive
                ):
                    try:
                        await self._service.authenticator.authenticate_hash(token.token_hash)
                    except AuthError:
                        break
                    await response.write(KEEPALIVE)
                    continue
                items, reached = await feed.events_since(after)
                chunk = [
                    self.frame(i)
                    for i in items
                    if category is None or category in i.reply.categories
                ]
                if chunk:
                    await response.write(b"".join(chunk))
                after = max(after, reached)
        return response

    async def _wait(self, waiting: Any, seconds: float) -> bool:
        """True when `waiting` finished within `seconds` (False on timeout or shutdown)."""
        task = asyncio.ensure_future(waiting)
        closing = asyncio.ensure_future(self._closing.wait())
        done, _ = await asyncio.wait(
            {task, closing}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for pending in (task, closing):
            pending.cancel()
        return task in done

    async def close(self) -> None:
        """End every stream (server shutdown)."""
        self._closing.set()


def _resume_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise IntakeError("Last-Event-ID must be an event id", code="bad_last_event_id") from None
    if value < 0:
        raise IntakeError("Last-Event-ID must be an event id", code="bad_last_event_id")
    return value


RESPONDER_API = web.AppKey("responder_api", ResponderApi)


def register_responder_api(app: web.Application, service: Service, signer: Signer) -> None:
    api = ResponderApi(service, signer)
    app[RESPONDER_API] = api
    app.router.add_get("/v1/replies", api.list_replies)
    app.router.add_get("/v1/replies/stream", api.stream)
    app.router.add_post("/v1/replies/stream-ticket", api.stream_ticket)
    app.router.add_get(r"/v1/replies/{id:\d{1,18}}", api.get_reply)
    app.router.add_post(r"/v1/replies/{id:\d{1,18}}/respond", api.respond)
    app.router.add_post(r"/v1/replies/{id:\d{1,18}}/{action:acknowledge|escalate|dismiss}", api.act)

    async def close_streams(_app: web.Application) -> None:
        await api.close()

    app.on_shutdown.append(close_streams)
