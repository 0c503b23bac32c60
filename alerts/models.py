"""The alert domain model, aligned with OASIS CAP 1.2 (field names are CAP's, in snake_case).

Contract:
- An `Alert` that validates obeys the CAP 1.2 rules we can check without I/O: closed polygons of
  at least four points, non-negative circle radii, timezone-aware times (whole seconds, as CAP's
  dateTime pattern allows no fractions), `expires` after `sent`, Update/Cancel carry
  `references`, Restricted scope carries `restriction`, Private scope carries `addresses`, and
  identifiers contain none of the characters CAP forbids (space, comma, `<`, `&`), and no
  text holds a character XML 1.0 cannot carry (so every accepted alert can be served as CAP
  and Atom).
- Models are immutable (frozen) so they can be shared between tasks without copying.
- Validation failures are pydantic `ValidationError`s whose locations name the offending field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)


class Status(StrEnum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class Scope(StrEnum):
    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class Category(StrEnum):
    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    SECURITY = "Security"
    RESCUE = "Rescue"
    FIRE = "Fire"
    HEALTH = "Health"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    CBRNE = "CBRNE"
    OTHER = "Other"


class ResponseType(StrEnum):
    SHELTER = "Shelter"
    EVACUATE = "Evacuate"
    PREPARE = "Prepare"
    EXECUTE = "Execute"
    AVOID = "Avoid"
    MONITOR = "Monitor"
    ASSESS = "Assess"
    ALL_CLEAR = "AllClear"
    NONE = "None"


class Urgency(StrEnum):
    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class Severity(StrEnum):
    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class Certainty(StrEnum):
    OBSERVED = "Observed"
    LIKELY = "Likely"
    POSSIBLE = "Possible"
    UNLIKELY = "Unlikely"
    UNKNOWN = "Unknown"


# Lower rank = more urgent; used to order work and lists (Extreme/Immediate first).
SEVERITY_RANK: dict[Severity, int] = {s: i for i, s in enumerate(Severity)}
URGENCY_RANK: dict[Urgency, int] = {u: i for i, u in enumerate(Urgency)}
# Rank → member. Iterating an Enum class walks its members anew each time, which showed in
# intake's profile: `Alert.severity` and `.urgency` are read several times per alert.
_SEVERITY_BY_RANK: tuple[Severity, ...] = tuple(Severity)
_URGENCY_BY_RANK: tuple[Urgency, ...] = tuple(Urgency)

_FORBIDDEN_ID_CHARS = re.compile(r"[\s,<&]")
# What XML 1.0 cannot carry (JSON can spell them as \uXXXX escapes): C0 controls but tab, LF
# and CR; U+FFFE, U+FFFF. Lone surrogates never get this far: pydantic's str refuses them.
# The one list: the feeds strip these, the dashboard and SMS answers also C1 and DEL.
NOT_XML_CODEPOINTS = (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF)
_NOT_XML_CHARS = re.compile("[" + "".join(re.escape(chr(c)) for c in NOT_XML_CODEPOINTS) + "]")


def _cap_datetime(value: datetime, info: ValidationInfo) -> datetime:
    """CAP times must carry an offset and have no fractional seconds, and be a time in UTC
    too (0001-01-01T00:00:00+14:00 and 9999-12-31T23:59:59-14:00 are not: stores, pages and
    feeds convert to UTC). That last rule is not applied when reading back (`READ_BACK`)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("time must carry a timezone offset, e.g. 2026-01-01T12:00:00+00:00")
    if info.context is not READ_BACK:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("time is out of range once converted to UTC") from None
    return value.replace(microsecond=0)


def _cap_identifier(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if _FORBIDDEN_ID_CHARS.search(value):
        raise ValueError("must not contain spaces, commas, '<' or '&' (CAP 1.2 §3.2.1)")
    return value


CapTime = Annotated[datetime, AfterValidator(_cap_datetime)]
CapIdentifier = Annotated[str, AfterValidator(_cap_identifier)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0)]
NonEmptyText = Annotated[str, Field(min_length=1)]
# xs:language, as the CAP XSD types <language> (RFC 3066: "en-US", "fr-CA", "cy").
LanguageTag = Annotated[str, Field(pattern=r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")]


# Validation context for decoding an alert that was validated when it was accepted (a store
# reading its own rows): rules added since then are not re-applied, so nothing already
# accepted becomes unreadable. Compared by identity: pass this very object.
READ_BACK: dict[str, bool] = {"read_back": True}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _FrozenText(_Frozen):
    """A model with text fields. Models with none (points, circles, polygons) do not inherit
    the check: a polygon is a model per point, and a validator call for each made a
    100-point polygon alert's validation 266 µs instead of 152 µs."""

    @model_validator(mode="after")
    def _xml_safe_text(self, info: ValidationInfo) -> Self:
        """Refuse text XML cannot carry here, at the model, so intake answers 422 rather
        than the CAP or Atom rendering of an accepted alert failing later. Not applied when
        reading back (`READ_BACK`): an alert stored before this rule must stay readable."""
        if info.context is READ_BACK:
            return self
        for name, value in self.__dict__.items():
            for text in value if isinstance(value, tuple) else (value,):
                if isinstance(text, str) and (found := _NOT_XML_CHARS.search(text)):
                    raise ValueError(
                        f"{name} holds the character U+{ord(found.group()):04X},"
                        " which CAP (XML) cannot carry"
                    )
        return self


class ValuePair(_FrozenText):
    """A CAP valueName/value pair (eventCode, parameter, geocode)."""

    value_name: NonEmptyText
    value: str


class Point(_Frozen):
    lat: Latitude
    lon: Longitude


class Circle(_Frozen):
    """A CAP circle. Radius 0 is a point, as CAP 1.2 Appendix A.3 itself uses."""

    lat: Latitude
    lon: Longitude
    radius_km: Annotated[float, Field(ge=0.0)]


class Polygon(_Frozen):
    """A CAP polygon: at least four points, the first equal to the last."""

    points: tuple[Point, ...]

    @model_validator(mode="after")
    def _closed_ring(self) -> Polygon:
        if len(self.points) < 4:
            raise ValueError(f"polygon needs at least 4 points, got {len(self.points)}")
        if self.points[0] != self.points[-1]:
            raise ValueError("polygon must be closed: the first point must equal the last")
        return self


class Area(_FrozenText):
    description: NonEmptyText
    polygons: tuple[Polygon, ...] = ()
    circles: tuple[Circle, ...] = ()
    geocodes: tuple[ValuePair, ...] = ()
    altitude: float | None = None
    ceiling: float | None = None

    @model_validator(mode="after")
    def _ceiling_needs_altitude(self) -> Area:
        if self.ceiling is not None and self.altitude is None:
            raise ValueError("ceiling requires altitude (CAP 1.2 §3.2.4)")
        return self


class Resource(_FrozenText):
    description: NonEmptyText
    mime_type: NonEmptyText
    size: Annotated[int, Field(ge=0)] | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


class Info(_FrozenText):
    """One CAP info block; an alert carries one per language."""

    language: LanguageTag = "en-US"
    categories: Annotated[tuple[Category, ...], Field(min_length=1)]
    event: NonEmptyText
    response_types: tuple[ResponseType, ...] = ()
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    audience: str | None = None
    event_codes: tuple[ValuePair, ...] = ()
    effective: CapTime | None = None
    onset: CapTime | None = None
    expires: CapTime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: tuple[ValuePair, ...] = ()
    resources: tuple[Resource, ...] = ()
    areas: tuple[Area, ...] = ()


# A CAP parameter naming one subscriber group the alert is for ("businesses"), so a CAP feed
# can target groups the way our JSON form's `groups` does.
GROUP_PARAMETER = "broadcaster:group"
# A CAP parameter offering the public one answer to the alert, "<key>=<label>" ("1=SAFE"):
# SMS and X replies that say the key or the label are counted as a poll.
RESPONSE_PARAMETER = "broadcaster:response"


class Alert(_FrozenText):
    """A CAP 1.2 alert message."""

    identifier: CapIdentifier
    sender: CapIdentifier
    sent: CapTime
    status: Status
    msg_type: MsgType
    source: str | None = None
    scope: Scope
    restriction: str | None = None
    addresses: str | None = None
    codes: tuple[str, ...] = ()
    note: str | None = None
    references: tuple[NonEmptyText, ...] = ()
    incidents: str | None = None
    infos: tuple[Info, ...] = ()

    @model_validator(mode="after")
    def _cap_rules(self) -> Alert:
        if self.msg_type in (MsgType.UPDATE, MsgType.CANCEL) and not self.references:
            raise ValueError(
                f"msg_type {self.msg_type.value} requires references to the earlier alert(s)"
            )
        for ref in self.references:
            if len(ref.split(",")) != 3:
                raise ValueError(f"reference {ref!r} is not 'sender,identifier,sent'")
        if self.scope is Scope.RESTRICTED and not self.restriction:
            raise ValueError("scope Restricted requires restriction")
        if self.scope is Scope.PRIVATE and not self.addresses:
            raise ValueError("scope Private requires addresses")
        for index, info in enumerate(self.infos):
            # Equal is allowed: a real NOAA cancellation expires the moment it is sent.
            if info.expires is not None and info.expires < self.sent:
                raise ValueError(f"infos[{index}].expires must not be before sent")
            if info.effective and info.expires and info.expires < info.effective:
                raise ValueError(f"infos[{index}].expires must not be before effective")
        return self

    @property
    def reference_key(self) -> str:
        """This alert as another alert's CAP reference: `sender,identifier,sent`."""
        return f"{self.sender},{self.identifier},{format_cap_time(self.sent)}"

    @property
    def severity(self) -> Severity:
        """The most severe severity over the info blocks (Unknown when there are none)."""
        ranks = [SEVERITY_RANK[i.severity] for i in self.infos]
        return _SEVERITY_BY_RANK[min(ranks)] if ranks else Severity.UNKNOWN

    @property
    def urgency(self) -> Urgency:
        """The most urgent urgency over the info blocks (Unknown when there are none)."""
        ranks = [URGENCY_RANK[i.urgency] for i in self.infos]
        return _URGENCY_BY_RANK[min(ranks)] if ranks else Urgency.UNKNOWN

    @property
    def groups(self) -> frozenset[str]:
        """Subscriber groups this alert is for (CAP parameters named `GROUP_PARAMETER`, one
        group each, over all info blocks); empty means every subscriber in the area."""
        return frozenset(
            p.value.strip()
            for info in self.infos
            for p in info.parameters
            if p.value_name == GROUP_PARAMETER and p.value.strip()
        )

    @property
    def responses(self) -> tuple[tuple[str, str], ...]:
        """The answers offered to the public, (key, label) in order (CAP parameters named
        `RESPONSE_PARAMETER`, over all info blocks, each key once: its first label wins)."""
        options: dict[str, str] = {}
        for info in self.infos:
            for p in info.parameters:
                if p.value_name != RESPONSE_PARAMETER:
                    continue
                key, sep, label = p.value.partition("=")
                if sep and key.strip() and label.strip():
                    options.setdefault(key.strip(), label.strip())
        return tuple(options.items())

    @property
    def expires(self) -> datetime | None:
        """The latest expiry over the info blocks; None when any block never expires."""
        values = [i.expires for i in self.infos]
        if not values or any(v is None for v in values):
            return None
        return max(v for v in values if v is not None)


def format_cap_time(value: datetime) -> str:
    """Format a time as CAP's dateTime: `YYYY-MM-DDThh:mm:ss±hh:mm`, never `Z`."""
    text = value.replace(microsecond=0).isoformat()
    return text[:-6] + "+00:00" if text.endswith("Z") else text


def reference_parts(reference: str) -> tuple[str, str, str]:
    """Split a CAP reference `sender,identifier,sent` into its parts, with `sent` rewritten
    as `format_cap_time` writes it, so `...T10:00:00Z` and `...T10:00:00+00:00` name the same
    alert. A `sent` that is not a time is returned unchanged (it then matches nothing)."""
    sender, identifier, sent = reference.split(",", 2)
    try:
        parsed = datetime.fromisoformat(sent.strip())
    except ValueError:
        return sender.strip(), identifier.strip(), sent.strip()
    if parsed.tzinfo is None:
        return sender.strip(), identifier.strip(), sent.strip()
    return sender.strip(), identifier.strip(), format_cap_time(parsed)
