"""The public web: alerts in force (`/`), one alert (`/alerts/{id}`), their static files and
the public event stream (`/v1/stream`, in `stream.py`).

Contract:
- Pages are rendered on the server (jinja2, autoescaped) and work without JavaScript; with it,
  `static/app.js` follows `/v1/stream` and swaps in each page's live fragment.
- `/` lists `Publication.active()`: most severe, then newest. Exercise and Test alerts only
  with `?exercises=1`, each marked in words. `?lang=` picks each alert's info block
  (`pick_info`); `?fragment=list` answers only the list's content.
- `/alerts/{id}` shows a public alert with its history (`Publication.history`);
  `?fragment=history` answers only its status-and-history section. An unknown id, an alert
  waiting for approval or a draft is an HTML 404.
- A rendered page is cached per (publication version, page, parameters) until the earliest
  expiry it shows, in a bounded LRU, with an ETag (version + digest); If-None-Match gives 304.
  Every page is `Cache-Control: no-cache`: browsers revalidate, cheaply.
- Nothing inline: no script or style attributes or elements, so a strict CSP can follow.

What a page shows of an alert (cards, history entries, URLs) is built in `alert_cards.py`;
the templates are loaded through `templating.py`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.http.alert_cards import (
    HistoryEntry,
    alert_url,
    card,
    history_headline,
    index_url,
    language_of,
    language_param,
    safe_web_link,
)
from adapters.http.outline import Outline, area_outline
from adapters.http.stream import StreamHub
from adapters.http.templating import HTML_TYPE, html_templates

# Re-exported: both lived here before templating.py, and are imported from here.
from adapters.http.templating import When as When
from adapters.http.templating import when as when
from adapters.http.views import ALERT_ID
from alerts.models import MsgType, Status
from broadcaster.ports import StoredAlert
from broadcaster.publication import Publication
from broadcaster.service import Service

HERE = Path(__file__).parent
STATIC = HERE / "static"
CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    etag: str
    until: datetime | None
    status: int = 200


class PageCache:
    """Rendered pages, least recently used out first; an entry lapses at its `until`."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, Rendered] = OrderedDict()

    def get(self, key: Hashable, now: datetime) -> Rendered | None:
        page = self._entries.get(key)
        if page is None:
            return None
        if page.until is not None and now >= page.until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return page

    def put(self, key: Hashable, page: Rendered) -> None:
        self._entries[key] = page
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _etag(version: int, body: bytes) -> str:
    return f'"v{version}-{hashlib.blake2b(body, digest_size=8).hexdigest()}"'


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


class PublicWeb:
    """The public pages of one app: templates, the page cache and the event stream."""

    def __init__(self, service: Service) -> None:
        self.publication: Publication = service.publication
        self.cache = PageCache()
        self._templates = html_templates("index", "_list", "alert", "_history", "not_found")
        self.hub = StreamHub(
            service.publication,
            base_url=service.settings.http.base_url,
            gauge=service.metrics.sse_clients,
            keepalive_seconds=service.settings.http.sse_keepalive_seconds,
        )

    def _render(self, template: str, version: int, until: datetime | None, **ctx: Any) -> Rendered:
        body = self._templates[template].render(**ctx).encode()
        return Rendered(body=body, etag=_etag(version, body), until=until)

    @staticmethod
    def _respond(request: web.Request, page: Rendered) -> web.Response:
        headers = {"ETag": page.etag, "Cache-Control": "no-cache"}
        match = request.headers.get("If-None-Match")
        if match and page.status == 200 and _etag_matches(match, page.etag):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = HTML_TYPE
        return web.Response(body=page.body, status=page.status, headers=headers)

    async def index(self, request: web.Request) -> web.Response:
        query = request.query
        lang = language_param(query.get("lang"))
        exercises = query.get("exercises") == "1"
        fragment = query.get("fragment") == "list"
        now = datetime.now(UTC)
        version = self.publication.version
        key = ("index", version, lang, exercises, fragment)
        page = self.cache.get(key, now)
        if page is None:
            alerts = await self.publication.active(include_exercises=exercises)
            cards = [card(a, lang, lambda tag: index_url(tag, exercises), now) for a in alerts]
            expiries = [a.alert.expires for a in alerts if a.alert.expires is not None]
            page = self._render(
                "_list" if fragment else "index",
                version,
                min(expiries) if expiries else None,
                cards=cards,
                exercises=exercises,
                live_url=index_url(lang, exercises, "list"),
                toggle_url=index_url(lang, not exercises),
            )
            self.cache.put(key, page)
        return self._respond(request, page)

    async def alert(self, request: web.Request) -> web.Response:
        alert_id = request.match_info["id"]
        lang = language_param(request.query.get("lang"))
        fragment = request.query.get("fragment") == "history"
        now = datetime.now(UTC)
        version = self.publication.version
        key = ("alert", version, alert_id, lang, fragment)
        page = self.cache.get(key, now)
        if page is None:
            stored = await self.publication.alert(alert_id)
            if stored is None:
                return self.not_found()
            chain = await self.publication.history(alert_id)
            page = self._render_alert(stored, chain, lang, fragment, version, now)
            self.cache.put(key, page)
        return self._respond(request, page)

    def _render_alert(
        self,
        stored: StoredAlert,
        chain: Sequence[StoredAlert],
        lang: str | None,
        fragment: bool,
        version: int,
        now: datetime,
    ) -> Rendered:
        this = card(stored, lang, lambda tag: alert_url(stored.id, tag), now)
        chain = chain or [stored]
        cancel = next((a for a in chain if a.alert.msg_type is MsgType.CANCEL), None)
        latest = chain[-1]
        if cancel is not None:
            state = "cancelled"
        elif latest.seq > stored.seq:
            state = "replaced"
        elif this.expired:
            state = "expired"
        else:
            state = "in_force"
        history = [
            HistoryEntry(
                id=a.id,
                url=alert_url(a.id, lang),
                msg_type=a.alert.msg_type.value,
                sent=when(a.alert.sent),
                headline=history_headline(a, lang),
                language=language_of(a, lang),
                current=a.id == stored.id,
            )
            for a in chain
        ]
        info = this.info
        outline: Outline | None = area_outline(info.areas) if info else None
        expiry = stored.alert.expires
        return self._render(
            "_history" if fragment else "alert",
            version,
            expiry if expiry is not None and expiry > now else None,
            alert=this,
            state=state,
            cancel=when(cancel.alert.sent) if cancel else None,
            latest_url=alert_url(latest.id, lang),
            history=history,
            issued=when(chain[0].alert.sent),
            onset=when(info.onset) if info else None,
            outline=outline,
            web_url=safe_web_link(info.web) if info else None,
            live_url=alert_url(stored.id, lang, "history"),
            exercise=stored.alert.status in (Status.EXERCISE, Status.TEST),
        )

    def not_found(self) -> web.Response:
        body = self._templates["not_found"].render().encode()
        return web.Response(
            body=body, status=404, headers={"Content-Type": HTML_TYPE, "Cache-Control": "no-cache"}
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        return await self.hub.serve(request)


PUBLIC_WEB = web.AppKey("public_web", PublicWeb)


def register_pages(app: web.Application) -> None:
    """Add the public pages, static files and `/v1/stream` to an app built by `create_app`."""
    # Imported here: app.py imports this module, and its SERVICE key is set before this runs.
    from adapters.http.app import SERVICE

    public = PublicWeb(app[SERVICE])
    app[PUBLIC_WEB] = public
    app.router.add_get("/", public.index)
    # Ids have no dot, so `/alerts/{id}.cap` is never taken for a page.
    app.router.add_get("/alerts/{id:" + ALERT_ID + "}", public.alert)
    app.router.add_get("/v1/stream", public.stream)
    app.router.add_static("/static/", STATIC)

    async def close_streams(_app: web.Application) -> None:
        await public.hub.close()

    app.on_shutdown.append(close_streams)
