"""Atom feeds and CAP items over a real loopback socket: content, the CAP index, conditional GET."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree
from multidict import CIMultiDict

from alerts.cap import CAP12_NS, validate_cap_xml
from alerts.models import Status
from broadcaster.ports import AlertState
from tests.conftest import RunningService, start_service
from tests.integration.test_rest_intake import GOOD
from tests.integration.test_store import make_alert, make_new

ATOM = "http://www.w3.org/2005/Atom"
NS = {"a": ATOM, "cap": CAP12_NS}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


async def issue(app: RunningService, **changes: Any) -> dict[str, Any]:
    """Post a JSON alert (GOOD with `changes`) and return its view."""
    body = json.dumps({**GOOD, **changes}).encode()
    async with app.http.post(
        f"{app.url}/v1/alerts",
        data=body,
        headers={**app.auth(), "Content-Type": "application/json"},
    ) as response:
        assert response.status == 201, await response.text()
        view: dict[str, Any] = await response.json()
        return view


async def caught_up(app: RunningService) -> None:
    """Wait until the publication has handed out every event stored so far."""
    last = await app.service.store.last_event_seq()
    async with asyncio.timeout(5):
        await app.service.publication.wait_beyond(last - 1)


async def fetch(
    app: RunningService, path: str, **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    async with app.http.get(f"{app.url}{path}", headers=headers) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


def entries(body: bytes) -> list[etree._Element]:
    return etree.fromstring(body).findall("a:entry", NS)


def cap_identifiers(body: bytes) -> set[str]:
    return {e.findtext("cap:identifier", namespaces=NS) or "" for e in entries(body)}


@pytest.fixture
async def public_app(tmp_path: Path) -> AsyncIterator[RunningService]:
    """The service with `http.public_url` set, as behind a proxy."""
    async for running in start_service(
        tmp_path,
        http={"public_url": "https://alerts.example.org/"},
        approval={"two_person_severities": []},
    ):
        yield running


async def test_feed_lists_events_newest_first_with_updates_and_cancels(
    app: RunningService,
) -> None:
    """feedparser reads /feed.atom without bozo: one entry per event, newest first, Update and
    Cancel as their own entries, exercises marked, drafts and restricted alerts absent."""
    first = await issue(app, headline="Avoid Market St")
    drill = await issue(app, status="Exercise", headline="Evacuation drill", severity="Minor")
    await issue(app, status="Draft", headline="Not ready yet")
    await issue(app, scope="Restricted", restriction="police only", headline="Suspect seen")
    update = await issue(
        app, msg_type="Update", references=[first["id"]], headline="Market St still closed"
    )
    cancel = await issue(app, msg_type="Cancel", references=[update["id"]], headline="All clear")
    await caught_up(app)

    status, headers, body = await fetch(app, "/feed.atom")
    assert status == 200
    assert headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.get("bozo_exception")
    assert [e.title for e in feed.entries] == [
        "Cancelled: Severe: All clear",
        "Update: Severe: Market St still closed",
        "[EXERCISE] Minor: Evacuation drill",
        "Severe: Avoid Market St",
    ]
    ids = [cancel["id"], update["id"], drill["id"], first["id"]]
    for entry, alert_id in zip(feed.entries, ids, strict=True):
        links = {(link.rel, link.type): link.href for link in entry.links}
        assert links[("alternate", "text/html")] == f"{app.url}/alerts/{alert_id}"
        assert links[("alternate", "application/cap+xml")] == f"{app.url}/alerts/{alert_id}.cap"
        assert entry.id.startswith("urn:uuid:")
        assert [t.term for t in entry.tags] == ["Safety"]
        assert entry.summary.startswith(GOOD["description"])
    assert len({e.id for e in feed.entries}) == 4
    times = [e.updated_parsed for e in feed.entries]
    assert times == sorted(times, reverse=True)
    assert feed.feed.updated == feed.entries[0].updated
    self_link = [link.href for link in feed.feed.links if link.rel == "self"]
    assert self_link == [f"{app.url}/feed.atom"]


async def test_cap_index_lists_only_alerts_in_force_and_every_item_validates(
    app: RunningService,
) -> None:
    """/cap/index.atom lists the alerts in force (not cancelled, superseded, expired, exercise,
    draft or restricted); every CAP link in it fetches as application/cap+xml and passes the
    CAP 1.2 XSD."""
    live = await issue(app, headline="Live")
    cancelled = await issue(app, headline="Cancelled soon")
    cancel = await issue(app, msg_type="Cancel", references=[cancelled["id"]])
    replaced = await issue(app, headline="Replaced soon")
    update = await issue(app, msg_type="Update", references=[replaced["id"]], headline="Newer")
    drill = await issue(app, status="Exercise")
    test = await issue(app, status="Test")
    draft = await issue(app, status="Draft")
    restricted = await issue(app, scope="Restricted", restriction="police only")
    now = datetime.now(UTC)
    old = make_alert(sent=now - timedelta(minutes=5))
    expired = make_new(
        old.model_copy(
            update={
                "infos": (old.infos[0].model_copy(update={"expires": now - timedelta(seconds=1)}),)
            }
        )
    )
    await app.service.store.insert_alert(expired)
    await caught_up(app)

    status, headers, body = await fetch(app, "/cap/index.atom")
    assert status == 200
    assert headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert not feedparser.parse(body).bozo
    listed = cap_identifiers(body)
    assert listed == {live["alert"]["identifier"], update["alert"]["identifier"]}
    absent = [cancelled, cancel, replaced, drill, test, draft, restricted]
    assert not listed & {a["alert"]["identifier"] for a in absent}
    assert expired.alert.identifier not in listed
    for entry in entries(body):
        assert entry.findtext("cap:status", namespaces=NS) == "Actual"
        assert entry.findtext("cap:severity", namespaces=NS) == "Severe"
        assert entry.findtext("cap:areaDesc", namespaces=NS) == "Market St"
        cap_links = [
            link.get("href", "")
            for link in entry.findall("a:link", NS)
            if link.get("type") == "application/cap+xml"
        ]
        assert len(cap_links) == 1
        assert cap_links[0].startswith(f"{app.url}/alerts/")
        async with app.http.get(cap_links[0]) as response:
            assert response.status == 200
            assert response.content_type == "application/cap+xml"
            xml = await response.read()
        assert validate_cap_xml(xml) == []
        identifier = etree.fromstring(xml).findtext(f"{{{CAP12_NS}}}identifier")
        assert identifier == entry.findtext("cap:identifier", namespaces=NS)


async def test_an_expiring_alert_leaves_the_index_without_a_new_event(
    app: RunningService,
) -> None:
    """The index is re-rendered at the earliest expiry: the alert drops out, the ETag changes
    and Last-Modified moves to the expiry, though nothing new was published."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    soon = await issue(app, expires=expires.isoformat())
    await caught_up(app)
    _, first_headers, first = await fetch(app, "/cap/index.atom")
    assert cap_identifiers(first) == {soon["alert"]["identifier"]}
    version = app.service.publication.version
    await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 0.1)
    status, headers, body = await fetch(
        app, "/cap/index.atom", **{"If-None-Match": first_headers["ETag"]}
    )
    assert status == 200
    assert app.service.publication.version == version
    assert cap_identifiers(body) == set()
    assert headers["ETag"] != first_headers["ETag"]
    assert headers["Last-Modified"] == format_http(expires)


def format_http(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


@pytest.mark.parametrize("path", ["/feed.atom", "/cap/index.atom", "/alerts/{id}.cap"])
async def test_conditional_get_answers_304_until_something_is_published(
    app: RunningService, path: str
) -> None:
    """A strong ETag and Last-Modified come with every representation; If-None-Match or
    If-Modified-Since that still match get 304 with no body; a new alert changes the feeds'
    ETags (never the CAP item's, which cannot change)."""
    first = await issue(app)
    await caught_up(app)
    path = path.format(id=first["id"])
    status, headers, body = await fetch(app, path)
    assert status == 200
    assert body
    etag, last_modified = headers["ETag"], headers["Last-Modified"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)  # strong: no W/
    assert headers["Cache-Control"] == "public, max-age=10"
    assert datetime.strptime(last_modified, "%a, %d %b %Y %H:%M:%S GMT").replace(
        tzinfo=UTC
    ) <= datetime.now(UTC)

    for conditions in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": last_modified},
    ):
        status, again, body = await fetch(app, path, **conditions)
        assert (status, body) == (304, b""), conditions
        assert again["ETag"] == etag
        assert again["Cache-Control"] == "public, max-age=10"
    # If-None-Match decides when present, even when If-Modified-Since would match.
    status, _, body = await fetch(
        app, path, **{"If-None-Match": '"other"', "If-Modified-Since": last_modified}
    )
    assert status == 200
    assert body
    async with app.http.head(f"{app.url}{path}", headers={"If-None-Match": etag}) as response:
        assert response.status == 304

    await issue(app, headline="Another")
    await caught_up(app)
    status, headers, body = await fetch(app, path, **{"If-None-Match": etag})
    if path.endswith(".cap"):
        assert status == 304
    else:
        assert status == 200
        assert headers["ETag"] != etag
        assert b"Another" in body


async def test_feeds_are_valid_atom_documents(app: RunningService) -> None:
    """Both feeds have the elements RFC 4287 requires: feed id/title/updated/author and a self
    link; each entry one id (an absolute IRI, unique), title, updated, and an alternate link;
    dates in RFC 3339; no two alternates of one type."""
    await issue(app, headline="One")
    await issue(app, headline="Two", language="cy", translations=[])
    await caught_up(app)
    for path in ("/feed.atom", "/cap/index.atom"):
        _, _, body = await fetch(app, path)
        root = etree.fromstring(body)
        assert root.tag == f"{{{ATOM}}}feed"
        for name in ("id", "title", "updated"):
            assert len(root.findall(f"a:{name}", NS)) == 1, (path, name)
        assert RFC3339.match(root.findtext("a:updated", namespaces=NS) or "")
        assert root.findtext("a:author/a:name", namespaces=NS)
        selves = [link for link in root.findall("a:link", NS) if link.get("rel") == "self"]
        assert [link.get("href") for link in selves] == [f"{app.url}{path}"]
        ids = []
        for entry in root.findall("a:entry", NS):
            for name in ("id", "title", "updated"):
                assert len(entry.findall(f"a:{name}", NS)) == 1, (path, name)
            ids.append(entry.findtext("a:id", namespaces=NS) or "")
            assert RFC3339.match(entry.findtext("a:updated", namespaces=NS) or "")
            alternates = [
                link.get("type")
                for link in entry.findall("a:link", NS)
                if link.get("rel", "alternate") == "alternate"
            ]
            assert alternates
            assert len(alternates) == len(set(alternates))
            assert all(
                link.get("href", "").startswith("http") for link in entry.iter(f"{{{ATOM}}}link")
            )
        assert len(ids) == 2
        assert len(set(ids)) == 2
        assert all(re.match(r"^[a-z][a-z0-9+.-]*:", i) for i in ids)
        langs = {
            e.get("{http://www.w3.org/XML/1998/namespace}lang")
            for e in root.iter(f"{{{ATOM}}}entry")
        }
        assert langs == {"en-US", "cy"}


async def test_links_and_ids_use_the_public_url(public_app: RunningService) -> None:
    """With http.public_url set, feed ids and every link use it, whatever Host the request
    named."""
    alert = await issue(public_app)
    await caught_up(public_app)
    _, _, body = await fetch(public_app, "/feed.atom", Host="evil.example")
    feed = feedparser.parse(body)
    assert feed.feed.id == "https://alerts.example.org/feed.atom"
    hrefs = [link.href for link in feed.feed.links + feed.entries[0].links]
    assert all(h.startswith("https://alerts.example.org/") for h in hrefs)
    assert f"https://alerts.example.org/alerts/{alert['id']}.cap" in hrefs
    _, _, index = await fetch(public_app, "/cap/index.atom")
    assert feedparser.parse(index).feed.id == "https://alerts.example.org/cap/index.atom"


async def test_cap_item_is_served_only_once_public(app: RunningService) -> None:
    """An alert waiting for approval, a draft and an unknown id are 404 at /alerts/{id}.cap;
    nothing of them appears in the feeds."""
    pending = make_new(state=AlertState.PENDING_APPROVAL)
    await app.service.store.insert_alert(pending)
    draft_alert = make_alert().model_copy(update={"status": Status.DRAFT})
    draft = make_new(draft_alert)
    await app.service.store.insert_alert(draft)
    live = await issue(app)
    await caught_up(app)
    for alert_id in (pending.id, draft.id, "no-such-alert"):
        status, _, body = await fetch(app, f"/alerts/{alert_id}.cap")
        assert status == 404
        assert json.loads(body)["error"] == "not_found"
    _, _, feed = await fetch(app, "/feed.atom")
    assert [e.link for e in feedparser.parse(feed).entries] == [f"{app.url}/alerts/{live['id']}"]


async def test_an_alert_stored_before_control_characters_were_refused_is_still_served(
    app: RunningService,
) -> None:
    """A stored alert whose text holds a character XML cannot carry (accepted before the model
    refused them) is read back, and its CAP item and the feed are served without it."""
    alert = make_alert()
    info = alert.infos[0].model_copy(update={"headline": "Avoid\x01 Market St"})
    legacy = make_new(alert.model_copy(update={"infos": (info,)}))  # skips validation
    await app.service.store.insert_alert(legacy)
    stored = await app.service.store.get_alert(legacy.id)
    assert stored is not None
    assert stored.alert.infos[0].headline == "Avoid\x01 Market St"
    status, _, body = await fetch(app, f"/alerts/{legacy.id}.cap")
    assert status == 200, body
    assert validate_cap_xml(body) == []
    assert b"<headline>Avoid Market St</headline>" in body
    await caught_up(app)
    status, _, feed = await fetch(app, "/feed.atom")
    assert status == 200
    assert "Severe: Avoid Market St" in [e.title for e in feedparser.parse(feed).entries]
