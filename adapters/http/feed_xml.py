"""The XML of the feeds (`feeds.py` decides what goes in them): Atom 1.0 (RFC 4287) elements,
the CAP 1.2 fields an index entry repeats, and the words of entry titles and summaries.

Contract:
- Every builder adds elements through lxml (text and attributes escaped, never concatenated)
  and strips the characters XML 1.0 cannot carry, so no alert text can break a feed.
- `feed_root` and `atom_entry` lay out a feed and an entry in a fixed element order;
  `cap_fields` adds, in the CAP 1.2 namespace, the fields pollers filter on (NWS index
  layout), skipping empty ones. `serialise` gives the bytes served: UTF-8, with the XML
  declaration, pretty-printed.
- `xml_safe_copy(alert)` is the alert with those characters stripped from every text, for
  the CAP item of an alert stored before the model refused them.
- `entry_id`, `entry_title`, `summary_text` and `atom_time` are pure functions of their
  arguments (same alert, same text), so a cached render and a fresh one agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar, cast

from lxml import etree
from pydantic import BaseModel

from alerts.cap import CAP12_NS
from alerts.models import (
    NOT_XML_CODEPOINTS,
    Alert,
    Info,
    MsgType,
    Severity,
    Status,
    format_cap_time,
)
from alerts.render import pick_info
from broadcaster.ports import StoredAlert

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml"
CAP_TYPE = "application/cap+xml"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_STATUS_MARKERS = {
    Status.EXERCISE: "[EXERCISE] ",
    Status.TEST: "[TEST] ",
    Status.SYSTEM: "[SYSTEM] ",
}
_MSG_TYPE_PREFIXES = {MsgType.UPDATE: "Update: ", MsgType.CANCEL: "Cancelled: "}
# Characters XML 1.0 cannot carry; a JSON alert may contain them, a feed must not break on them.
_NOT_XML = dict.fromkeys(NOT_XML_CODEPOINTS)
_Model = TypeVar("_Model", bound=BaseModel)


def xml_safe_copy(model: _Model) -> _Model:
    """`model` (an Alert, or any part of one) with the characters XML cannot carry stripped
    from every text, nested models and tuples included. Only alerts accepted before the
    model refused such text need it (the model's validation now keeps new ones out)."""

    def clean(value: object) -> object:
        if isinstance(value, str):
            return value.translate(_NOT_XML)
        if isinstance(value, BaseModel):
            return xml_safe_copy(value)
        if isinstance(value, tuple):
            return tuple(clean(v) for v in value)
        return value

    return model.model_copy(update={k: clean(v) for k, v in model.__dict__.items()})


def feed_root(
    *,
    feed_id: str,
    self_url: str,
    home_url: str,
    title: str,
    subtitle: str,
    updated: datetime,
    author: str,
    cap_prefix: bool = False,
) -> etree._Element:
    """An Atom `<feed>` with its metadata and no entries; `cap_prefix` declares `cap:`."""
    nsmap: dict[str | None, str] = {None: ATOM_NS}
    if cap_prefix:
        nsmap["cap"] = CAP12_NS
    # lxml spells the default namespace with a None key, which lxml-stubs do not admit.
    feed = etree.Element(f"{{{ATOM_NS}}}feed", nsmap=cast("dict[str, str]", nsmap))
    atom_element(feed, "id", feed_id)
    atom_element(feed, "title", title)
    atom_element(feed, "subtitle", subtitle)
    atom_element(feed, "updated", atom_time(updated))
    author_element = atom_element(feed, "author", None)
    atom_element(author_element, "name", author)
    atom_link(feed, "self", self_url, ATOM_TYPE)
    atom_link(feed, "alternate", home_url, "text/html")
    atom_element(feed, "generator", "broadcaster")
    return feed


def atom_entry(
    feed: etree._Element, stored: StoredAlert, info: Info | None, *, title: str, at: datetime
) -> etree._Element:
    """An `<entry>` for the alert (id, title, dates, author); the caller adds the rest."""
    entry = atom_element(feed, "entry", None)
    if info is not None:
        entry.set(_XML_LANG, info.language)
    atom_element(entry, "id", entry_id(stored.id))
    atom_element(entry, "title", title).set("type", "text")
    atom_element(entry, "updated", atom_time(at))
    atom_element(entry, "published", atom_time(at))
    author = atom_element(entry, "author", None)
    atom_element(author, "name", (info.sender_name if info else None) or stored.alert.sender)
    return entry


def entry_id(alert_id: str) -> str:
    """A permanent IRI for the alert: `urn:uuid:` of its id (ids are UUIDs), else a UUID
    named by it."""
    try:
        return uuid.UUID(hex=alert_id).urn
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"broadcaster:alert:{alert_id}").urn


def entry_title(alert: Alert, replaced: Alert | None) -> str:
    """`[EXERCISE] Update: Severe: <headline>`: a status marker for anything not Actual, the
    message type for Update/Cancel, the severity (unless Unknown), the headline (or event).
    A Cancel without info blocks is titled after the alert it cancels, when known."""
    marker = _STATUS_MARKERS.get(alert.status, "")
    prefix = _MSG_TYPE_PREFIXES.get(alert.msg_type, "")
    info = entry_info(alert, replaced)
    if info is None:
        return f"{marker}{prefix}alert {alert.identifier} from {alert.sender}"
    subject = _clean(info.headline) or _clean(info.event)
    if info.severity is not Severity.UNKNOWN:
        subject = f"{info.severity.value}: {subject}"
    return marker + prefix + subject


def entry_info(alert: Alert, replaced: Alert | None) -> Info | None:
    """The alert's default info block, else (a Cancel without one) that of the alert it
    replaces."""
    info = pick_info(alert, None)
    if info is None and replaced is not None:
        return pick_info(replaced, None)
    return info


def summary_text(alert: Alert, info: Info | None) -> str:
    """What to know and what to do: description, then instruction; the note, or a plain
    statement, for a Cancel with nothing else to say."""
    parts: list[str] = []
    if info is not None:
        parts.append(_clean(info.description) or _clean(info.headline))
        instruction = _clean(info.instruction)
        if instruction:
            parts.append(f"What to do: {instruction}")
    if alert.msg_type is MsgType.CANCEL and not any(parts):
        parts.append(_clean(alert.note) or "This alert has been cancelled.")
    return "\n\n".join(p for p in parts if p) or _clean(alert.note)


def atom_time(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as Atom dates are."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def excerpt(text: str, limit: int) -> str:
    """`text` whole when it fits in `limit` characters, else cut at a word and ended by `…`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def atom_element(parent: etree._Element, name: str, text: str | None) -> etree._Element:
    """An Atom child element; its text set through lxml (escaped), never concatenated."""
    child = etree.SubElement(parent, f"{{{ATOM_NS}}}{name}")
    if text is not None:
        child.text = text.translate(_NOT_XML)
    return child


def atom_link(parent: etree._Element, rel: str, href: str, media_type: str) -> None:
    link = etree.SubElement(parent, f"{{{ATOM_NS}}}link")
    link.set("rel", rel)
    link.set("type", media_type)
    link.set("href", href.translate(_NOT_XML))


def atom_category(parent: etree._Element, term: str) -> None:
    category = etree.SubElement(parent, f"{{{ATOM_NS}}}category")
    category.set("term", term)
    category.set("scheme", CAP12_NS)


def cap_fields(entry: etree._Element, alert: Alert, info: Info | None) -> None:
    """The CAP fields pollers filter on, in the CAP 1.2 namespace (NWS index layout)."""
    _cap(entry, "identifier", alert.identifier)
    _cap(entry, "sender", alert.sender)
    _cap(entry, "sent", format_cap_time(alert.sent))
    _cap(entry, "status", alert.status.value)
    _cap(entry, "msgType", alert.msg_type.value)
    _cap(entry, "scope", alert.scope.value)
    _cap(entry, "references", " ".join(alert.references))
    if info is None:
        return
    _cap(entry, "event", info.event)
    for category in info.categories:
        _cap(entry, "category", category.value)
    _cap(entry, "urgency", info.urgency.value)
    _cap(entry, "severity", info.severity.value)
    _cap(entry, "certainty", info.certainty.value)
    _cap(entry, "effective", format_cap_time(info.effective or alert.sent))
    if info.onset is not None:
        _cap(entry, "onset", format_cap_time(info.onset))
    if info.expires is not None:
        _cap(entry, "expires", format_cap_time(info.expires))
    _cap(entry, "senderName", info.sender_name)
    _cap(entry, "headline", info.headline)
    _cap(entry, "areaDesc", "; ".join(a.description for a in info.areas))
    for area in info.areas:
        for polygon in area.polygons:
            points = (f"{_number(p.lat)},{_number(p.lon)}" for p in polygon.points)
            _cap(entry, "polygon", " ".join(points))
        for circle in area.circles:
            centre = f"{_number(circle.lat)},{_number(circle.lon)}"
            _cap(entry, "circle", f"{centre} {_number(circle.radius_km)}")
    geocodes = [g for area in info.areas for g in area.geocodes]
    if geocodes:
        holder = etree.SubElement(entry, f"{{{CAP12_NS}}}geocode")
        for geocode in geocodes:
            _cap(holder, "valueName", geocode.value_name)
            etree.SubElement(holder, f"{{{CAP12_NS}}}value").text = geocode.value.translate(
                _NOT_XML
            )


def serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _cap(parent: etree._Element, name: str, text: str | None) -> None:
    if text:
        etree.SubElement(parent, f"{{{CAP12_NS}}}{name}").text = text.translate(_NOT_XML)


def _number(value: float) -> str:
    return format(Decimal(repr(value)), "f")


def _clean(text: str | None) -> str:
    return text.strip().translate(_NOT_XML) if text else ""
