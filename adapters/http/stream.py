"""`GET /v1/stream`: public alert events as Server-Sent Events.

Contract:
- Each event leaves as `id: <event seq>\\nevent: alert\\ndata: <json>\\n\\n`, the JSON being
  `public_alert_view`; in seq order, each once per connection. Events about alerts the public
  may not see (drafts) are skipped.
- Resume: `Last-Event-ID` (or `?last_event_id=` for clients that cannot set headers) replays
  exactly the events after it (`Publication.events_since`), then live ones. Without it the
  stream starts from now. An id beyond what this service has handed out (a reset database)
  also starts from now; a malformed one is a 400.
- A `: keep-alive` comment after every `keepalive_seconds` of silence keeps proxies from
  closing an idle stream, and is how a departed client is noticed (its write fails).
- One `StreamHub` per app follows the publication (`wait_beyond`, bounded by
  `asyncio.timeout`) and serialises each event once; every client is handed the same bytes.
  A client more than `MAX_BACKLOG` events behind is disconnected rather than buffered without
  bound: its browser reconnects with Last-Event-ID and misses nothing.
- `close()` (on server shutdown) ends every stream at once, so stopping never waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque

from aiohttp import web
from prometheus_client import Gauge
from pydantic_core import to_json

from adapters.http.views import public_alert_view
from broadcaster.errors import IntakeError, StoreError
from broadcaster.publication import Publication, PublishedEvent, is_public

log = logging.getLogger(__name__)

KEEPALIVE = b": keep-alive\n\n"
# Browsers wait this long before reconnecting a dropped stream.
RETRY = b"retry: 2000\n\n"
MAX_BACKLOG = 1000
FRAME_CACHE_SIZE = 4096
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event through, do not buffer the stream
}


class _Client:
    """One open stream: the frames handed to it and not yet written."""

    __slots__ = ("closed", "frames", "ready")

    def __init__(self) -> None:
        self.frames: deque[tuple[int, bytes]] = deque()
        self.ready = asyncio.Event()
        self.closed = False

    def push(self, frames: list[tuple[int, bytes]]) -> None:
        if self.closed:
            return
        self.frames.extend(frames)
        if len(self.frames) > MAX_BACKLOG:
            self.frames.clear()
            self.closed = True  # too slow: it resumes from its last id when it reconnects
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()


class StreamHub:
    """Follows the publication for every open stream of one app."""

    def __init__(
        self,
        publication: Publication,
        *,
        base_url: str,
        gauge: Gauge,
        keepalive_seconds: float = 15.0,
    ) -> None:
        self._publication = publication
        self._base_url = base_url
        self._gauge = gauge
        self.keepalive_seconds = keepalive_seconds
        self._clients: set[_Client] = set()
        self._frames: OrderedDict[int, bytes | None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def start(self) -> None:
        """Follow the publication (once; again if the follower died)."""
        if self._task is None or self._task.done():
            # Begin at the version of now, not of when the task first runs: a client that
            # subscribes meanwhile counts on every event after its own start.
            start = self._publication.version
            self._task = asyncio.create_task(self._follow(start), name="sse-hub")
            self._task.add_done_callback(_log_end)

    async def close(self) -> None:
        """End every stream and stop following."""
        self._closed = True
        for client in self._clients:
            client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def frame(self, published: PublishedEvent) -> bytes | None:
        """The event as SSE bytes (made once per seq), or None when the public may not see it."""
        seq = published.event.seq
        if seq in self._frames:
            return self._frames[seq]
        frame: bytes | None = None
        if is_public(published.alert):
            view = public_alert_view(published.alert, published.event.kind, self._base_url)
            frame = b"id: %d\nevent: alert\ndata: %s\n\n" % (seq, to_json(view))
        self._frames[seq] = frame
        if len(self._frames) > FRAME_CACHE_SIZE:
            self._frames.popitem(last=False)
        return frame

    async def _follow(self, last: int) -> None:
        while True:
            try:
                async with asyncio.timeout(self.keepalive_seconds):
                    await self._publication.wait_beyond(last)
            except TimeoutError:
                continue
            target = self._publication.version
            try:
                batch = await self._publication.events_since(last)
            except StoreError as exc:
                log.warning("stream could not read alert events: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:  # only events about alerts since deleted
                last = target
                continue
            frames = [(p.event.seq, f) for p in batch if (f := self.frame(p)) is not None]
            last = batch[-1].event.seq
            if frames:
                for client in self._clients:
                    client.push(frames)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """The whole life of one stream."""
        resume = _resume_id(request)
        if self._closed:
            raise web.HTTPServiceUnavailable(text="shutting down")
        self.start()
        client = _Client()
        # Subscribe before reading the backlog: whatever is handed out meanwhile is queued,
        # and the seq check below drops what the backlog already carried.
        self._clients.add(client)
        self._gauge.inc()
        response = web.StreamResponse(headers=HEADERS)
        try:
            await response.prepare(request)
            if request.method == "HEAD":  # headers only: a body would break the framing
                return response
            await response.write(RETRY)
            version = self._publication.version
            after = version if resume is None or resume > version else resume
            if after < version:
                after = await self._replay(response, after, version)
            await self._live(client, response, after)
        except (ConnectionResetError, StoreError):
            pass  # the client left, or the backlog could not be read: it reconnects
        finally:
            self._clients.discard(client)
            self._gauge.dec()
        return response

    async def _replay(self, response: web.StreamResponse, after: int, version: int) -> int:
        while after < version:
            batch = await self._publication.events_since(after)
            if not batch:
                break
            chunk = [f for p in batch if (f := self.frame(p)) is not None]
            if chunk:
                await response.write(b"".join(chunk))
            after = batch[-1].event.seq
        return after

    async def _live(self, client: _Client, response: web.StreamResponse, after: int) -> None:
        while not client.closed:
            if not client.frames:
                client.ready.clear()
                try:
                    async with asyncio.timeout(self.keepalive_seconds):
                        await client.ready.wait()
                except TimeoutError:
                    await response.write(KEEPALIVE)
                continue
            chunk = []
            while client.frames:
                seq, frame = client.frames.popleft()
                if seq > after:
                    chunk.append(frame)
                    after = seq
            if chunk:
                await response.write(b"".join(chunk))


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the event stream follower died", exc_info=task.exception())


def _resume_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise IntakeError("Last-Event-ID must be an event id", code="bad_last_event_id") from None
    if value < 0:
        raise IntakeError("Last-Event-ID must be an event id", code="bad_last_event_id")
    return value
