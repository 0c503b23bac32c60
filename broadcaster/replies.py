"""Listening: every reply from the public is stored once, linked to the alert it answers,
triaged, and counted when it answers a poll.

Contract of `ReplyService.ingest(reply)`:
- Once: a reply is unique on (source, external_id). A repeat (a redelivered MQTT message, a
  Twilio webhook retry, a mention seen on two pages) changes nothing and returns the stored
  reply with `created=False`; it is neither triaged nor counted again.
- Linking, for a reply that does not name its alert: X -> the alert whose X delivery posted
  the post it replies to (`in_reply_to`), else its thread's first post (`conversation_id`);
  SMS -> the newest alert sent (or delivered) by SMS to that number. A reply that names an
  alert we do not have (web, MQTT) is stored unlinked rather than refused: a tip matters
  more than its reference.
- Triage: `triage(text)` (the `Triage` port; `classify_nothing` when none is wired) gives
  categories, a score and entities, stored with the reply. A classifier that raises leaves
  the reply stored untriaged (logged): a bug there must not lose a report.
- Polls: an SMS or X reply linked to an alert that offers responses (`Alert.responses`) and
  whose text, trimmed (and without leading @handles), is one of its keys or labels
  (case-insensitive) is that sender's vote on it. One vote per sender per alert: the latest
  (by received_at) wins.
- Clusters: with a clusterer, a near-duplicate of an earlier reply is stored in its cluster
  (`broadcaster.clusters`).
- Storable: a NUL (U+0000) or a lone surrogate in any text of the reply is stored as U+FFFD
  (`broadcaster.storable`). PostgreSQL cannot hold one, and a report is never refused over an
  invisible character; both stores then hold the same reply.
- Metrics: `broadcaster_replies_total{source, category}` per stored reply and category
  ("none" without one); `broadcaster_triage_duration_seconds`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from prometheus_client import Counter

from broadcaster.clusters import Clusterer, StoredClusters
from broadcaster.metrics import Metrics
from broadcaster.ports import (
    NewReply,
    Reply,
    ReplySource,
    Store,
    StoredReply,
    Triage,
    TriageResult,
)
from broadcaster.storable import storable_text

log = logging.getLogger(__name__)

__all__ = [
    "IngestResult",
    "Reply",
    "ReplyService",
    "classify_nothing",
    "poll_choice",
    "storable",
]

# Sources whose senders can vote: a phone number or an account is one person, a tip is not.
VOTING_SOURCES = frozenset({ReplySource.SMS, ReplySource.X})
_LEADING_HANDLES = re.compile(r"^(?:@\w+\s*)+")
_TRAILING_PUNCTUATION = " \t\r\n.!,;:"


def storable(reply: Reply) -> Reply:
    """`reply` with its text fields as `storable_text` makes them (see the module
    docstring)."""
    changes: dict[str, Any] = {}
    for f in fields(reply):
        value = getattr(reply, f.name)
        if isinstance(value, str):
            cleaned = storable_text(value)
            if cleaned is not value:
                changes[f.name] = cleaned
    return replace(reply, **changes) if changes else reply


@dataclass(frozen=True, slots=True)
class NoCategories:
    """What `classify_nothing` says about any text."""

    categories: frozenset[str] = frozenset()
    score: float = 0.0
    entities: dict[str, object] = field(default_factory=dict)


def classify_nothing(text: str, /) -> TriageResult:
    """The triage used when no classifier is installed: no category, score 0."""
    return NoCategories()


@dataclass(frozen=True, slots=True)
class IngestResult:
    """`vote` is the poll option key this reply voted for, when it is one."""

    reply: StoredReply
    created: bool
    vote: str | None = None


def poll_choice(text: str, options: Sequence[tuple[str, str]]) -> str | None:
    """The key of the option `text` chooses: the trimmed text (leading @handles and trailing
    punctuation removed) equal to a key or a label, ignoring case; None otherwise."""
    said = _LEADING_HANDLES.sub("", text.strip()).strip(_TRAILING_PUNCTUATION).casefold()
    if not said:
        return None
    for key, label in options:
        if said in (key.casefold(), label.casefold()):
            return key
    return None


class ReplyService:
    def __init__(
        self,
        store: Store,
        triage: Triage = classify_nothing,
        *,
        metrics: Metrics | None = None,
        on_stored: Callable[[StoredReply], object] | None = None,
        clusterer: Clusterer | None = None,
    ) -> None:
        self._store = store
        self.triage = triage
        self._metrics = metrics or Metrics()
        self._on_stored = on_stored
        self._clusters = StoredClusters(clusterer, store) if clusterer is not None else None
        self._children: dict[tuple[str, str], Counter] = {}

    async def ingest(self, reply: Reply) -> IngestResult:
        reply = storable(reply)
        if reply.source is ReplySource.SMS and reply.alert_id is None:
            # An inbound SMS asks the store two things before triage: one round trip.
            existing, alert_id = await self._store.find_reply_and_sms_alert(
                reply.source, reply.external_id, reply.sender or None
            )
        else:
            existing = await self._store.find_reply(reply.source, reply.external_id)
            alert_id = None if existing is not None else await self._link(reply)
        if existing is not None:
            return IngestResult(existing, created=False)
        linked = reply if alert_id == reply.alert_id else replace(reply, alert_id=alert_id)
        categories, score, entities = self._triaged(linked)
        placement = None
        if self._clusters is not None:
            placement = await self._clusters.place(linked.text, entities)
        cluster_id = None if placement is None else placement.cluster_id
        new = NewReply(linked, categories, score, entities, cluster_id)
        inserted = await self._store.insert_reply(new)
        stored = inserted.reply
        if not inserted.created:  # a concurrent copy won the insert
            return IngestResult(stored, created=False)
        if self._clusters is not None and placement is not None:
            self._clusters.stored(placement, stored)
        for category in stored.categories or ("none",):
            self._counter(stored.source.value, category).inc()
        vote = await self._vote(stored)
        if self._on_stored is not None:
            self._on_stored(stored)
        return IngestResult(stored, created=True, vote=vote)

    def _counter(self, source: str, category: str) -> Counter:
        """The labelled child of `broadcaster_replies_total`, looked up once per label pair
        (prometheus_client's `labels()` takes a lock and validates on every call)."""
        key = (source, category)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metrics.replies.labels(source, category)
        return child

    async def _link(self, reply: Reply) -> str | None:
        if reply.alert_id is not None:
            known = await self._store.get_alert(reply.alert_id)
            return None if known is None else known.id
        if reply.source is ReplySource.X:
            posts = [p for p in (reply.in_reply_to, reply.conversation_id) if p]
            return await self._store.alert_for_x_posts(posts) if posts else None
        if reply.source is ReplySource.SMS and reply.sender:
            return await self._store.last_sms_alert(reply.sender)
        return None

    def _triaged(self, reply: Reply) -> tuple[tuple[str, ...], float | None, object]:
        """(categories, score, entities) as stored."""
        started = time.perf_counter()
        try:
            result = self.triage(reply.text)
            categories = tuple(sorted({str(c) for c in result.categories}))
            score: float | None = float(result.score)
            entities: object = result.entities
        except Exception:
            log.exception("triage failed for %s reply %s", reply.source, reply.external_id)
            categories, score, entities = (), None, None
        finally:
            self._metrics.triage_seconds.observe(time.perf_counter() - started)
        return categories, score, entities

    async def _vote(self, stored: StoredReply) -> str | None:
        if stored.source not in VOTING_SOURCES or not stored.alert_id or not stored.sender:
            return None
        alert = await self._store.get_alert(stored.alert_id)
        if alert is None or not alert.alert.responses:
            return None
        key = poll_choice(stored.text, alert.alert.responses)
        if key is None:
            return None
        await self._store.record_poll_vote(
            stored.alert_id, stored.sender, key, stored.id, stored.received_at
        )
        return key
