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

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from broadcaster.event_follower import EventFollower
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


class ReplyFeed(EventFollower):
    events_name = "reply events"

    def __init__(
        self,
        store: Store,
        *,
        poll_seconds: float = 0.25,
        gap_timeout: float = 2.0,
        ring_size: int = 1000,
    ) -> None:
        super().__init__(poll_seconds=poll_seconds, gap_timeout=gap_timeout)
        self._store = store
        self._ring: deque[FeedItem] = deque(maxlen=ring_size)

    async def start(self) -> None:
        """Begin after the events already stored."""
        self._version = await self._store.last_reply_event_seq()
        self._started = True

    async def poll(self) -> list[FeedItem]:
        """Hand out the events that follow `version`, in order; returns them."""
        events = await self._store.reply_events_after(self._version, 1000)
        ready = events[: self._ready_count([e.seq for e in events])]
        items = await self._resolve(ready)
        self._ring.extend(items)
        self._advance(ready[-1].seq if ready else None, events[-1].seq if events else None)
        return items

    async def _resolve(self, events: Sequence[ReplyEvent]) -> list[FeedItem]:
        if not events:
            return []
        # One query for the whole poll: a busy feed resolves hundreds of events per poll.
        ids = list(dict.fromkeys(e.reply_id for e in events))
        replies = {r.id: r for r in await self._store.get_replies(ids)}
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
            # The ring is in seq order and a stream asks for its last few: walk back from
            # the newest instead of scanning the whole ring on every wake.
            newer: list[FeedItem] = []
            for item in reversed(self._ring):
                if item.event.seq <= seq:
                    break
                newer.append(item)
            items = newer[::-1][:limit]
            reached = items[-1].event.seq if len(items) == limit else self._version
            return items, reached
        events = await self._store.reply_events_after(seq, limit)
        events = [e for e in events if e.seq <= self._version]
        if not events:
            return [], self._version
        return await self._resolve(events), events[-1].seq
