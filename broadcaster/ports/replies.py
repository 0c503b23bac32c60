"""Reply records and the reply-side collaborators: what the public sends back, how it is
triaged, and how a responder answers it.

A `Reply` comes in from a source (`ReplySource`), is triaged (`Triage` -> `TriageResult`),
stored (`NewReply` -> `StoredReply`) and handled by responders (`ReplyState`, `ReplyEvent`);
a `ReturnChannel` answers its sender. Imports no other port module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class ReplySource(StrEnum):
    """Where a reply from the public came in."""

    X = "x"
    SMS = "sms"
    WEB = "web"
    MQTT = "mqtt"


class ReplyState(StrEnum):
    """A responder's progress on a reply: every reply starts `new`."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class Reply:
    """A message from the public, as a source hands it over. `external_id` is the source's own
    id (X post id, Twilio MessageSid, MQTT payload id, a generated id for web tips): a reply is
    stored once per (source, external_id). `sender` is a phone number, an @handle or a tip's
    contact, None for an anonymous tip. `alert_id` is the alert it answers when the source
    says so (web tips, MQTT); otherwise the reply service links it. `in_reply_to` and
    `conversation_id` are the X posts it answers (its parent, its thread's first post)."""

    source: ReplySource
    external_id: str
    text: str
    received_at: datetime
    sender: str | None = None
    alert_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    media_url: str | None = None
    in_reply_to: str | None = None
    conversation_id: str | None = None


class TriageResult(Protocol):
    """What a classifier says about one text: categories (e.g. {"suspect", "hazard"}), a
    score in 0..1, and the entities it extracted (plates, places, times...; JSON-able)."""

    @property
    def categories(self) -> frozenset[str]: ...

    @property
    def score(self) -> float: ...

    @property
    def entities(self) -> object: ...


class Triage(Protocol):
    """A classifier: `classify(text)`, synchronous and pure."""

    def __call__(self, text: str, /) -> TriageResult: ...


@dataclass(frozen=True, slots=True)
class NewReply:
    """A linked and triaged reply, ready to be stored. `entities` is JSON-able."""

    reply: Reply
    categories: tuple[str, ...] = ()
    score: float | None = None
    entities: object = None
    # The id of the first reply of its near-duplicate cluster (None: in none yet).
    cluster_id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredReply:
    """A reply as stored. `id` orders replies by arrival; `state`, `state_by`, `state_at` are
    a responder's handling of it; `cluster_id` groups near-identical reports."""

    id: int
    source: ReplySource
    external_id: str
    text: str
    received_at: datetime
    sender: str | None
    alert_id: str | None
    lat: float | None
    lon: float | None
    media_url: str | None
    in_reply_to: str | None
    categories: tuple[str, ...]
    score: float | None
    entities: object
    state: ReplyState = ReplyState.NEW
    state_by: str | None = None
    state_at: datetime | None = None
    cluster_id: int | None = None


class ReplyEventKind(StrEnum):
    """What a reply event tells responders: a new reply, or a change to one (state, cluster)."""

    CREATED = "created"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """A reply was stored or changed. `seq` only grows within one store (the responder
    stream's event id); it may have gaps."""

    seq: int
    reply_id: int
    kind: ReplyEventKind
    at: datetime


class ReturnChannel(Protocol):
    """Answers a reply's sender on the channel the reply came from (SMS, X)."""

    async def answer(self, reply: StoredReply, text: str) -> str:
        """Send `text` to the reply's sender; returns the provider's reference. Raises
        PayloadError when the text cannot go on this channel (too long), else
        TransientDeliveryError / PermanentDeliveryError as a channel's send does."""
        ...


@dataclass(frozen=True, slots=True)
class ReplyInsertResult:
    """`created` is False when (source, external_id) was already stored: `reply` is then the
    earlier one, unchanged."""

    reply: StoredReply
    created: bool
