"""Every route in the router, with every kind of caller: the roles matrix of the README.

A route added without an entry in ACCESS fails `test_every_route_has_an_entry`, so nobody
can add an endpoint without deciding who may call it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from adapters.http.app import create_app
from broadcaster.auth import create_token, revoke_tokens
from broadcaster.ports import Role
from tests.conftest import RunningService, start_service

ISSUER, APPROVER, RESPONDER, ADMIN = Role.ISSUER, Role.APPROVER, Role.RESPONDER, Role.ADMIN
ANY_ROLE = frozenset(Role)


@dataclass(frozen=True)
class Public:
    """No credential is needed and none is checked: never 401 or 403."""


@dataclass(frozen=True)
class Signed:
    """Twilio's signature, not a token: every bearer credential gets 403 bad_signature."""


@dataclass(frozen=True)
class Session:
    """The responder desk: a signed session cookie (with CSRF), never a bearer token; every
    bearer credential gets the same answer as none (`status`), never the protected one."""

    status: int


@dataclass(frozen=True)
class Roles:
    """A bearer token of one of `roles` (admin passes every check)."""

    roles: frozenset[Role]


Rule = Public | Signed | Session | Roles


def roles(*allowed: Role) -> Roles:
    return Roles(frozenset(allowed))


# (method, canonical path) -> (a concrete path to call, rule). HEAD uses the GET entry.
ACCESS: dict[tuple[str, str], tuple[str, Rule]] = {
    ("GET", "/"): ("/", Public()),
    ("GET", "/alerts/{id}"): ("/alerts/nope", Public()),
    ("GET", "/alerts/{id}.cap"): ("/alerts/nope.cap", Public()),
    ("GET", "/feed.atom"): ("/feed.atom", Public()),
    ("GET", "/cap/index.atom"): ("/cap/index.atom", Public()),
    ("GET", "/v1/stream"): ("/v1/stream", Public()),
    ("GET", "/tips"): ("/tips", Public()),
    ("POST", "/v1/replies"): ("/v1/replies", Public()),
    ("GET", "/healthz"): ("/healthz", Public()),
    ("GET", "/readyz"): ("/readyz", Public()),
    ("GET", "/metrics"): ("/metrics", Public()),
    ("GET", "/openapi.json"): ("/openapi.json", Public()),
    ("GET", "/static"): ("/static/app.css", Public()),
    ("POST", "/hooks/twilio/status"): ("/hooks/twilio/status", Signed()),
    ("POST", "/hooks/twilio/sms"): ("/hooks/twilio/sms", Signed()),
    ("GET", "/responders"): ("/responders", Session(200)),  # the login form
    ("POST", "/responders/login"): ("/responders/login", Session(403)),  # no CSRF token
    ("POST", "/responders/logout"): ("/responders/logout", Session(303)),  # nothing to end
    ("POST", "/responders/replies/{id}/{action}"): ("/responders/replies/1/state", Session(401)),
    ("POST", "/v1/alerts"): ("/v1/alerts", roles(ISSUER)),
    ("GET", "/v1/alerts"): ("/v1/alerts", Roles(ANY_ROLE)),
    ("GET", "/v1/alerts/{id}"): ("/v1/alerts/nope", Roles(ANY_ROLE)),
    ("GET", "/v1/alerts/{id}/deliveries"): ("/v1/alerts/nope/deliveries", Roles(ANY_ROLE)),
    ("POST", "/v1/alerts/from-template/{name}"): (
        "/v1/alerts/from-template/gas_leak",
        roles(ISSUER),
    ),
    ("POST", "/v1/alerts/{id}/approve"): ("/v1/alerts/nope/approve", roles(APPROVER)),
    ("POST", "/v1/alerts/{id}/reject"): ("/v1/alerts/nope/reject", roles(APPROVER)),
    ("POST", "/v1/alerts/{id}/cancel"): ("/v1/alerts/nope/cancel", roles(ISSUER, APPROVER)),
    ("GET", "/v1/templates"): ("/v1/templates", roles(ISSUER, APPROVER)),
    ("GET", "/v1/replies"): ("/v1/replies", roles(RESPONDER)),
    ("GET", "/v1/replies/stream"): ("/v1/replies/stream", roles(RESPONDER)),
    ("POST", "/v1/replies/stream-ticket"): ("/v1/replies/stream-ticket", roles(RESPONDER)),
    ("GET", "/v1/replies/{id}"): ("/v1/replies/1", roles(RESPONDER)),
    ("POST", "/v1/replies/{id}/respond"): ("/v1/replies/1/respond", roles(RESPONDER)),
    ("POST", "/v1/replies/{id}/{action}"): ("/v1/replies/1/acknowledge", roles(RESPONDER)),
    ("POST", "/v1/subscribers"): ("/v1/subscribers", roles(ADMIN)),
    ("GET", "/v1/subscribers"): ("/v1/subscribers", roles(ADMIN)),
    ("GET", "/v1/subscribers/{phone}"): ("/v1/subscribers/%2B447700900123", roles(ADMIN)),
    ("DELETE", "/v1/subscribers/{phone}"): ("/v1/subscribers/%2B447700900123", roles(ADMIN)),
    ("GET", "/v1/audit"): ("/v1/audit", roles(ADMIN)),
}

# Callers: no token, a token of each role, an expired one, a revoked one, one we never made.
CALLERS = ["none", *(r.value for r in Role), "expired", "revoked", "unknown"]


@dataclass
class Table:
    app: RunningService
    headers: dict[str, dict[str, str]]


@pytest.fixture
async def table(tmp_path: Path) -> AsyncIterator[Table]:
    """The service with SMS on (so the Twilio hooks check signatures), the failure limit
    and tips limit out of the way, and a token (or none) for every caller."""
    sms = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "route-table-auth-token",
        "from_numbers": ["+15005550006"],
        "api_base": "http://127.0.0.1:9",
    }
    http = {
        "port": 0,
        "auth_failures_per_minute": 100_000,
        "tips_burst": 10_000,
        "sse_keepalive_seconds": 0.2,
    }
    async for app in start_service(
        tmp_path, http=http, channels={"sms": sms}, approval={"two_person_severities": []}
    ):
        store = app.service.store
        expired, _ = await create_token(
            store, role=Role.ADMIN, name="expired", valid_for=timedelta(seconds=-1)
        )
        revoked, _ = await create_token(store, role=Role.ADMIN, name="revoked")
        await revoke_tokens(store, name="revoked")
        secrets = {"expired": expired, "revoked": revoked, "unknown": "bc_" + "x" * 43}
        secrets.update({r.value: app.tokens[r] for r in Role})
        headers = {c: {"Authorization": f"Bearer {t}"} for c, t in secrets.items()}
        headers["none"] = {}
        yield Table(app, headers)


def expected(rule: Rule, caller: str) -> str:
    """'401', '403', 'allowed' (anything but 401/403/429), or a status for sessions."""
    if isinstance(rule, Public):
        return "allowed"
    if isinstance(rule, Signed):
        return "403"
    if isinstance(rule, Session):
        return str(rule.status)
    if caller in ("none", "expired", "revoked", "unknown"):
        return "401"
    role = Role(caller)
    return "allowed" if role is ADMIN or role in rule.roles else "403"


def routes_of(app: RunningService) -> list[tuple[str, str]]:
    """(method, canonical path) of every route of the app the service serves."""
    router = create_app(app.service).router
    return sorted({(r.method, r.resource.canonical) for r in router.routes() if r.resource})


async def test_every_route_has_an_entry(table: Table) -> None:
    """Every route in the router has an ACCESS entry (HEAD via GET), and every entry a route."""
    found = routes_of(table.app)
    missing = [(m, p) for m, p in found if ("GET" if m == "HEAD" else m, p) not in ACCESS]
    assert missing == [], f"routes without an entry in ACCESS: {missing}"
    stale = sorted(set(ACCESS) - set(found))
    assert stale == [], f"ACCESS entries for routes that do not exist: {stale}"


async def test_route_role_matrix(table: Table) -> None:
    """Every route, every caller: 401 bad/no token, 403 wrong role, neither for allowed roles."""
    app = table.app
    failures = []
    # A connection per request: a HEAD of an event stream leaves body bytes on the socket.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        for method, canonical in routes_of(app):
            path, rule = ACCESS[("GET" if method == "HEAD" else method, canonical)]
            for caller in CALLERS:
                want = expected(rule, caller)
                async with http.request(
                    method, app.url + path, headers=table.headers[caller], allow_redirects=False
                ) as resp:
                    got = resp.status
                ok = got not in (401, 403, 429) if want == "allowed" else str(got) == want
                if not ok:
                    failures.append(f"{method} {canonical} as {caller}: {got}, wanted {want}")
    assert failures == [], "\n".join(failures)


async def test_allowed_roles_reach_the_handler(table: Table) -> None:
    """An allowed role gets the handler's own answer, not just 'not refused'."""
    app = table.app
    async with app.http.get(f"{app.url}/v1/alerts/nope", headers=table.headers["responder"]) as r:
        assert (r.status, (await r.json())["error"]) == (404, "not_found")
    async with app.http.get(f"{app.url}/v1/audit", headers=table.headers["admin"]) as r:
        assert r.status == 200
        assert "rows" in await r.json()
