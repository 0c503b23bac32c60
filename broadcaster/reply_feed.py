"""What responders follow: new replies and changes to them, in order, from `reply_events`.

Contract (as `Publication` for alert events):
- Events come from the store's `reply_events` (written by triggers in the transaction that
  stored or changed the reply). `run()` polls every `poll_seconds`; `wake()` (called after a
  local commit) makes the next poll immediate. Another process's changes are seen within
  `poll_seconds`, so several processes can share one database and each serve its streams.
- Each event is handed out with the reply as it is when the event is read, and the size of
  its cluster; an event whose reply is gone (purged) is skipped.
- Strictly in seq order, each once. A missing seq (a PostgreSQL identity not yet committed)
  holds later events back until it fills or `gap_timeout` passes.
- `version` is the seq of the last event handed out; `events_since(seq)` returns what followed
  (from memory for the recent `ring_size`, else from the store); `wait_beyond(seq)` sleeps
  until there is more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from broadcaster.errors import StoreError
from broadcaster.ports import ReplyEvent, Store, StoredReply

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A reply event with the reply it is about and how many replies share its cluster."""

    event: ReplyEvent
    reply: StoredReply
    cluster_count: int


async def cluster_sizes(store: Store, replies: Sequence[StoredReply]) -> dict[int, int]:
    """cluster id -> size, for the clusters of `replies`."""
    ids = [r.cluster_id for r in replies if r.cluster_id is not None]
    return await store.cluster_counts(ids) if ids else {}


def cluster_count(reply: StoredReply, sizes: dict[int, int]) -> int:
    return 1 if reply.cluster_id is None else max(1, sizes.get(reply.cluster_id, 1))


class ReplyFeed:
    def __init__(
        self,
        store: Store,
        *,
        poll_seconds: float = 0.25,
        gap_timeout: float = 2.0,
        ring_size: int = 1000,
    ) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._gap_timeout = gap_timeout
        self._ring: deque[FeedItem] = deque(maxlen=ring_size)
        self._version = 0
        self._gap_since: float | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._started = False

    @property
    def version(self) -> int:
        return self._version

    async def start(self) -> None:
        """Begin after the events already stored."""
        self._version = await self._store.last_reply_event_seq()
        self._started = True

    def wake(self, *_: object) -> None:
        """Poll now: something was committed here."""
        self._wake.set()

    async def run(self) -> None:
        """Poll for new events until cancelled; a store error is logged and retried."""
        if not self._started:
            await self.start()
        while True:
            try:
                await self.poll()
            except StoreError as exc:
                log.warning("could not read reply events: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            self._wake.clear()

    async def poll(self) -> list[FeedItem]:
        """Hand out the events that follow `version`, in order; returns them."""
        events = await self._store.reply_events_after(self._version, 1000)
        ready: list[ReplyEvent] = []
        expected = self._version + 1
        for event in events:
            if event.seq != expected and not self._gap_expired():
                break  # hold back until the missing seq commits or is given up on
            ready.append(event)
            expected = event.seq + 1
        if ready:
            self._gap_since = None
        items = await self._resolve(ready)
        if ready:
            self._version = ready[-1].seq
        if events and events[-1].seq > self._version:
            if self._gap_since is None:
                self._gap_since = time.monotonic()
        else:
            self._gap_since = None
        if items:
            self._ring.extend(items)
        if ready:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
        return items

    def _gap_expired(self) -> bool:
        return (
            self._gap_since is not None and time.monotonic() - self._gap_since >= self._gap_timeout
        )

    async def _resolve(self, events: Sequence[ReplyEvent]) -> list[FeedItem]:
        replies: dict[int, StoredReply] = {}
        for reply_id in dict.fromkeys(e.reply_id for e in events):
            stored = await self._store.get_reply(reply_id)
            if stored is not None:
                replies[reply_id] = stored
        sizes = await cluster_sizes(self._store, list(replies.values()))
        return [
            FeedItem(e, replies[e.reply_id], cluster_count(replies[e.reply_id], sizes))
            for e in events
            if e.reply_id in replies
        ]

    async def events_since(self, seq: int, limit: int = 1000) -> tuple[list[FeedItem], int]:
        """Events after `seq` up to `version`, oldest first, and the seq they reach (events
        of purged replies are left out, so it may lie beyond the last item)."""
        if seq >= self._version:
            return [], seq
        if self._ring and self._ring[0].event.seq <= seq + 1:
            items = [i for i in self._ring if seq < i.event.seq][:limit]
            reached = items[-1].event.seq if len(items) == limit else self._version
            return items, reached
        events = await self._store.reply_events_after(seq, limit)
        events = [e for e in events if e.seq <= self._version]
        if not events:
            return [], self._version
        return await self._resolve(events), events[-1].seq

    async def wait_beyond(self, seq: int) -> None:
        """Return once `version` > `seq` (callers bound the wait with `asyncio.timeout`)."""
        while self._version <= seq:
            await self._changed.wait()
