"""A reply as the responders' dashboard shows it: a `Row` with its text cut into segments
that mark the entities triage found, those entities grouped by kind, and words for its
source.

Contract:
- Pure functions of the stored reply (its cluster count, the alert it answers): no I/O,
  nothing cached.
- `highlight` returns segments whose texts, joined, are exactly the reply's text. Only the
  kinds in `HIGHLIGHTED` are marked, each value at its first case-insensitive occurrence; of
  marks starting at the same place the longest wins, and a mark overlapping an earlier one
  is dropped.
- A media URL is kept only when it is http(s), so the page never links anything else.
- `row` shows each character HTML may not carry as text (C0 controls but tab, LF and CR;
  DEL and C1 controls; U+FFFE, U+FFFF) as U+FFFD, so the page stays well-formed and the
  responder still sees that something was there; the stored reply keeps what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.http.templating import When, when
from alerts.models import NOT_XML_CODEPOINTS
from broadcaster.ports import ReplySource, StoredAlert, StoredReply
from broadcaster.replies import VOTING_SOURCES, poll_choice

_NOT_HTML = dict.fromkeys([*NOT_XML_CODEPOINTS, *range(0x7F, 0xA0)], "\ufffd")

HIGHLIGHTED = ("plates", "vehicles", "persons", "places", "times", "weapons", "links", "media")
KIND_NAMES = {
    "plates": "Plates",
    "vehicles": "Vehicles",
    "persons": "Persons",
    "places": "Places",
    "times": "Times",
    "weapons": "Weapons",
    "links": "Links",
    "media": "Media",
    "coordinates": "Coordinates",
}
SOURCE_NAMES = {"x": "X", "sms": "SMS", "web": "Web tip", "mqtt": "MQTT"}


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class EntityGroup:
    kind: str
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Row:
    """One reply as the dashboard shows it."""

    id: int
    source: str
    source_name: str
    sender: str | None
    segments: tuple[Segment, ...]
    received: When | None
    alert_id: str | None
    # The answered alert's headline (else its event), when the page looked it up.
    alert_title: str | None
    # The poll option this reply chose ("1 SAFE"), when it is a vote that was counted.
    vote: str | None
    categories: tuple[str, ...]
    score: str | None
    entities: tuple[EntityGroup, ...]
    cluster_count: int
    cluster_id: int | None
    state: str
    state_by: str | None
    state_at: When | None
    location: str | None
    media_url: str | None
    answerable: bool


def entity_groups(entities: object) -> tuple[EntityGroup, ...]:
    """The non-empty entity kinds of a reply, as text."""
    if not isinstance(entities, dict):
        return ()
    groups = []
    for kind, values in entities.items():
        if not isinstance(values, list) or not values:
            continue
        shown = tuple(
            ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            for value in values
        )
        groups.append(EntityGroup(str(kind), KIND_NAMES.get(str(kind), str(kind).title()), shown))
    return tuple(groups)


def highlight(text: str, entities: object) -> tuple[Segment, ...]:
    """`text` cut into plain and entity segments (first occurrence of each entity, longest
    first where they overlap, case-insensitive)."""
    spans: list[tuple[int, int, str]] = []
    if isinstance(entities, dict):
        lowered = text.lower()
        for kind in HIGHLIGHTED:
            for value in entities.get(kind) or ():
                if not isinstance(value, str) or not value.strip():
                    continue
                start = lowered.find(value.lower())
                if start >= 0:
                    spans.append((start, start + len(value), kind))
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    segments: list[Segment] = []
    position = 0
    for start, end, kind in spans:
        if start < position:
            continue  # overlaps one already marked
        if start > position:
            segments.append(Segment(text[position:start]))
        segments.append(Segment(text[start:end], kind))
        position = end
    if position < len(text):
        segments.append(Segment(text[position:]))
    return tuple(segments)


def alert_title(stored: StoredAlert) -> str:
    """What the desk calls an alert a reply answers: its first headline, else its event."""
    info = stored.alert.infos[0] if stored.alert.infos else None
    title = (info.headline or info.event) if info else stored.alert.identifier
    return title.translate(_NOT_HTML)


def answered(reply: StoredReply, alerts: dict[str, StoredAlert]) -> tuple[str | None, str | None]:
    """(title, vote) of the alert `reply` answers, from the page's alerts by id: the alert's
    title, and "key label" of the poll option the reply chose when the reply service counts
    it as a vote (an SMS or X reply with a sender)."""
    alert = alerts.get(reply.alert_id or "")
    if alert is None:
        return None, None
    vote = None
    options = alert.alert.responses
    if options and reply.source in VOTING_SOURCES and reply.sender:
        key = poll_choice(reply.text, options)
        vote = next((f"{k} {label}" for k, label in options if k == key), None)
    return alert_title(alert), vote


def row(
    reply: StoredReply, cluster_count: int, title: str | None = None, vote: str | None = None
) -> Row:
    location = None
    if reply.lat is not None and reply.lon is not None:
        location = f"{reply.lat:.5f}, {reply.lon:.5f}"
    media = reply.media_url
    if media and not media.lower().startswith(("https://", "http://")):
        media = None
    return Row(
        id=reply.id,
        source=reply.source.value,
        source_name=SOURCE_NAMES.get(reply.source.value, reply.source.value),
        sender=reply.sender.translate(_NOT_HTML) if reply.sender else reply.sender,
        segments=highlight(reply.text.translate(_NOT_HTML), reply.entities),
        received=when(reply.received_at),
        alert_id=reply.alert_id,
        alert_title=title,
        vote=vote,
        categories=reply.categories,
        score=None if reply.score is None else f"{reply.score:.2f}",
        entities=entity_groups(reply.entities),
        cluster_count=cluster_count,
        cluster_id=reply.cluster_id,
        state=reply.state.value,
        state_by=reply.state_by,
        state_at=when(reply.state_at),
        location=location,
        media_url=media,
        answerable=reply.source in (ReplySource.SMS, ReplySource.X) and bool(reply.sender),
    )
