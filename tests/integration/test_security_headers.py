"""Security headers on every kind of response, CORS closed unless configured, and the
per-number limit on the inbound SMS webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from adapters.http.security import API_CSP, PAGE_CSP
from broadcaster.ports import Role
from tests.conftest import RunningService, start_service
from tests.support.broker import free_port
from tests.support.replies import all_replies

ALERT = {
    "event": "Gas leak",
    "headline": "Avoid Market St",
    "severity": "Severe",
    "urgency": "Immediate",
    "channels": [],
    "areas": [{"description": "centre", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 5}}],
}
ORIGIN = "https://partner.example.org"
SMS_TOKEN = "security-test-auth-token"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[RunningService]:
    sms = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": SMS_TOKEN,
        "from_numbers": ["+15005550006"],
        "api_base": "http://127.0.0.1:9",
        "inbound_per_minute": 1,
        "inbound_burst": 3,
    }
    port = free_port()
    http = {
        "port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "cors_origins": [ORIGIN],
        "sse_keepalive_seconds": 0.2,
    }
    async for running in start_service(
        tmp_path,
        http=http,
        channels={"sms": sms},
        approval={"two_person_severities": []},
    ):
        yield running


async def _alert(app: RunningService) -> str:
    async with app.http.post(
        f"{app.url}/v1/alerts", json=ALERT, headers=app.auth(Role.ISSUER)
    ) as response:
        assert response.status == 201, await response.text()
        alert_id: str = (await response.json())["id"]
    return alert_id


async def _headers(
    app: RunningService, method: str, path: str, **kwargs: object
) -> tuple[int, aiohttp.typedefs.LooseHeaders]:
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.request(method, app.url + path, allow_redirects=False, **kwargs) as r,  # type: ignore[arg-type]
    ):
        return r.status, r.headers


COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


async def test_every_kind_of_response_carries_the_headers(site: RunningService) -> None:
    """Pages, static files, JSON, errors (the router's 404 and 405 too), feeds and streams."""
    alert_id = await _alert(site)
    admin = site.auth(Role.ADMIN)
    cases = [
        ("GET", "/", {}, "html"),
        ("GET", f"/alerts/{alert_id}", {}, "html"),
        ("GET", "/alerts/nope", {}, "html"),
        ("GET", "/tips", {}, "html"),
        ("GET", "/responders", {}, "html"),
        ("GET", "/static/app.js", {}, "api"),
        ("GET", "/healthz", {}, "api"),
        ("GET", "/openapi.json", {}, "api"),
        ("GET", "/v1/alerts", {"headers": admin}, "api"),
        ("GET", "/v1/alerts", {}, "api"),  # 401
        ("GET", "/no/such/route", {}, "api"),  # the router's 404
        ("DELETE", "/healthz", {}, "api"),  # 405
        ("GET", "/feed.atom", {}, "api"),
        ("GET", f"/alerts/{alert_id}.cap", {}, "api"),
    ]
    for method, path, kwargs, kind in cases:
        status, headers = await _headers(site, method, path, **kwargs)
        for name, value in COMMON.items():
            assert headers.get(name) == value, (method, path, status, name)
        assert "Permissions-Policy" in headers, (method, path)
        want = PAGE_CSP if kind == "html" else API_CSP
        assert headers.get("Content-Security-Policy") == want, (method, path, status)
        assert "Access-Control-Allow-Origin" not in headers, (method, path)


async def test_event_streams_carry_the_headers(site: RunningService) -> None:
    """An event stream sends its headers from inside the handler: they are there too."""
    for path, headers in (
        ("/v1/stream", {}),
        ("/v1/replies/stream", site.auth(Role.RESPONDER)),
    ):
        async with site.http.get(site.url + path, headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Content-Security-Policy"] == API_CSP
            private = path != "/v1/stream"
            assert (response.headers["Cache-Control"] == "no-store") is private


async def test_private_api_answers_are_never_cached(site: RunningService) -> None:
    """Replies, audit, subscribers and alerts with their deliveries: Cache-Control no-store."""
    alert_id = await _alert(site)
    admin = site.auth(Role.ADMIN)
    for path in (
        "/v1/replies",
        "/v1/audit",
        "/v1/subscribers",
        "/v1/alerts",
        f"/v1/alerts/{alert_id}",
        f"/v1/alerts/{alert_id}/deliveries",
        "/v1/templates",
    ):
        status, headers = await _headers(site, "GET", path, headers=admin)
        assert status == 200, path
        assert headers.get("Cache-Control") == "no-store", path
    # Public pages keep their own revalidation policy.
    _, headers = await _headers(site, "GET", "/")
    assert headers.get("Cache-Control") == "no-cache"


async def test_cors_only_for_listed_origins_on_public_feeds(site: RunningService) -> None:
    alert_id = await _alert(site)
    for path in ("/feed.atom", "/cap/index.atom", f"/alerts/{alert_id}.cap"):
        status, headers = await _headers(site, "GET", path, headers={"Origin": ORIGIN})
        assert status == 200, path
        assert headers.get("Access-Control-Allow-Origin") == ORIGIN, path
        assert "Origin" in headers.getall("Vary", []), path
        _, headers = await _headers(site, "GET", path, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in headers, path
    async with site.http.get(f"{site.url}/v1/stream", headers={"Origin": ORIGIN}) as response:
        assert response.headers.get("Access-Control-Allow-Origin") == ORIGIN
    # Never on the private API, the pages, or a write, even for a listed origin.
    admin = {"Origin": ORIGIN, **site.auth(Role.ADMIN)}
    for method, path, headers in (
        ("GET", "/v1/alerts", admin),
        ("GET", "/v1/audit", admin),
        ("GET", "/", {"Origin": ORIGIN}),
        ("POST", "/v1/replies", {"Origin": ORIGIN}),
    ):
        _, got = await _headers(site, method, path, headers=headers)
        assert "Access-Control-Allow-Origin" not in got, (method, path)


async def test_cors_closed_by_default(tmp_path: Path) -> None:
    async for app in start_service(tmp_path):
        _, headers = await _headers(app, "GET", "/feed.atom", headers={"Origin": ORIGIN})
        assert "Access-Control-Allow-Origin" not in headers


def test_cors_origins_must_be_origins() -> None:
    from broadcaster.config import load_settings
    from broadcaster.errors import ConfigError

    for bad in ("*", "partner.example.org", "https://a.example/path", "ftp://a.example"):
        with pytest.raises(ConfigError, match="cors_origins"):
            load_settings(None, http={"cors_origins": [bad]})


async def _text(app: RunningService, phone: str, body: str, sid: str) -> tuple[int, str]:
    hook = f"{app.url}/hooks/twilio/sms"
    params = {"From": phone, "Body": body, "MessageSid": sid, "NumMedia": "0"}
    signature = RequestValidator(SMS_TOKEN).compute_signature(hook, params)
    async with app.http.post(
        hook, data=params, headers={"X-Twilio-Signature": signature}
    ) as response:
        return response.status, await response.text()


async def test_sms_flood_from_one_number_is_dropped_unstored(site: RunningService) -> None:
    """Past the burst, a number's messages get an empty TwiML and are not stored; another
    number is unaffected, and STOP always gets through."""
    flooder, other = "+447700900001", "+447700900002"
    for n in range(8):
        status, answer = await _text(site, flooder, f"spam {n}", f"SM{n:032x}")
        assert status == 200
        assert answer.endswith("<Response />"), answer
    assert len([r for r in await all_replies(site) if r.sender == flooder]) == 3
    status, _ = await _text(site, other, "smoke on Market St", "SM" + "f" * 32)
    assert status == 200
    assert len([r for r in await all_replies(site) if r.sender == other]) == 1
    status, answer = await _text(site, flooder, "STOP", "SM" + "e" * 32)
    assert status == 200
    assert "<Message>" in answer
