"""Web tips: the public reports what it sees. `GET /tips` (a form page) and `POST /v1/replies`.

Contract:
- `POST /v1/replies` is public and may be anonymous. It takes JSON
  `{text, alert_id?, lat?, lon?, media_url?, contact?}` (`Content-Type: application/json`,
  which a cross-site page cannot send without a CORS preflight we never grant) or the form
  of `GET /tips` (`application/x-www-form-urlencoded`); anything else is 415.
- A form post must carry the CSRF token its page gave out, tied to the page's cookie (double
  submit: cookie `tip_csrf` holds a random nonce, the form's `csrf_token` is
  "<issued>.<HMAC-SHA256(process secret, nonce.issued)>", valid for 4 hours), and its
  `Origin` (else `Referer`), when sent, must be this site (`http.public_url`, or the Host the
  request came to). Otherwise 403 and nothing stored. The secret lives in the process: a
  restart, or another process behind the same name, refuses older forms (the page is shown
  again with a fresh token).
- Every POST costs one token from its client IP's bucket (`http.tips_per_minute`, burst
  `http.tips_burst`; the address `access.client_of` gives: the peer, or behind one of
  `http.trusted_proxies` the client it forwarded for): when empty, 429 with
  `Retry-After`, before anything is parsed.
- Limits: text 1..2000 characters (trimmed), contact up to 200, media_url an http(s) URL up
  to 2000, lat/lon in range and together, alert_id up to 64 of [A-Za-z0-9_-]. An alert_id we
  do not know is stored unlinked. JSON errors are 422 JSON; a form with errors gets its page
  back (422) with the errors listed and the text kept.
- 202 with `{"id": <reply id>, "status": "received"}` (JSON) or a thank-you page giving the
  reference (form). The answer never shows anything of any other reply.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.http.access import client_of
from adapters.http.errors import json_error, json_response, read_form
from adapters.http.templating import html_templates
from broadcaster.errors import MalformedPayload, PayloadError
from broadcaster.intake import describe_validation_error
from broadcaster.ports import Reply, ReplySource
from broadcaster.ratelimit import TokenBucket
from broadcaster.service import Service

COOKIE = "tip_csrf"
TOKEN_TTL_SECONDS = 4 * 3600
MAX_TEXT = 2000
MAX_CONTACT = 200
MAX_CLIENTS = 10_000
_HTML = "text/html; charset=utf-8"
_FORM = "application/x-www-form-urlencoded"


class TipRequest(BaseModel):
    """A tip as JSON (the form's fields map onto the same model)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    alert_id: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    media_url: Annotated[str, Field(max_length=2000)] | None = None
    contact: Annotated[str, Field(max_length=MAX_CONTACT)] | None = None

    @field_validator("media_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value or None

    @field_validator("contact", "alert_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class ClientLimiter:
    """One token bucket per client key, the least recently seen dropped past `max_clients`."""

    def __init__(self, per_minute: float, burst: int, max_clients: int = MAX_CLIENTS) -> None:
        self._rate = per_minute / 60.0
        self._burst = burst
        self._max = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, client: str) -> float:
        """0.0 when `client` may go now (and a token is taken), else seconds to wait."""
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self._rate, self._burst, safety=0.0)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        wait = bucket.delay()
        if wait <= 0:
            bucket.take()
        return wait


class CsrfTokens:
    """Double-submit tokens: the cookie's nonce, signed with a secret of this process."""

    def __init__(self, secret: bytes | None = None, clock: Any = time.time) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock

    def _mac(self, nonce: str, issued: int) -> str:
        message = f"{nonce}.{issued}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self, nonce: str) -> str:
        issued = int(self._clock())
        return f"{issued}.{self._mac(nonce, issued)}"

    def valid(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        issued_text, _, mac = token.partition(".")
        if not issued_text.isdigit():
            return False
        issued = int(issued_text)
        if not 0 <= self._clock() - issued <= TOKEN_TTL_SECONDS:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(nonce, issued).encode())


class Tips:
    def __init__(self, service: Service) -> None:
        self._service = service
        http = service.settings.http
        self.limiter = ClientLimiter(http.tips_per_minute, http.tips_burst)
        self.csrf = CsrfTokens()
        self._secure = (http.public_url or "").lower().startswith("https://")
        self._page = html_templates("tips")["tips"]

    # --- the form page -------------------------------------------------------------------

    async def form(self, request: web.Request) -> web.Response:
        alert_id = request.query.get("alert", "")
        if not (len(alert_id) <= 64 and alert_id.replace("-", "").replace("_", "").isalnum()):
            alert_id = ""
        return self._form_page(request, status=200, alert_id=alert_id)

    def _form_page(
        self,
        request: web.Request,
        *,
        status: int,
        errors: list[str] | None = None,
        text: str = "",
        contact: str = "",
        alert_id: str = "",
    ) -> web.Response:
        nonce = request.cookies.get(COOKIE) or ""
        if not (16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum()):
            nonce = secrets.token_urlsafe(24)
        body = self._page.render(
            sent=False,
            errors=errors or [],
            csrf_token=self.csrf.issue(nonce),
            alert_id=alert_id,
            text=text,
            contact=contact,
            max_text=MAX_TEXT,
            max_contact=MAX_CONTACT,
        )
        response = web.Response(
            text=body, status=status, headers={"Content-Type": _HTML, "Cache-Control": "no-store"}
        )
        response.set_cookie(
            COOKIE, nonce, httponly=True, samesite="Strict", secure=self._secure, path="/"
        )
        return response

    # --- POST /v1/replies ------------------------------------------------------------------

    async def post(self, request: web.Request) -> web.Response:
        wait = self.limiter.take(client_of(request, self._service))
        if wait > 0:
            return json_error(
                429,
                "rate_limited",
                "too many reports from this address; try again later",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        if request.content_type == "application/json":
            return await self._post_json(request)
        if request.content_type == _FORM:
            return await self._post_form(request)
        return json_error(
            415, "unsupported_media_type", "send application/json or the form of /tips"
        )

    async def _post_json(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            tip = TipRequest.model_validate_json(raw)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise MalformedPayload(describe_validation_error(exc)) from exc
            raise PayloadError(describe_validation_error(exc), code="invalid_reply") from exc
        if (tip.lat is None) != (tip.lon is None):
            raise PayloadError("lat and lon must be given together", code="invalid_reply")
        reply_id = await self._store(tip)
        return json_response({"id": reply_id, "status": "received"}, status=202)

    async def _post_form(self, request: web.Request) -> web.Response:
        form = await read_form(request)
        fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        if not self._same_origin(request) or not self.csrf.valid(
            request.cookies.get(COOKIE), fields.get("csrf_token")
        ):
            return self._form_page(
                request,
                status=403,
                errors=[
                    "This form has expired or did not come from this site. Please send it again."
                ],
                text=fields.get("text", "")[:MAX_TEXT],
                contact=fields.get("contact", "")[:MAX_CONTACT],
                alert_id=fields.get("alert_id", "")[:64],
            )
        values = {k: fields[k] for k in ("text", "alert_id", "contact") if k in fields}
        try:
            tip = TipRequest.model_validate(values)
        except ValidationError as exc:
            return self._form_page(
                request,
                status=422,
                errors=[_field_problem(e) for e in exc.errors()],
                text=fields.get("text", "")[:MAX_TEXT],
                contact=fields.get("contact", "")[:MAX_CONTACT],
            )
        reply_id = await self._store(tip)
        body = self._page.render(sent=True, reference=reply_id)
        return web.Response(
            text=body, status=202, headers={"Content-Type": _HTML, "Cache-Control": "no-store"}
        )

    def _same_origin(self, request: web.Request) -> bool:
        """True unless Origin (else Referer) names another site than ours."""
        claimed = request.headers.get("Origin") or request.headers.get("Referer")
        if not claimed:
            return True
        parts = urlsplit(claimed)
        if not parts.scheme or not parts.netloc:
            return False
        ours = {request.host.lower()}
        public = self._service.settings.http.public_url
        if public:
            ours.add(urlsplit(public).netloc.lower())
        return parts.netloc.lower() in ours

    async def _store(self, tip: TipRequest) -> int:
        reply = Reply(
            source=ReplySource.WEB,
            external_id=uuid.uuid4().hex,
            text=tip.text,
            received_at=datetime.now(UTC),
            sender=tip.contact,
            alert_id=tip.alert_id,
            lat=tip.lat,
            lon=tip.lon,
            media_url=tip.media_url,
        )
        result = await self._service.replies.ingest(reply)
        return result.reply.id


def _field_problem(error: Any) -> str:
    field = ".".join(str(p) for p in error.get("loc", ())) or "form"
    names = {"text": "What you saw", "contact": "Contact", "alert_id": "Alert"}
    if error.get("type") == "string_too_short" or error.get("type") == "missing":
        return f"{names.get(field, field)}: please fill this in."
    if error.get("type") == "string_too_long":
        limit = (error.get("ctx") or {}).get("max_length")
        return f"{names.get(field, field)}: at most {limit} characters, please."
    return f"{names.get(field, field)}: {error.get('msg', 'not valid')}."


TIPS = web.AppKey("tips", Tips)


def register_tips(app: web.Application, service: Service) -> None:
    tips = Tips(service)
    app[TIPS] = tips
    app.router.add_get("/tips", tips.form)
    app.router.add_post("/v1/replies", tips.post)
