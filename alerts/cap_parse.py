"""Parse CAP XML into `alerts.models.Alert`s (import it from `alerts.cap`).

Contract:
- `parse_cap(data)` returns every alert in `data`: one for an `<alert>` root, all of them for an
  `<alerts>` collection. For ANY input bytes it either returns or raises `CapError`; no other
  exception type escapes. Callers cap the body size before calling (the parser is linear, but
  a 10 MB document is still 10 MB of elements).
- Accepted: CAP 1.2, and CAP 1.1 upgraded to the 1.2 model (1.1's certainty "Very Likely" becomes
  "Likely"; everything else maps 1:1). Refused, each with a message naming why: DTDs and entity
  declarations (XXE, entity bombs), EDXL-DE wrappers, other roots and namespaces, unknown or
  repeated elements, values that break CAP 1.2 or the model's rules, and an Alert or Update with
  no info block (a broadcast rule, stricter than CAP: there would be nothing to broadcast).
- Lenient where real feeds differ harmlessly: elements in any order, surrounding whitespace,
  empty optional elements (treated as absent), "Z" or fractional seconds in times, trailing
  commas after polygon points, xmldsig `<Signature>` (ignored: the caller archives the raw XML),
  and the two non-CAP `<area>` children Sweden's Krisinformation feed adds (`_TOLERATED_IN_AREA`,
  dropped); any other unknown element is refused, naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, TypeVar
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ValidationError

from alerts.cap_common import CAP11_NS, CAP12_NS, ELEMENTS, XMLDSIG_NS, CapError
from alerts.models import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    Polygon,
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
)

# Elements CAP lets repeat (XSD maxOccurs="unbounded"); no name is single in one container and
# repeatable in another, so one set serves every level.
_REPEATABLE: Final = frozenset({
    "alert", "code", "info", "category", "responseType", "eventCode", "parameter", "resource",
    "area", "polygon", "circle", "geocode",
})  # fmt: skip
_SPEC: Final = {model: frozenset(e for _, e in pairs) for model, pairs in ELEMENTS.items()}

# Krisinformation (Sweden's national crisis portal) puts these non-CAP elements in <area>; they
# carry a single lon,lat point, not a CAP polygon, so dropping them loses nothing CAP defines.
_TOLERATED_IN_AREA: Final = frozenset({"Type", "Polygon"})

_CAP_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")

_E = TypeVar("_E", bound=StrEnum)
_M = TypeVar("_M", bound=BaseModel)


def parse_cap(data: bytes) -> list[Alert]:
    """Parse a CAP 1.2/1.1 `<alert>` or `<alerts>` collection; see the module contract."""
    root = _parse_xml(data)
    ns, local = _split(root.tag)
    if local == "EDXLDistribution":
        raise CapError("EDXL-DE wrapped CAP is refused: send the inner <alert> itself", local)
    if ns not in (CAP12_NS, CAP11_NS):
        raise CapError(
            f"unsupported namespace {ns!r}; expected CAP 1.2 ({CAP12_NS}) or 1.1 ({CAP11_NS})",
            local,
        )
    if local == "alert":
        return [_alert(root, ns, "alert")]
    if local == "alerts":
        alerts = _Node(root, ns, "alerts", frozenset({"alert"})).kids.get("alert", [])
        if not alerts:
            raise CapError("the collection holds no <alert>", "alerts")
        return [_alert(el, ns, f"alerts/alert[{i}]") for i, el in enumerate(alerts)]
    raise CapError(f"unsupported root element <{local}>; expected <alert> or <alerts>", local)


def _parse_xml(data: bytes) -> Element:
    try:
        root: Element = safe_et.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException:
        raise CapError("DTD/entity declarations are refused (XXE protection)") from None
    except ParseError as exc:
        raise CapError(f"not well-formed XML: {exc}") from None
    except (LookupError, ValueError) as exc:  # e.g. an encoding declaration Python does not know
        raise CapError(f"unreadable XML: {exc}") from None
    return root


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


class _Node:
    """A CAP container element's children grouped by name, checked against what CAP allows."""

    def __init__(
        self,
        el: Element,
        ns: str,
        path: str,
        allowed: frozenset[str],
        *,
        tolerated: frozenset[str] = frozenset(),
        signed: bool = False,
    ) -> None:
        self.path, self.ns = path, ns
        self.kids: dict[str, list[Element]] = {}
        _no_text(el.text, path)
        for child in el:
            _no_text(child.tail, path)
            child_ns, local = _split(child.tag)
            if child_ns == XMLDSIG_NS and signed:
                continue  # the enveloped signature; the raw XML is archived, not the model
            if child_ns == ns and local in tolerated:
                continue
            if child_ns != ns:
                raise CapError(f"unexpected element from namespace {child_ns!r}", f"{path}/{local}")
            if local not in allowed:
                raise CapError(f"unknown element <{local}>", f"{path}/{local}")
            self.kids.setdefault(local, []).append(child)
        for name, found in self.kids.items():
            if len(found) > 1 and name not in _REPEATABLE:
                raise CapError(f"appears {len(found)} times; CAP allows one", f"{path}/{name}")

    def at(self, name: str) -> str:
        return f"{self.path}/{name}"

    def opt(self, name: str) -> str | None:
        """The stripped text of an optional element; None when absent or empty."""
        found = self.kids.get(name)
        return (_leaf(found[0], self.at(name)) or None) if found else None

    def req(self, name: str, *, nonempty: bool = False) -> str:
        found = self.kids.get(name)
        if not found:
            raise CapError("required element missing", self.at(name))
        text = _leaf(found[0], self.at(name))
        if nonempty and not text:
            raise CapError("empty; a value is required", self.at(name))
        return text

    def texts(self, name: str, *, required: bool = False) -> list[tuple[str, str]]:
        """(text, path) of each repeat; empty ones are dropped unless the element is required."""
        found = self.kids.get(name, [])
        if required and not found:
            raise CapError("required element missing", self.at(name))
        paths = [f"{self.at(name)}[{i}]" for i in range(len(found))]
        pairs = [(_leaf(el, path), path) for el, path in zip(found, paths, strict=True)]
        return pairs if required else [(text, path) for text, path in pairs if text]

    def nodes(self, name: str, model: type[BaseModel]) -> list[_Node]:
        tolerated = _TOLERATED_IN_AREA if model is Area else frozenset()
        return [
            _Node(el, self.ns, f"{self.at(name)}[{i}]", _SPEC[model], tolerated=tolerated)
            for i, el in enumerate(self.kids.get(name, []))
        ]


def _no_text(text: str | None, path: str) -> None:
    if text and text.strip():
        raise CapError(f"unexpected text {text.strip()[:40]!r} between elements", path)


def _leaf(el: Element, path: str) -> str:
    if len(el):
        raise CapError(f"holds element <{_split(el[0].tag)[1]}> but CAP wants text here", path)
    return (el.text or "").strip()


def _alert(el: Element, ns: str, path: str) -> Alert:
    node = _Node(el, ns, path, _SPEC[Alert], signed=True)
    fields: dict[str, Any] = {
        "identifier": node.req("identifier", nonempty=True),
        "sender": node.req("sender", nonempty=True),
        "sent": _time(node.req("sent"), node.at("sent")),
        "status": _enum(Status, node.req("status"), node.at("status")),
        "msg_type": _enum(MsgType, node.req("msgType"), node.at("msgType")),
        "source": node.opt("source"),
        "scope": _enum(Scope, node.req("scope"), node.at("scope")),
        "restriction": node.opt("restriction"),
        "addresses": node.opt("addresses"),
        "codes": tuple(text for text, _ in node.texts("code")),
        "note": node.opt("note"),
        "references": tuple((node.opt("references") or "").split()),
        "incidents": node.opt("incidents"),
    }
    msg_type: MsgType = fields["msg_type"]
    if msg_type in (MsgType.UPDATE, MsgType.CANCEL) and not fields["references"]:
        problem = "empty" if "references" in node.kids else "required element missing"
        raise CapError(
            f"{problem}; msg_type {msg_type.value} requires references", node.at("references")
        )
    fields["infos"] = tuple(_info(info) for info in node.nodes("info", Info))
    alert = _build(Alert, path, fields)
    if msg_type in (MsgType.ALERT, MsgType.UPDATE) and not alert.infos:
        raise CapError(
            f"required element missing; broadcast rule: an {msg_type.value} must carry at least "
            "one info block - there is nothing to broadcast (a Cancel, Ack or Error may have none)",
            node.at("info"),
        )
    return alert


_INFO_TEXTS: Final = (
    ("language", "language"), ("audience", "audience"), ("sender_name", "senderName"),
    ("headline", "headline"), ("description", "description"), ("instruction", "instruction"),
    ("web", "web"), ("contact", "contact"),
)  # fmt: skip


def _info(node: _Node) -> Info:
    certainty = node.req("certainty")
    if node.ns == CAP11_NS and certainty == "Very Likely":
        certainty = "Likely"  # CAP 1.2 folded 1.1's "Very Likely" into "Likely"
    fields: dict[str, Any] = {
        "categories": tuple(
            _enum(Category, t, p) for t, p in node.texts("category", required=True)
        ),
        "event": node.req("event", nonempty=True),
        "response_types": tuple(_enum(ResponseType, t, p) for t, p in node.texts("responseType")),
        "urgency": _enum(Urgency, node.req("urgency"), node.at("urgency")),
        "severity": _enum(Severity, node.req("severity"), node.at("severity")),
        "certainty": _enum(Certainty, certainty, node.at("certainty")),
        "event_codes": tuple(_pair(n) for n in node.nodes("eventCode", ValuePair)),
        "parameters": tuple(_pair(n) for n in node.nodes("parameter", ValuePair)),
        "resources": tuple(_resource(n) for n in node.nodes("resource", Resource)),
        "areas": tuple(_area(n) for n in node.nodes("area", Area)),
    }
    for field in ("effective", "onset", "expires"):
        text = node.opt(field)
        fields[field] = _time(text, node.at(field)) if text is not None else None
    for field, element in _INFO_TEXTS:
        value = node.opt(element)
        if value is not None:  # an absent language falls back to the model's default, en-US
            fields[field] = value
    return _build(Info, node.path, fields)


def _pair(node: _Node) -> ValuePair:
    return _build(
        ValuePair,
        node.path,
        {"value_name": node.req("valueName", nonempty=True), "value": node.req("value")},
    )


def _resource(node: _Node) -> Resource:
    size = node.opt("size")
    if size is not None and not _INTEGER.fullmatch(size):
        raise CapError(f"{size!r} is not an integer", node.at("size"))
    fields = {
        "description": node.req("resourceDesc", nonempty=True),
        "mime_type": node.req("mimeType", nonempty=True),
        "size": int(size) if size is not None else None,
        "uri": node.opt("uri"),
        "deref_uri": node.opt("derefUri"),
        "digest": node.opt("digest"),
    }
    return _build(Resource, node.path, fields)


def _area(node: _Node) -> Area:
    fields: dict[str, Any] = {
        "description": node.req("areaDesc", nonempty=True),
        "polygons": tuple(_polygon(text, path) for text, path in node.texts("polygon")),
        "circles": tuple(_circle(text, path) for text, path in node.texts("circle")),
        "geocodes": tuple(_pair(n) for n in node.nodes("geocode", ValuePair)),
    }
    for field in ("altitude", "ceiling"):
        text = node.opt(field)
        fields[field] = _number(text, node.at(field)) if text is not None else None
    return _build(Area, node.path, fields)


def _polygon(text: str, path: str) -> Polygon:
    points = []
    for index, pair in enumerate(text.split()):
        # NWS feeds leave a comma after some pairs ("+40.85,-118.09, +40.86,-118.09,").
        parts = pair.rstrip(",").split(",")
        if len(parts) != 2:
            raise CapError(f"point {index} {pair!r} is not 'lat,lon'", path)
        points.append({"lat": _number(parts[0], path), "lon": _number(parts[1], path)})
    return _build(Polygon, path, {"points": points})


def _circle(text: str, path: str) -> Circle:
    parts = text.split()
    centre = parts[0].rstrip(",").split(",") if parts else []
    if len(parts) != 2 or len(centre) != 2:
        raise CapError(f"{text!r} is not 'lat,lon radius'", path)
    lat, lon = (_number(v, path) for v in centre)
    return _build(Circle, path, {"lat": lat, "lon": lon, "radius_km": _number(parts[1], path)})


def _number(text: str, path: str) -> float:
    value = float(text) if _NUMBER.fullmatch(text) else math.nan
    if not math.isfinite(value):
        raise CapError(f"{text!r} is not a finite decimal number", path)
    return value


def _time(text: str, path: str) -> datetime:
    if _CAP_TIME.fullmatch(text):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # matches the shape but not the calendar, e.g. month 13
    raise CapError(f"{text!r} is not a CAP time (YYYY-MM-DDThh:mm:ss+hh:mm)", path)


def _enum(kind: type[_E], text: str, path: str) -> _E:
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise CapError(f"{text!r} is not one of {allowed}", path) from None


def _build(model: type[_M], path: str, fields: Mapping[str, Any]) -> _M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise _translate(model, exc, path) from None


def _translate(model: type[BaseModel], exc: ValidationError, path: str) -> CapError:
    """Render the first pydantic error at the CAP element it concerns."""
    errors = exc.errors()
    loc, message = list(errors[0]["loc"]), errors[0]["msg"].removeprefix("Value error, ")
    names = dict(ELEMENTS.get(model, ()))
    if loc and isinstance(loc[0], str) and loc[0] in names:
        path = f"{path}/{names[str(loc.pop(0))]}"
        if loc and isinstance(loc[0], int):
            path = f"{path}[{loc.pop(0)}]"
    elif not loc:
        path, message = _rule_target(path, message)
    detail = ".".join(str(part) for part in loc)  # below element level, e.g. a polygon's points
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return CapError(f"{detail + ': ' if detail else ''}{message}{more}", path)


_RULE_TARGETS: Final = (
    (re.compile(r"^infos\[(\d+)\]\.(\w+) "), None),
    (re.compile(r"requires references|^reference "), "references"),
    (re.compile(r"requires restriction"), "restriction"),
    (re.compile(r"requires addresses"), "addresses"),
    (re.compile(r"^ceiling requires"), "ceiling"),
)


def _rule_target(path: str, message: str) -> tuple[str, str]:
    """Point a model-level rule's message at the element it is about."""
    for pattern, element in _RULE_TARGETS:
        found = pattern.search(message)
        if found and element is None:
            element = dict(ELEMENTS[Info]).get(found[2], found[2])
            return f"{path}/info[{found[1]}]/{element}", message[found.end() :]
        if found:
            return f"{path}/{element}", message
    return path, message
