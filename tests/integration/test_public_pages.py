"""The public pages over a real loopback socket: the list, one alert, caching and 404s."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import html as lxml_html
from multidict import CIMultiDict

from tests.conftest import RunningService, start_service
from tests.support.public_web import post_alert, until_published


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[RunningService]:
    """The whole service, with Extreme alerts held for a second approver (so not public)."""
    async for running in start_service(tmp_path, approval={"two_person_severities": ["Extreme"]}):
        yield running


async def get(site: RunningService, path: str, **headers: str) -> tuple[int, str, CIMultiDict[str]]:
    async with site.http.get(f"{site.url}{path}", headers=headers) as response:
        return response.status, await response.text(), CIMultiDict(response.headers)


async def publish(site: RunningService, headline: str, **fields: object) -> str:
    body = await post_alert(site, headline, **fields)
    await until_published(site, body["id"])
    return str(body["id"])


async def test_empty_list_says_so(site: RunningService) -> None:
    """With nothing in force, / says "No alerts in force" in a complete HTML page."""
    status, text, headers = await get(site, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert "No alerts in force" in text
    assert text.startswith("<!doctype html>")


async def test_list_is_sorted_most_severe_then_newest(site: RunningService) -> None:
    """Active alerts are listed most severe first, newest first within a severity."""
    await publish(site, "Minor one", severity="Minor")
    await publish(site, "Severe older", severity="Severe")
    await publish(site, "Moderate one", severity="Moderate")
    await publish(site, "Severe newer", severity="Severe")
    _, text, _ = await get(site, "/")
    order = ["Severe newer", "Severe older", "Moderate one", "Minor one"]
    positions = [text.index(h) for h in order]
    assert positions == sorted(positions)
    assert "Severity: Severe" in text
    assert "Keep away from Market St." in text
    assert "Market St" in text
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">[^<]+ UTC</time>', text)


async def test_exercises_hidden_unless_asked_and_marked(site: RunningService) -> None:
    """Exercise and Test alerts are off the list unless ?exercises=1, then marked in words."""
    await publish(site, "Real alert")
    await publish(site, "Drill alert", status="Exercise")
    await publish(site, "Test alert", status="Test")
    _, plain, _ = await get(site, "/")
    assert "Real alert" in plain
    assert "Drill alert" not in plain
    assert "Test alert" not in plain
    _, shown, _ = await get(site, "/?exercises=1")
    assert "Drill alert" in shown
    assert "Test alert" in shown
    assert "EXERCISE — NOT A REAL ALERT" in shown
    assert "TEST — NOT A REAL ALERT" in shown
    assert 'class="status-banner status-exercise"' in shown


async def test_language_switch_picks_the_info_block(site: RunningService) -> None:
    """?lang=cy shows the Welsh block, with lang="cy" on its container and a link back."""
    translation = {
        "language": "cy",
        "headline": "Osgowch Stryd y Farchnad",
        "instruction": "Cadwch draw.",
    }
    alert_id = await publish(site, "Avoid Market St", language="en-GB", translations=[translation])
    _, english, _ = await get(site, "/")
    assert "Avoid Market St" in english
    assert 'href="/?lang=cy"' in english
    _, welsh, _ = await get(site, "/?lang=cy")
    assert "Osgowch Stryd y Farchnad" in welsh
    assert "Avoid Market St" not in welsh
    assert 'lang="cy"' in welsh
    assert 'href="/?lang=en-GB"' in welsh
    _, page, _ = await get(site, f"/alerts/{alert_id}?lang=cy")
    assert "Cadwch draw." in page


async def test_fragment_is_only_the_list(site: RunningService) -> None:
    """?fragment=list answers the list's content alone, for the script to swap in."""
    await publish(site, "Fragment alert")
    status, text, _ = await get(site, "/?fragment=list")
    assert status == 200
    assert "<html" not in text
    assert "Fragment alert" in text
    assert text.lstrip().startswith('<ol class="cards">')


async def test_etag_gives_304_until_something_changes(site: RunningService) -> None:
    """The same page revalidates to 304; a new alert changes the ETag."""
    await publish(site, "First")
    _, _, headers = await get(site, "/")
    etag = headers["ETag"]
    status, text, again = await get(site, "/", **{"If-None-Match": etag})
    assert (status, text) == (304, "")
    assert again["ETag"] == etag
    _, _, other = await get(site, "/?exercises=1")
    assert other["ETag"] != etag
    await publish(site, "Second")
    status, text, changed = await get(site, "/", **{"If-None-Match": etag})
    assert status == 200
    assert "Second" in text
    assert changed["ETag"] != etag


async def test_list_refreshes_when_an_alert_expires(site: RunningService) -> None:
    """An alert leaves / when it expires, with no event to say so."""
    expires = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    await publish(site, "Short lived", expires=expires.isoformat())
    _, before, _ = await get(site, "/")
    assert "Short lived" in before
    await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 0.2)
    _, after, _ = await get(site, "/")
    assert "Short lived" not in after
    assert "No alerts in force" in after


async def test_unknown_pending_and_draft_alerts_are_html_404(site: RunningService) -> None:
    """Unknown ids, alerts awaiting approval and drafts are an HTML 404 page."""
    pending = await post_alert(site, "Pending", severity="Extreme")
    assert pending["state"] == "pending_approval"
    draft = await post_alert(site, "Draft", status="Draft")
    for alert_id in ("0123456789abcdef", pending["id"], draft["id"]):
        status, text, headers = await get(site, f"/alerts/{alert_id}")
        assert status == 404
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert "Alert not found" in text


async def test_alert_page_shows_every_public_field_and_an_outline(site: RunningService) -> None:
    """The alert page has the fields the public needs, its CAP link and an SVG outline."""
    alert_id = await publish(
        site,
        "Avoid Market St",
        sender_name="City Police",
        web="https://police.example/market",
        contact="101",
        areas=[
            {
                "description": "Market square",
                "polygon": [[51.5, -0.13], [51.51, -0.13], [51.51, -0.12], [51.5, -0.13]],
            },
            {"description": "Station", "circle": {"lat": 51.505, "lon": -0.11, "radius_km": 0.3}},
        ],
    )
    status, text, _ = await get(site, f"/alerts/{alert_id}")
    assert status == 200
    for expected in (
        "Gas leak",
        "Avoid Market St",
        "A gas main has ruptured.",
        "Keep away from Market St.",
        "Severity: Severe",
        "Urgency: Immediate",
        "Certainty: Observed",
        "City Police",
        'href="https://police.example/market"',
        "101",
        "Market square",
        "Station",
        f'href="/alerts/{alert_id}.cap"',
        "IN FORCE",
    ):
        assert expected in text, expected
    doc = lxml_html.fromstring(text)
    svg = doc.xpath("//svg")
    assert len(svg) == 1
    assert svg[0].get("role") == "img"
    assert svg[0].xpath(".//title")
    assert svg[0].xpath(".//polygon")
    assert svg[0].xpath(".//circle")
    assert "Station" in svg[0].xpath(".//desc")[0].text_content()


async def test_alert_page_history_after_update_and_cancel(site: RunningService) -> None:
    """After an Update and a Cancel the page lists all three, linked, and says CANCELLED."""
    first = await publish(site, "Original")
    update = await publish(site, "Updated text", msg_type="Update", references=[first])
    _, text, _ = await get(site, f"/alerts/{first}")
    assert "UPDATED" in text
    assert f'href="/alerts/{update}"' in text
    _, fragment, _ = await get(site, f"/alerts/{first}?fragment=history")
    assert "<html" not in fragment
    assert "Updated text" in fragment
    cancel = await publish(site, "Cancelled", msg_type="Cancel", references=[update])
    _, text, _ = await get(site, f"/alerts/{update}")
    doc = lxml_html.fromstring(text)
    entries = doc.xpath('//ol[@class="history-list"]/li')
    assert [e.xpath(".//span[@class='msg-type']")[0].text for e in entries] == [
        "Alert",
        "Update",
        "Cancel",
    ]
    links = [e.xpath(".//a")[0].get("href") for e in entries]
    assert links == [f"/alerts/{first}", f"/alerts/{update}", f"/alerts/{cancel}"]
    assert "CANCELLED" in text
    _, listing, _ = await get(site, "/")
    assert "No alerts in force" in listing


async def test_pages_have_one_h1_landmarks_and_nothing_inline(site: RunningService) -> None:
    """Each page has one h1, header/main/footer, a skip link, and no inline script or style."""
    alert_id = await publish(site, "Structure", status="Exercise")
    for path in ("/", "/?exercises=1", f"/alerts/{alert_id}", "/alerts/nope"):
        _, text, _ = await get(site, path)
        doc = lxml_html.fromstring(text)
        assert len(doc.xpath("//h1")) == 1, path
        for landmark in ("//header", "//main[@id='main']", "//footer"):
            assert doc.xpath(landmark), (path, landmark)
        assert doc.xpath("//a[@href='#main']")
        assert doc.get("lang") == "en"
        assert doc.xpath("//meta[@name='viewport']")
        assert not doc.xpath("//*[@style]"), path
        assert not doc.xpath("//style"), path
        assert all(s.get("src") for s in doc.xpath("//script")), path
    status, _, headers = await get(site, "/static/app.css")
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    status, js, _ = await get(site, "/static/app.js")
    assert status == 200
    assert "EventSource" in js
