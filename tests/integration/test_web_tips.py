"""Web tips: POST /v1/replies as JSON and from the /tips form (CSRF double submit, Origin
check), with per-IP rate limiting; the public never sees other replies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.ports import ReplySource
from tests.conftest import RunningService
from tests.support.public_web import post_alert
from tests.support.replies import all_replies, start_listening

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[RunningService]:
    async for running in start_listening(
        tmp_path, http={"port": 0, "tips_per_minute": 60, "tips_burst": 50}
    ):
        yield running


async def form_session(app: RunningService, query: str = "") -> tuple[str, str]:
    """GET /tips: (the CSRF cookie's value, the form's token)."""
    async with app.http.get(f"{app.url}/tips{query}") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["Cache-Control"] == "no-store"
        page = await response.text()
        cookie = response.cookies["tip_csrf"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    match = TOKEN.search(page)
    assert match is not None
    return cookie.value, match.group(1)


async def test_json_tip_is_stored_anonymously_and_linked(app: RunningService) -> None:
    """A JSON tip is 202 with its id only; it is stored with its position and link, and
    triaged; an unknown alert id is stored unlinked."""
    alert = await post_alert(app, "Avoid Market St")
    tip = {
        "text": "  A man with a knife ran towards the station  ",
        "alert_id": alert["id"],
        "lat": 53.48,
        "lon": -2.24,
        "media_url": "https://example.org/photo.jpg",
    }
    async with app.http.post(f"{app.url}/v1/replies", json=tip) as response:
        assert response.status == 202
        body = await response.json()
    assert set(body) == {"id", "status"}
    stored = await app.service.store.get_reply(body["id"])
    assert stored is not None
    assert stored.source is ReplySource.WEB
    assert stored.text == "A man with a knife ran towards the station"
    assert stored.sender is None
    assert stored.alert_id == alert["id"]
    assert (stored.lat, stored.lon) == (53.48, -2.24)
    assert stored.media_url == "https://example.org/photo.jpg"
    assert stored.categories == ("suspect",)

    unknown = {"text": "gas smell", "alert_id": "no-such-alert", "contact": "+447911000001"}
    async with app.http.post(f"{app.url}/v1/replies", json=unknown) as response:
        assert response.status == 202
        other = await app.service.store.get_reply((await response.json())["id"])
    assert other is not None
    assert other.alert_id is None
    assert other.sender == "+447911000001"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "   "}, 422, "invalid_reply"),
        ({"text": "x" * 2001}, 422, "invalid_reply"),
        ({"text": "fire", "lat": 53.0}, 422, "invalid_reply"),
        ({"text": "fire", "media_url": "javascript:alert(1)"}, 422, "invalid_reply"),
        ({"text": "fire", "secret": 1}, 422, "invalid_reply"),
    ],
)
async def test_bad_json_tips_are_refused(
    app: RunningService, body: dict[str, object], status: int, code: str
) -> None:
    """Empty or too long text, half a position, a non-http media URL and unknown fields are
    422 and store nothing."""
    async with app.http.post(f"{app.url}/v1/replies", json=body) as response:
        assert response.status == status
        assert (await response.json())["error"] == code
    assert await all_replies(app) == []


async def test_other_media_types_are_refused(app: RunningService) -> None:
    """text/plain (what a cross-site page can send without a preflight) is 415; broken JSON
    is 400."""
    async with app.http.post(
        f"{app.url}/v1/replies", data='{"text": "fire"}', headers={"Content-Type": "text/plain"}
    ) as response:
        assert response.status == 415
    async with app.http.post(
        f"{app.url}/v1/replies", data="{nope", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
    assert await all_replies(app) == []


async def test_form_tip_that_is_not_utf8_is_400(app: RunningService) -> None:
    """A form body with bytes that are not UTF-8 is a 400 JSON error, not a 500, and stores
    nothing."""
    cookie, token = await form_session(app)
    for raw in (b"text=\xff\xfe", b"text=Smoke \xc3"):
        async with app.http.post(
            f"{app.url}/v1/replies",
            data=b"csrf_token=" + token.encode() + b"&" + raw,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"tip_csrf={cookie}",
            },
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "malformed_form"
    assert await all_replies(app) == []


async def test_form_tip_needs_the_pages_csrf_token(app: RunningService) -> None:
    """The /tips form posts with its token and cookie (202, a thank-you page); without the
    token, with another cookie, or from another origin: 403 and nothing stored."""
    alert = await post_alert(app, "Avoid Market St")
    cookie, token = await form_session(app, f"?alert={alert['id']}")
    url = f"{app.url}/v1/replies"
    form = {"csrf_token": token, "text": "Smoke from the roof", "alert_id": alert["id"]}

    async with app.http.post(
        url, data={"text": "Smoke from the roof"}, headers={"Cookie": f"tip_csrf={cookie}"}
    ) as response:
        assert response.status == 403
        assert "did not come from this site" in await response.text()
    async with app.http.post(
        url, data=form, headers={"Cookie": "tip_csrf=someone-elses-cookie-value"}
    ) as response:
        assert response.status == 403
    async with app.http.post(url, data=form) as response:  # no cookie
        assert response.status == 403
    async with app.http.post(
        url, data=form, headers={"Cookie": f"tip_csrf={cookie}", "Origin": "https://evil.example"}
    ) as response:
        assert response.status == 403
    assert await all_replies(app) == []

    async with app.http.post(
        url, data=form, headers={"Cookie": f"tip_csrf={cookie}", "Origin": app.url}
    ) as response:
        assert response.status == 202
        page = await response.text()
    replies = await all_replies(app)
    assert len(replies) == 1
    assert replies[0].text == "Smoke from the roof"
    assert replies[0].alert_id == alert["id"]
    assert f"<strong>{replies[0].id}</strong>" in page

    async with app.http.post(
        url,
        data={"csrf_token": token, "text": ""},
        headers={"Cookie": f"tip_csrf={cookie}"},
    ) as response:
        assert response.status == 422
        assert "please fill this in" in await response.text()


async def test_tips_over_the_rate_limit_get_429(tmp_path: Path) -> None:
    """Past the burst, a client gets 429 with Retry-After, and nothing more is stored."""
    async for app in start_listening(
        tmp_path, http={"port": 0, "tips_per_minute": 1, "tips_burst": 3}
    ):
        statuses = []
        for n in range(5):
            async with app.http.post(f"{app.url}/v1/replies", json={"text": f"r{n}"}) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) >= 1
                    assert (await r.json())["error"] == "rate_limited"
        assert statuses == [202, 202, 202, 429, 429]
        assert len(await all_replies(app)) == 3


async def test_tips_behind_a_trusted_proxy_are_limited_per_forwarded_client(
    tmp_path: Path,
) -> None:
    """From a trusted proxy each X-Forwarded-For client has its own bucket; from any other
    peer the header is ignored, so changing it does not buy a fresh bucket."""

    async def statuses(app: RunningService, clients: list[str]) -> list[int]:
        seen = []
        for n, client in enumerate(clients):
            headers = {"X-Forwarded-For": client}
            async with app.http.post(
                f"{app.url}/v1/replies", json={"text": f"r{n}"}, headers=headers
            ) as r:
                seen.append(r.status)
        return seen

    a, b = "198.51.100.1", "198.51.100.2"
    http = {"port": 0, "tips_per_minute": 1, "tips_burst": 2, "trusted_proxies": ["127.0.0.0/8"]}
    for folder in ("trusted", "untrusted"):
        (tmp_path / folder).mkdir()
    async for app in start_listening(tmp_path / "trusted", http=http):
        assert await statuses(app, [a, a, a, b, f"{b}, 10.0.0.1"]) == [202, 202, 429, 202, 202]
    http["trusted_proxies"] = ["10.0.0.0/8"]  # the loopback peer is not a trusted proxy
    async for app in start_listening(tmp_path / "untrusted", http=http):
        assert await statuses(app, [a, b, "198.51.100.3"]) == [202, 202, 429]
