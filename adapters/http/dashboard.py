"""`/responders`: the responders' dashboard (HTML), on the responder API's core.

Contract:
- Without a session, `GET /responders` is a login form: a responder (or admin) pastes their
  API token; `POST /responders/login` checks it as the API does and sets the session cookie
  `responder_session` (HttpOnly, SameSite=Strict, Secure behind https; 12 hours, never
  longer than the token) holding the token's SHA-256 signed with `Signer`. Every request
  checks the token again (a revoked token's session ends at once). `POST /responders/logout`
  clears it.
- Forms that change something (login, logout, actions, answers) need a CSRF token and, when
  the browser sends one, a same-site Origin (else Referer): the login form's token is tied
  to a nonce cookie, the others to the session (`Signer.csrf`). Otherwise 403.
- With a session, `GET /responders?category=&state=` lists the newest replies (filters as
  the API's), each with its sender, categories, score, highlighted entities, cluster count
  ("x12"), state with who and when, acknowledge / escalate / dismiss buttons (a note is
  optional), and, for SMS and X replies, a form to answer the sender. Near-duplicates show
  once (the newest listed, with the count) unless `similar=each`; `?cluster=` lists one
  cluster. A page holds `LIST_LIMIT` items; `?before=` pages back (`desk_pages.read_page`:
  every reply reachable, paging always ends). On a grouped report, "also the other similar
  reports" applies the action to the cluster's older reports that are still new
  (`ResponderDesk.act_on_similar`). `?fragment=list` is the list alone (what the script
  swaps in). An action or answer is a plain form POST that
  redirects back (303) with a notice: everything works without JavaScript; `responders.js`
  only follows `/v1/replies/stream` (the session cookie authenticates it) and refreshes
  the list.
- Nothing inline (scripts, styles), as on the public pages.

How a reply reads on the page (rows, entity highlighting) is built in `reply_rows.py`.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from adapters.http.access import client_of, route_name
from adapters.http.desk_pages import read_page
from adapters.http.errors import read_form

# Re-exported: these lived here before reply_rows.py, and are imported from here.
from adapters.http.reply_rows import Segment as Segment
from adapters.http.reply_rows import alert_title, answered, row
from adapters.http.reply_rows import entity_groups as entity_groups
from adapters.http.reply_rows import highlight as highlight
from adapters.http.responders import (
    NO_FILTERS,
    SESSION_COOKIE,
    SESSION_PURPOSE,
    parse_before,
    parse_filters,
)
from adapters.http.signing import Signer
from adapters.http.templating import HTML_TYPE, html_templates
from broadcaster.auth import require_role
from broadcaster.errors import AuthError, AuthThrottled, DeliveryError, IntakeError
from broadcaster.ports import ApiToken, ReplyState, Role, StoredReply
from broadcaster.responders import ACTIONS
from broadcaster.service import Service

LOGIN_COOKIE = "responder_login"
LOGIN_PURPOSE = "login"
SESSION_SECONDS = 12 * 3600
LIST_LIMIT = 100
# How many replies a grouped page reads at a time for its LIST_LIMIT clusters, and at most how
# many such reads (a huge cluster is one item: the page reads past its copies).
GROUPED_READ_FACTOR = 5
GROUPED_READ_BATCHES = 6


NOTICES = {
    "acknowledged": "Reply {id} acknowledged.",
    "escalated": "Reply {id} escalated.",
    "dismissed": "Reply {id} dismissed.",
    "answered": "Your answer to reply {id} was sent.",
    "no_return_channel": "Reply {id} cannot be answered: it has no return channel.",
    "invalid_answer": "Your answer to reply {id} was not sent: it is empty or too long.",
    "provider_error": "Your answer to reply {id} was not sent: the provider refused or failed.",
    "not_found": "Reply {id} no longer exists.",
    "invalid": "Reply {id}: that did not work (check the note's length).",
}
# Appended when an action (these notices) also took the reply's similar reports with it.
ALSO_NOTICES = frozenset({"acknowledged", "escalated", "dismissed"})


class Dashboard:
    def __init__(self, service: Service, signer: Signer) -> None:
        self._service = service
        self._signer = signer
        self._secure = (service.settings.http.public_url or "").lower().startswith("https://")
        self._templates = html_templates("responders", "_replies", "responders_login")

    # --- sessions ---------------------------------------------------------------------------

    async def _session(self, request: web.Request) -> tuple[str, ApiToken] | None:
        """(the session cookie, its token) when the request carries a valid session."""
        cookie = request.cookies.get(SESSION_COOKIE)
        token_hash = self._signer.verify(SESSION_PURPOSE, cookie)
        if cookie is None or token_hash is None:
            return None
        try:
            token = await self._service.authenticator.authenticate_hash(token_hash)
            require_role(token, Role.RESPONDER)
        except AuthError:
            return None
        await self._service.authenticator.note_use(token, route_name(request))
        return cookie, token

    def _same_origin(self, request: web.Request) -> bool:
        claimed = request.headers.get("Origin") or request.headers.get("Referer")
        if not claimed:
            return True
        parts = urlsplit(claimed)
        ours = {request.host.lower()}
        public = self._service.settings.http.public_url
        if public:
            ours.add(urlsplit(public).netloc.lower())
        return bool(parts.scheme) and parts.netloc.lower() in ours

    def _page(self, name: str, status: int = 200, **context: Any) -> web.Response:
        body = self._templates[name].render(**context)
        headers = {"Content-Type": HTML_TYPE, "Cache-Control": "no-store"}
        return web.Response(text=body, status=status, headers=headers)

    def _login_page(
        self, request: web.Request, *, status: int = 200, error: str | None = None
    ) -> web.Response:
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        if not (16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum()):
            nonce = secrets.token_urlsafe(24)
        csrf = self._signer.sign(LOGIN_PURPOSE, nonce, 4 * 3600)
        response = self._page("responders_login", status, csrf_token=csrf, error=error)
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="Strict",
            secure=self._secure,
            path="/responders",
        )
        return response

    # --- routes -------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        fragment = request.query.get("fragment") == "list"
        if session is None:
            if fragment:
                return web.Response(status=401, text="log in again", content_type="text/plain")
            return self._login_page(request)
        cookie, token = session
        filter_error = None
        try:
            filters = parse_filters(request.query)
            before = parse_before(request.query)
        except IntakeError as exc:
            # Say so, rather than quietly showing everything as if no filter had been asked.
            filter_error = f"That filter was not understood ({exc.detail}); showing all replies."
            filters = dict(NO_FILTERS)
            before = None
        grouped = request.query.get("similar") != "each" and filters["cluster"] is None
        store = self._service.store

        def read_replies(below: int | None, limit: int) -> Awaitable[list[StoredReply]]:
            return store.list_replies(limit=limit, before_id=below, **filters)

        page = await read_page(
            read_replies,
            before,
            shown_limit=LIST_LIMIT,
            grouped=grouped,
            batch=LIST_LIMIT * GROUPED_READ_FACTOR,
            batches=GROUPED_READ_BATCHES,
        )
        replies = page.replies
        counted = await self._service.desk.with_counts(replies)
        ids = list(dict.fromkeys(r.alert_id for r, _ in counted if r.alert_id))
        if filters["alert"]:
            ids.append(filters["alert"])  # the page names the alert it is filtered by
        alerts = {a.id: a for a in await self._service.store.get_alerts(ids)} if ids else {}
        rows = [row(r, n, *answered(r, alerts)) for r, n in counted]
        query = {
            k: v
            for k, v in (
                ("category", filters["category"]),
                ("state", filters["state"].value if filters["state"] else None),
                ("cluster", filters["cluster"]),
                ("alert", filters["alert"]),
                ("since", filters["since"].isoformat() if filters["since"] else None),
                ("similar", None if grouped else "each"),
            )
            if v
        }
        newest = "/responders" + (f"?{urlencode(query)}" if query else "")
        here = {**query, "before": str(before)} if before else query
        back = "/responders" + (f"?{urlencode(here)}" if here else "")
        notice = None
        code = request.query.get("notice")
        # ASCII digits only: str.isdigit() accepts "²", which int() refuses (was a 500).
        if code in NOTICES and re.fullmatch(r"[0-9]{1,18}", request.query.get("reply") or ""):
            notice = NOTICES[code].format(id=int(request.query["reply"]))
            also = request.query.get("also") or ""
            if code in ALSO_NOTICES and re.fullmatch(r"[1-9][0-9]{0,5}", also):
                n = int(also)
                notice += (
                    " So was 1 similar report." if n == 1 else f" So were {n} similar reports."
                )
        context: dict[str, Any] = {
            "rows": rows,
            "csrf_token": self._signer.csrf(cookie),
            "back": back,
            "category": filters["category"] or "",
            "state": filters["state"].value if filters["state"] else "",
            "states": [s.value for s in ReplyState],
            "grouped": grouped,
            "cluster": filters["cluster"],
            "alert_filter": filters["alert"],
            "since": filters["since"].isoformat() if filters["since"] else "",
            "alert_filter_title": alert_title(alerts[filters["alert"]])
            if filters["alert"] in alerts
            else None,
            "filter_error": filter_error,
            "paged": before is not None,
            "newest_url": newest,
            "older_url": None
            if page.older is None
            else "/responders?" + urlencode({**query, "before": page.older}),
            "actor": token.name,
            "notice": notice,
            "list_url": "/responders?" + urlencode({**here, "fragment": "list"}),
        }
        return self._page("_replies" if fragment else "responders", **context)

    async def login(self, request: web.Request) -> web.Response:
        form = await read_form(request)
        nonce = request.cookies.get(LOGIN_COOKIE)
        signed = self._signer.verify(LOGIN_PURPOSE, _field(form, "csrf_token"))
        same = (
            nonce is not None
            and signed is not None
            and hmac.compare_digest(signed.encode(), nonce.encode())
        )
        if not self._same_origin(request) or not same:
            return self._login_page(
                request, status=403, error="This form has expired. Please log in again."
            )
        secret = _field(form, "token").strip()
        try:
            token = await self._service.authenticator.authenticate(
                f"Bearer {secret}",
                client=client_of(request, self._service),
                route=route_name(request),
            )
            require_role(token, Role.RESPONDER)
        except AuthThrottled as exc:
            response = self._login_page(
                request, status=429, error="Too many failed log-ins; try again later."
            )
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        except AuthError as exc:
            return self._login_page(
                request,
                status=exc.status,
                error="That token is not a valid responder token."
                if exc.status == 401
                else "That token may not use the responder desk (it needs the responder role).",
            )
        ttl = float(SESSION_SECONDS)
        if token.expires_at is not None:
            ttl = min(ttl, (token.expires_at - datetime.now(UTC)).total_seconds())
        cookie = self._signer.sign(SESSION_PURPOSE, token.token_hash, ttl)
        response = _see_other("/responders")
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            httponly=True,
            samesite="Strict",
            secure=self._secure,
            path="/",
            max_age=int(ttl),
        )
        response.del_cookie(LOGIN_COOKIE, path="/responders")
        return response

    async def logout(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        form = await read_form(request)
        response = _see_other("/responders")
        if session is not None and self._checked(request, session[0], form):
            response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def act(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        form = await read_form(request)
        if session is None:
            return self._login_page(request, status=401, error="Your session has ended.")
        if not self._checked(request, session[0], form):
            raise web.HTTPForbidden(text="This form has expired; reload the page.")
        reply_id = int(request.match_info["id"])
        back = _back(_field(form, "back"))
        also = 0
        action = request.match_info["action"]
        desk = self._service.desk
        try:
            if action == "respond":
                await desk.respond(reply_id, _field(form, "text").strip(), session[1].name)
                code = "answered"
            else:
                action = _field(form, "action")
                note = _field(form, "note") or None
                shown = await desk.act(reply_id, action, session[1].name, note)
                code = ACTIONS[action].value
                if _field(form, "similar"):
                    also = await desk.act_on_similar(shown, action, session[1].name, note)
        except IntakeError as exc:
            code = {404: "not_found", 409: "no_return_channel"}.get(exc.status, "invalid")
            if action == "respond" and exc.status == 422:
                code = "invalid_answer"
        except DeliveryError:
            code = "provider_error"
        joiner = "&" if "?" in back else "?"
        extra = f"&also={also}" if also else ""
        return _see_other(f"{back}{joiner}notice={code}&reply={reply_id}{extra}#reply-{reply_id}")

    def _checked(self, request: web.Request, session: str, form: Any) -> bool:
        return self._same_origin(request) and self._signer.csrf_valid(
            session, _field(form, "csrf_token")
        )


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _back(value: str) -> str:
    """Where an action returns to: the dashboard with its filters, nothing else."""
    plain = value.isascii() and value.isprintable() and " " not in value
    if plain and (value == "/responders" or value.startswith("/responders?")):
        return value.split("#", 1)[0]
    return "/responders"


def register_dashboard(app: web.Application, service: Service, signer: Signer) -> None:
    dashboard = Dashboard(service, signer)
    app.router.add_get("/responders", dashboard.index)
    app.router.add_post("/responders/login", dashboard.login)
    app.router.add_post("/responders/logout", dashboard.logout)
    app.router.add_post(r"/responders/replies/{id:\d{1,18}}/{action:state|respond}", dashboard.act)
