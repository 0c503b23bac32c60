"""Atom feeds of the public alerts, and conditional GET for them and for each CAP item.

Routes (`register_feeds(app)` adds the first two; `/alerts/{id}.cap` stays routed in app.py,
ahead of the page routes, and answers through `get_cap_item`):
- `GET /feed.atom`: Atom 1.0 (RFC 4287) of alert events, newest first: the last `FEED_LIMIT`
  events from `Publication.recent()`, one entry per alert, an Update and a Cancel each their own
  entry. Drafts, alerts waiting for approval and non-Public scopes never appear; Exercise, Test
  and System alerts are marked at the start of their titles ("[EXERCISE] ...").
- `GET /cap/index.atom`: the CAP-over-Atom index that CAP aggregators poll: one entry per alert
  in force (`Publication.active(include_exercises=False)`: not cancelled, not superseded, not
  expired, Actual or System), linking to its CAP XML.
- `GET /alerts/{id}.cap`: the alert as CAP 1.2 XML, once it is public (404 before approval,
  and for drafts).
The XML (Atom elements, the CAP fields of index entries, entry titles and summaries) is built
by `feed_xml.py`; this module chooses the entries, caches the bytes and answers conditionally.

The CAP index follows:
- OASIS, "Example Practices: CAP Feeds Version 1.0", Committee Note 02, 2014
  (https://docs.oasis-open.org/emergency-adopt/cap-feeds/v1.0/cap-feeds-v1.0.html), to which
  Google's requirements defer for Atom. Its entry-to-CAP mapping: entry id a permanent IRI per
  alert; title from the headline; updated/published the alert's time; summary the headline or
  an excerpt of the description; category the CAP category; and a link to the full CAP alert
  that is absolute, already resolves when the entry appears, and is typed
  `application/cap+xml`.
- Google Public Alerts, "Feed formats"
  (https://developers.google.com/public-alerts/guides/cap-requirements/feed-formats): a public
  Atom (or RSS) feed that links each entry to the full CAP alert; ideally under 100 KB, at most
  900 KB. So index summaries are cut to `INDEX_SUMMARY_CHARS` and the entries are bounded by
  the publication's ACTIVE_LIMIT; the CAP item carries the full text.
- The NWS alerts.weather.gov Atom index, the "ATOM CAP syndication feed (such as NOAA)" that
  Alertus pulls (http://www.alertus.com/cap; layout as in IBM/cap
  resources/nws_atom_feed_example.xml): each entry repeats the CAP fields a poller filters on
  (cap:event, effective, expires, status, msgType, category, urgency, severity, certainty,
  areaDesc, polygon, geocode valueName/value pairs; we add identifier, sender, sent, scope and
  references so an entry can be matched to the CAP message without fetching it), in the CAP 1.2
  namespace. Exercise and Test alerts are left out: Google asks that tests never reach the
  public (launch-maintain-alerts guide).

Caching and conditional GET (RFC 9110 §8.8, §13):
- Rendered bytes are cached per `Publication.version` (and per base URL when `http.public_url`
  is unset); the index also until the earliest expiry among its alerts; a CAP item per alert id
  (public CAP never changes: an Update or Cancel is another alert). A busy feed costs no
  database work, and concurrent misses on the index render once.
- ETag: strong, the SHA-256 of the body (first 128 bits), computed once per render: it changes
  exactly when the bytes do, and is the same in every process serving the same store.
- Last-Modified: the newest event time in the feed; for the index also the latest expiry that
  has passed (an alert dropping out is a change); for a CAP item the time it was received.
- If-None-Match (weak comparison, `*` too) wins over If-Modified-Since; a match is a 304 with
  the validators and Cache-Control but no body. Last-Modified has one-second resolution, so a
  client relying on If-Modified-Since alone can miss a second change within the same second;
  the ETag cannot.
- `Cache-Control: public, max-age=10`: shared caches and CDNs may absorb a stampede of readers
  (thousands polling during an incident) for at most 10 s, which bounds how late anyone learns
  of an alert or cancellation; after that a revalidation costs one 304.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web
from aiohttp.helpers import ETAG_ANY
from lxml import etree

from adapters.http.errors import json_error
from adapters.http.feed_xml import (
    ATOM_TYPE,
    CAP_TYPE,
    atom_category,
    atom_element,
    atom_entry,
    atom_link,
    cap_fields,
    entry_info,
    entry_title,
    excerpt,
    feed_root,
    serialise,
    summary_text,
    xml_safe_copy,
)
from alerts.cap import CapError, to_cap_xml
from alerts.models import Alert, Scope, reference_parts
from alerts.render import pick_info
from broadcaster.ports import StoredAlert
from broadcaster.publication import Publication, PublishedEvent, is_public
from broadcaster.service import Service

CACHE_CONTROL = "public, max-age=10"
# Entries in /feed.atom (the newest events).
FEED_LIMIT = 50
# Index summaries are excerpts (the CAP item has the full text); keeps the index small.
INDEX_SUMMARY_CHARS = 300
# How many CAP items and base URLs keep their rendered bytes.
_CAP_ITEMS_CACHED = 1024
_RENDERS_CACHED = 4
# The whole in-memory ring of recent events (Publication keeps at most 1000).
_WHOLE_RING = 1_000_000


@dataclass(frozen=True, slots=True)
class Rendered:
    """A representation ready to send, with its validators."""

    body: bytes
    etag: str  # unquoted
    last_modified: datetime | None
    # Re-render from this instant even if nothing is published (the index: the next expiry).
    valid_until: datetime | None = None

    @classmethod
    def of(
        cls, body: bytes, last_modified: datetime | None, valid_until: datetime | None = None
    ) -> Rendered:
        return cls(body, hashlib.sha256(body).hexdigest()[:32], last_modified, valid_until)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Feeds:
    """Renders and caches the feeds and CAP items; the handlers below serve them."""

    def __init__(self, service: Service, *, now: Callable[[], datetime] = _utcnow) -> None:
        self._publication: Publication = service.publication
        self._public_url = (service.settings.http.public_url or "").rstrip("/") or None
        self._sender = service.settings.alerts.sender
        self._now = now
        self._feeds: dict[tuple[int, str], Rendered] = {}
        self._indexes: dict[tuple[int, str], Rendered] = {}
        self._index_lock = asyncio.Lock()
        self._cap_items: OrderedDict[str, Rendered] = OrderedDict()

    def base_url(self, request: web.Request) -> str:
        """`http.public_url` when set (behind a proxy), else the URL the request came to."""
        return self._public_url or f"{request.scheme}://{request.host}"

    def feed_id(self, path: str) -> str:
        """A feed's permanent id: its canonical URL when `http.public_url` is set, else a UUID
        named by the CAP sender and the path (so it never depends on a Host header)."""
        if self._public_url:
            return self._public_url + path
        return uuid.uuid5(uuid.NAMESPACE_URL, f"broadcaster:{self._sender}:{path}").urn

    def feed(self, base: str) -> Rendered:
        key = (self._publication.version, base)
        rendered = self._feeds.get(key)
        if rendered is None:
            rendered = self._render_feed(base)
            _remember(self._feeds, key, rendered)
        return rendered

    async def index(self, base: str) -> Rendered:
        key = (self._publication.version, base)
        rendered = self._indexes.get(key)
        if rendered is not None and not _stale(rendered, self._now()):
            return rendered
        async with self._index_lock:  # one render (and one query) for concurrent misses
            key = (self._publication.version, base)
            rendered = self._indexes.get(key)
            if rendered is None or _stale(rendered, self._now()):
                rendered = await self._render_index(base)
                _remember(self._indexes, key, rendered)
        return rendered

    async def cap_item(self, alert_id: str) -> Rendered | None:
        """The alert's CAP XML once it is public; None otherwise (not cached: a pending alert
        may be approved)."""
        rendered = self._cap_items.get(alert_id)
        if rendered is not None:
            self._cap_items.move_to_end(alert_id)
            return rendered
        stored = await self._publication.alert(alert_id)
        if stored is None:
            return None
        try:
            xml = to_cap_xml(stored.alert)
        except CapError:  # text XML cannot carry, in an alert stored before it was refused
            xml = to_cap_xml(xml_safe_copy(stored.alert))
        rendered = Rendered.of(xml, stored.received_at)
        self._cap_items[alert_id] = rendered
        while len(self._cap_items) > _CAP_ITEMS_CACHED:
            self._cap_items.popitem(last=False)
        return rendered

    def _render_feed(self, base: str) -> Rendered:
        ring = self._publication.recent(_WHOLE_RING)
        events: list[PublishedEvent] = []
        seen: set[str] = set()
        for published in ring:
            if published.alert.id in seen or not _syndicated(published.alert):
                continue
            seen.add(published.alert.id)
            events.append(published)
            if len(events) == FEED_LIMIT:
                break
        newest = max((p.event.at for p in events), default=None)
        feed = self._feed_root(
            base,
            "/feed.atom",
            title="Public alerts",
            subtitle="Alerts, updates and cancellations as they are published, newest first.",
            updated=newest,
        )
        by_reference = _by_reference(ring)
        for published in events:
            stored, alert = published.alert, published.alert.alert
            replaced = _replaced(alert, by_reference)
            info = entry_info(alert, replaced)
            entry = atom_entry(
                feed, stored, info, title=entry_title(alert, replaced), at=published.event.at
            )
            atom_element(entry, "summary", summary_text(alert, info)).set("type", "text")
            atom_link(entry, "alternate", f"{base}/alerts/{stored.id}", "text/html")
            atom_link(entry, "alternate", f"{base}/alerts/{stored.id}.cap", CAP_TYPE)
            for category in info.categories if info else ():
                atom_category(entry, category.value)
        return Rendered.of(serialise(feed), newest)

    async def _render_index(self, base: str) -> Rendered:
        now = self._now()
        alerts = [
            a for a in await self._publication.active(include_exercises=False) if _syndicated(a)
        ]
        ring = self._publication.recent(_WHOLE_RING)
        public_at = {p.alert.id: p.event.at for p in reversed(ring)}
        # Changes so far: every event, every alert listed, every expiry that has passed.
        changes = [p.event.at for p in ring] + [a.received_at for a in alerts]
        changes += [e for p in ring if (e := p.alert.alert.expires) is not None and e <= now]
        last_modified = max(changes, default=None)
        expiries = [e for a in alerts if (e := a.alert.expires) is not None]
        feed = self._feed_root(
            base,
            "/cap/index.atom",
            title="Alerts in force (CAP 1.2 index)",
            subtitle="Each entry links to the full CAP 1.2 alert (application/cap+xml).",
            updated=last_modified,
            cap_prefix=True,
        )
        for stored in alerts:
            alert = stored.alert
            info = pick_info(alert, None)
            at = public_at.get(stored.id, stored.received_at)
            entry = atom_entry(feed, stored, info, title=entry_title(alert, None), at=at)
            summary = excerpt(summary_text(alert, info), INDEX_SUMMARY_CHARS)
            atom_element(entry, "summary", summary).set("type", "text")
            atom_link(entry, "alternate", f"{base}/alerts/{stored.id}.cap", CAP_TYPE)
            atom_link(entry, "alternate", f"{base}/alerts/{stored.id}", "text/html")
            for category in info.categories if info else ():
                atom_category(entry, category.value)
            cap_fields(entry, alert, info)
        return Rendered.of(serialise(feed), last_modified, min(expiries, default=None))

    def _feed_root(
        self,
        base: str,
        path: str,
        *,
        title: str,
        subtitle: str,
        updated: datetime | None,
        cap_prefix: bool = False,
    ) -> etree._Element:
        return feed_root(
            feed_id=self.feed_id(path),
            self_url=f"{base}{path}",
            home_url=f"{base}/",
            title=title,
            subtitle=subtitle,
            # An empty feed was last changed when it was rendered (it is cached per version).
            updated=updated or self._now(),
            author=self._sender,
            cap_prefix=cap_prefix,
        )


FEEDS = web.AppKey("feeds", Feeds)


def register_feeds(app: web.Application) -> None:
    """Route /feed.atom and /cap/index.atom (GET and HEAD); `create_app` calls this after
    setting the service on the app."""
    from adapters.http.app import SERVICE  # app.py imports this module: import at call time

    app[FEEDS] = Feeds(app[SERVICE])
    app.router.add_get("/feed.atom", get_feed)
    app.router.add_get("/cap/index.atom", get_cap_index)


async def get_feed(request: web.Request) -> web.Response:
    feeds = request.app[FEEDS]
    return conditional_response(request, feeds.feed(feeds.base_url(request)), ATOM_TYPE)


async def get_cap_index(request: web.Request) -> web.Response:
    feeds = request.app[FEEDS]
    return conditional_response(request, await feeds.index(feeds.base_url(request)), ATOM_TYPE)


async def get_cap_item(request: web.Request) -> web.Response:
    """`GET /alerts/{id}.cap` (routed in app.py): the public alert as CAP 1.2 XML."""
    rendered = await request.app[FEEDS].cap_item(request.match_info["id"])
    if rendered is None:
        return json_error(404, "not_found", "no such alert")
    return conditional_response(request, rendered, CAP_TYPE)


def conditional_response(
    request: web.Request, rendered: Rendered, content_type: str
) -> web.Response:
    """200 with the body, or 304 without it when the client's validators still match."""
    headers = {"Cache-Control": CACHE_CONTROL}
    if not_modified(request, rendered):
        response = web.Response(status=304, headers=headers)
    else:
        response = web.Response(
            body=rendered.body, headers=headers, content_type=content_type, charset="utf-8"
        )
    response.etag = rendered.etag
    if rendered.last_modified is not None:
        # Whole seconds, rounded down: aiohttp's setter rounds up, which can date the change
        # after the response (RFC 9110 §8.8.2.1 forbids a Last-Modified later than Date).
        response.headers["Last-Modified"] = format_datetime(
            rendered.last_modified.astimezone(UTC).replace(microsecond=0), usegmt=True
        )
    return response


def not_modified(request: web.Request, rendered: Rendered) -> bool:
    """RFC 9110 §13.2.2 for GET/HEAD: If-None-Match (weak comparison) when present, else
    If-Modified-Since against Last-Modified at one-second resolution."""
    tags = request.if_none_match
    if tags is not None:
        return any(tag.value in (ETAG_ANY, rendered.etag) for tag in tags)
    since = request.if_modified_since
    if since is None or rendered.last_modified is None:
        return False
    return rendered.last_modified.replace(microsecond=0) <= since


def _stale(rendered: Rendered, now: datetime) -> bool:
    return rendered.valid_until is not None and now >= rendered.valid_until


def _remember(
    cache: dict[tuple[int, str], Rendered], key: tuple[int, str], value: Rendered
) -> None:
    for old in [k for k in cache if k[0] != key[0]]:
        del cache[old]
    cache[key] = value
    while len(cache) > _RENDERS_CACHED:
        del cache[next(iter(cache))]


def _syndicated(stored: StoredAlert) -> bool:
    """Public (not a draft, not waiting for approval) and meant for the public (CAP scope)."""
    return is_public(stored) and stored.alert.scope is Scope.PUBLIC


def _by_reference(ring: Iterable[PublishedEvent]) -> dict[tuple[str, str, str], Alert]:
    return {reference_parts(p.alert.alert.reference_key): p.alert.alert for p in ring}


def _replaced(alert: Alert, by_reference: dict[tuple[str, str, str], Alert]) -> Alert | None:
    """The alert an Update/Cancel refers to, when it is among the recent events."""
    for reference in alert.references:
        found = by_reference.get(reference_parts(reference))
        if found is not None:
            return found
    return None
