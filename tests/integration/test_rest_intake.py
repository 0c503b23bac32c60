"""REST intake over a real loopback socket: acceptance, idempotency, auth and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from broadcaster.ports import Role
from tests.conftest import RunningService
from tests.support.outbox import make_new, plan

CAP_DIR = Path(__file__).parent.parent / "data" / "cap"

GOOD: dict[str, Any] = {
    "event": "Gas leak",
    "headline": "Avoid Market St: gas leak",
    "description": "A gas main has ruptured on Market St.",
    "instruction": "Keep away from Market St until further notice.",
    "severity": "Severe",
    "urgency": "Immediate",
    "certainty": "Observed",
    "category": ["Safety"],
    "areas": [
        {"description": "Market St", "circle": {"lat": 51.5, "lon": -0.12, "radius_km": 0.5}}
    ],
    "channels": ["web"],
}


def with_(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def without(key: str) -> bytes:
    return json.dumps({k: v for k, v in GOOD.items() if k != key}).encode()


async def post(
    app: RunningService, body: bytes, content_type: str = "application/json", **headers: str
) -> tuple[int, dict[str, Any]]:
    async with app.http.post(
        f"{app.url}/v1/alerts",
        data=body,
        headers={**app.auth(), "Content-Type": content_type, **headers},
    ) as response:
        return response.status, await response.json()


async def test_valid_alert_is_stored_and_returned(app: RunningService) -> None:
    """A valid JSON alert gets 201 with its id, and GET returns the same alert."""
    status, body = await post(app, json.dumps(GOOD).encode())
    assert status == 201
    assert body["state"] == "accepted"
    assert body["severity"] == "Severe"
    assert body["channels"] == ["web"]
    async with app.http.get(f"{app.url}/v1/alerts/{body['id']}", headers=app.auth()) as resp:
        assert resp.status == 200
        fetched = await resp.json()
    assert fetched["alert"] == body["alert"]
    assert fetched["alert"]["infos"][0]["headline"] == GOOD["headline"]


async def test_the_answer_gives_back_what_was_sent_in_its_own_names(app: RunningService) -> None:
    """Every field of the JSON form that was posted comes back under the same name: text,
    classification, areas (polygon, circle, geocodes, one or several values) and
    translations; the CAP form stays under `alert`."""
    sent = {
        **GOOD,
        "language": "en-GB",
        "areas": [
            {
                "description": "Centre",
                "polygon": [[53.47, -2.25], [53.49, -2.25], [53.49, -2.23], [53.47, -2.25]],
                "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 1.5},
                "geocodes": {"postcode": ["M1", "M2"], "ward": "City Centre"},
            },
            {"description": "Station", "circle": {"lat": 53.47, "lon": -2.23, "radius_km": 0.2}},
        ],
        "translations": [
            {"language": "cy", "headline": "Osgowch Stryd y Farchnad", "description": "Nwy"}
        ],
    }
    status, body = await post(app, json.dumps(sent).encode())
    assert status == 201, body
    async with app.http.get(f"{app.url}/v1/alerts/{body['id']}", headers=app.auth()) as resp:
        fetched = await resp.json()
    for view in (body, fetched):
        for name in ("event", "headline", "description", "instruction", "severity"):
            assert view[name] == sent[name], name
        for name in ("urgency", "certainty", "category", "language", "channels"):
            assert view[name] == sent[name], name
        assert view["areas"] == [{**sent["areas"][0]}, {**sent["areas"][1], "geocodes": {}}]
        assert view["translations"] == [
            {
                "language": "cy",
                "event": "Gas leak",  # a translation shares the first block's event
                "headline": "Osgowch Stryd y Farchnad",
                "description": "Nwy",
                "instruction": None,
            }
        ]
        assert view["alert"]["infos"][0]["areas"][0]["circles"][0]["radius_km"] == 1.5


async def test_repeated_idempotency_key_returns_first_alert(app: RunningService) -> None:
    """The same Idempotency-Key and body give 200 and the first alert's id, stored once."""
    first_status, first = await post(app, json.dumps(GOOD).encode(), **{"Idempotency-Key": "k1"})
    again_status, again = await post(app, json.dumps(GOOD).encode(), **{"Idempotency-Key": "k1"})
    assert (first_status, again_status) == (201, 200)
    assert again["id"] == first["id"]
    assert await app.service.store.count_alerts() == 1


async def test_idempotency_key_with_other_body_conflicts(app: RunningService) -> None:
    """Reusing an Idempotency-Key for a different alert is refused with 409."""
    await post(app, json.dumps(GOOD).encode(), **{"Idempotency-Key": "k2"})
    status, body = await post(app, with_(headline="Other"), **{"Idempotency-Key": "k2"})
    assert status == 409
    assert body["error"] == "idempotency_conflict"


async def test_repeated_cap_alert_returns_first(app: RunningService) -> None:
    """The same CAP alert (sender+identifier+sent) posted twice is stored once."""
    cap = (CAP_DIR / "spec_examples" / "cap12_appendix_A1.xml").read_bytes()
    first_status, first = await post(app, cap, "application/cap+xml")
    again_status, again = await post(app, cap, "application/cap+xml")
    assert (first_status, again_status) == (201, 200)
    assert first["id"] == again["id"]
    assert first["alert"]["identifier"] == "43b080713727"


async def test_every_corpus_cap_alert_reads_back_through_the_api(app: RunningService) -> None:
    """Each real and spec CAP file posts (201) and reads back (200) through GET one and the
    list, info-less Cancel included: the JSON-form view of any CAP alert never fails, nor
    do its public page, its CAP, the list page or the feeds."""
    files = sorted((CAP_DIR / "real").glob("*.xml")) + sorted(
        (CAP_DIR / "spec_examples").glob("*.xml")
    )
    for path in files:
        status, body = await post(app, path.read_bytes(), "application/cap+xml")
        assert status in (200, 201), (path.name, body)
        for view in body.get("alerts", [body]):
            url = f"{app.url}/v1/alerts/{view['id']}"
            async with app.http.get(url, headers=app.auth()) as resp:
                assert resp.status == 200, path.name
                assert (await resp.json())["areas"] == view["areas"]
            for public in (f"/alerts/{view['id']}", f"/alerts/{view['id']}.cap"):
                async with app.http.get(app.url + public) as resp:
                    assert resp.status in (200, 404), (path.name, public, resp.status)
    for public in ("/", "/feed.atom", "/cap/index.atom"):
        async with app.http.get(app.url + public) as resp:
            assert resp.status == 200, public
    async with app.http.get(f"{app.url}/v1/alerts?limit=500", headers=app.auth()) as resp:
        assert resp.status == 200


async def test_cap_collection_stores_every_alert(app: RunningService) -> None:
    """A CAP <alerts> collection of 17 alerts is stored as 17 alerts."""
    cap = (CAP_DIR / "real" / "se_smhi_17_alerts_collection.xml").read_bytes()
    status, body = await post(app, cap, "application/cap+xml")
    assert status == 201
    assert len(body["alerts"]) == 17
    assert await app.service.store.count_alerts() == 17


async def test_cap_export_of_json_alert(app: RunningService) -> None:
    """A JSON alert is served back as CAP 1.2 XML that our own parser accepts."""
    from alerts.cap import parse_cap, validate_cap_xml

    _, body = await post(app, json.dumps(GOOD).encode())
    async with app.http.get(f"{app.url}/alerts/{body['id']}.cap") as resp:
        assert resp.status == 200
        xml = await resp.read()
    assert validate_cap_xml(xml) == []
    assert parse_cap(xml)[0].identifier == body["alert"]["identifier"]


MALFORMED: list[tuple[str, bytes, str, int]] = [
    ("not json", b"{not json", "application/json", 400),
    ("truncated json", json.dumps(GOOD).encode()[:-5], "application/json", 400),
    ("json array", b"[1, 2]", "application/json", 422),
    ("json string", b'"alert"', "application/json", 422),
    ("json null", b"null", "application/json", 422),
    ("missing event", without("event"), "application/json", 422),
    ("missing headline", without("headline"), "application/json", 422),
    ("missing severity", without("severity"), "application/json", 422),
    ("bad severity", with_(severity="Apocalyptic"), "application/json", 422),
    ("severity wrong type", with_(severity=3), "application/json", 422),
    ("unknown field", with_(instructions="typo"), "application/json", 422),
    ("category not list", with_(category="Safety"), "application/json", 422),
    ("empty category", with_(category=[]), "application/json", 422),
    ("bad status", with_(status="Real"), "application/json", 422),
    ("cancel without references", with_(msg_type="Cancel"), "application/json", 422),
    ("unknown reference", with_(msg_type="Update", references=["nope"]), "application/json", 422),
    ("ack not broadcastable", with_(msg_type="Ack", references=["a,b,c"]), "application/json", 422),
    (
        "open polygon",
        with_(areas=[{"description": "x", "polygon": [[1, 1], [1, 2], [2, 2], [2, 1]]}]),
        "application/json",
        422,
    ),
    (
        "short polygon",
        with_(areas=[{"description": "x", "polygon": [[1, 1], [1, 2], [1, 1]]}]),
        "application/json",
        422,
    ),
    (
        "zero radius",
        with_(areas=[{"description": "x", "circle": {"lat": 1, "lon": 1, "radius_km": 0}}]),
        "application/json",
        422,
    ),
    (
        "latitude out of range",
        with_(areas=[{"description": "x", "circle": {"lat": 91, "lon": 1, "radius_km": 1}}]),
        "application/json",
        422,
    ),
    ("expires in the past", with_(expires="2001-01-01T00:00:00+00:00"), "application/json", 422),
    ("expires without offset", with_(expires="2099-01-01T00:00:00"), "application/json", 422),
    (
        "expires past UTC's range",
        with_(expires="9999-12-31T23:59:59-14:00"),
        "application/json",
        422,
    ),
    ("onset past UTC's range", with_(onset="0001-01-01T00:00:00+14:00"), "application/json", 422),
    ("bad channel name", with_(channels=["SMS!"]), "application/json", 422),
    ("channel not configured", with_(channels=["sms"]), "application/json", 422),
    (
        "duplicate language",
        with_(translations=[{"language": "en-US", "headline": "x"}]),
        "application/json",
        422,
    ),
    ("headline too long", with_(headline="x" * 201), "application/json", 422),
    ("control character in headline", with_(headline="Fire\u0001"), "application/json", 422),
    ("lone surrogate", with_(areas=[{"description": "x\ud800"}]), "application/json", 400),
    ("control character in a group", with_(groups=["no\u000brth"]), "application/json", 422),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, "application/json", 400),
    ("malformed xml", b"<alert><identifier>", "application/cap+xml", 422),
    (
        "xml entity bomb",
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;">]><alert>&b;</alert>',
        "application/cap+xml",
        422,
    ),
    ("wrong media type", b"hello", "text/plain", 415),
    ("empty body", b"", "application/json", 400),
    ("utf-16 garbage", '{"event": 1}'.encode("utf-16"), "application/json", 400),
]


@pytest.mark.parametrize(
    ("name", "body", "content_type", "status"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
async def test_bad_input_gets_json_4xx(
    app: RunningService, name: str, body: bytes, content_type: str, status: int
) -> None:
    """Each malformed body gets its 4xx with a JSON error and detail, and nothing is stored."""
    got, error = await post(app, body, content_type)
    assert got == status, error
    assert set(error) == {"error", "detail"}
    assert error["detail"]
    assert await app.service.store.count_alerts() == 0


async def test_oversized_body_gets_413(app: RunningService) -> None:
    """A body over the configured cap is refused with 413 and a JSON error."""
    body = io.BytesIO(b"{" + b" " * 2_000_000 + b"}")
    async with app.http.post(
        f"{app.url}/v1/alerts",
        data=body,
        headers={**app.auth(), "Content-Type": "application/json"},
    ) as response:
        got, error = response.status, await response.json()
    assert got == 413
    assert error["error"] == "payload_too_large"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc", "bearer  "])
async def test_missing_or_bad_token_gets_401(app: RunningService, header: str | None) -> None:
    """No token, a malformed header or an unknown token is refused with 401 JSON."""
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Authorization"] = header
    async with app.http.post(
        f"{app.url}/v1/alerts", data=json.dumps(GOOD), headers=headers
    ) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"


async def test_responder_may_not_issue(app: RunningService) -> None:
    """A responder token can read alerts but not issue them (403)."""
    async with app.http.post(
        f"{app.url}/v1/alerts",
        data=json.dumps(GOOD),
        headers={**app.auth(Role.RESPONDER), "Content-Type": "application/json"},
    ) as response:
        assert response.status == 403
    async with app.http.get(f"{app.url}/v1/alerts", headers=app.auth(Role.RESPONDER)) as resp:
        assert resp.status == 200


async def test_list_pages_newest_first(app: RunningService) -> None:
    """GET /v1/alerts lists newest first, each with its delivery counts, and pages with
    `next`."""
    # Deliveries on channels this service does not run: they stay pending, counts fixed.
    planned = make_new(deliveries=plan("sms", "+1", "+2") + plan("x", "@a"))
    await app.service.store.insert_alert(planned)
    ids = [planned.id]
    ids += [(await post(app, with_(headline=f"Alert {n}")))[1]["id"] for n in range(5)]
    async with app.http.get(f"{app.url}/v1/alerts?limit=3", headers=app.auth()) as resp:
        page = await resp.json()
    assert [a["id"] for a in page["alerts"]] == ids[::-1][:3]
    async with app.http.get(app.url + page["next"], headers=app.auth()) as resp:
        rest = await resp.json()
    assert [a["id"] for a in rest["alerts"]] == ids[::-1][3:]
    for listed in page["alerts"] + rest["alerts"]:
        async with app.http.get(f"{app.url}/v1/alerts/{listed['id']}", headers=app.auth()) as r:
            assert listed["deliveries"] == (await r.json())["deliveries"]
    assert rest["alerts"][-1]["deliveries"] == {"sms": {"pending": 2}, "x": {"pending": 1}}


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=100000", "before=-1"])
async def test_bad_query_gets_400(app: RunningService, query: str) -> None:
    """Bad paging parameters are a 400, not a 500."""
    async with app.http.get(f"{app.url}/v1/alerts?{query}", headers=app.auth()) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "bad_query"


async def test_unknown_alert_and_route_get_404(app: RunningService) -> None:
    """An unknown alert id and an unknown route are JSON 404s."""
    async with app.http.get(f"{app.url}/v1/alerts/nope", headers=app.auth()) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "not_found"
    async with app.http.get(f"{app.url}/nowhere") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "not_found"


async def test_health_ready_metrics_openapi(app: RunningService) -> None:
    """healthz, readyz, metrics and the OpenAPI document answer."""
    await post(app, json.dumps(GOOD).encode())
    async with app.http.get(f"{app.url}/healthz") as resp:
        assert resp.status == 200
    async with app.http.get(f"{app.url}/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json())["checks"]["database"]["ok"] is True
    async with app.http.get(f"{app.url}/metrics") as resp:
        text = await resp.text()
    assert (
        'broadcaster_alerts_received_total{format="json",outcome="created",source="rest"} 1.0'
        in text
    )
    async with app.http.get(f"{app.url}/openapi.json") as resp:
        spec = await resp.json()
    assert "/v1/alerts" in spec["paths"]
    assert "AlertRequest" in spec["components"]["schemas"]
