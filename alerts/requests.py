"""Our JSON form of an alert (the one a comms desk posts), and its mapping to the CAP model.

The JSON form is flat: the top-level text fields make the first info block; `translations`
add one info block per further language, sharing the first block's event classification and
areas. Unknown fields are refused so that a typo ("instructions") is an error, not a silent drop.
`request_form` reads a stored alert back in the same names, for API answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerts.models import (
    GROUP_PARAMETER,
    RESPONSE_PARAMETER,
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    LanguageTag,
    MsgType,
    Point,
    Polygon,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
)

ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=8000)]
ChannelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CircleRequest(_Strict):
    lat: Annotated[float, Field(ge=-90.0, le=90.0)]
    lon: Annotated[float, Field(ge=-180.0, le=180.0)]
    radius_km: Annotated[float, Field(gt=0.0, le=20_000.0)]


class AreaRequest(_Strict):
    """One area: a description and any of a polygon ([[lat, lon], ...], closed), a circle and
    geocodes ({name: value or [values]})."""

    description: ShortText
    polygon: list[tuple[float, float]] | None = None
    circle: CircleRequest | None = None
    geocodes: dict[str, str | list[str]] = Field(default_factory=dict)

    def to_area(self) -> Area:
        polygons: tuple[Polygon, ...] = ()
        if self.polygon is not None:
            polygons = (Polygon(points=tuple(Point(lat=a, lon=b) for a, b in self.polygon)),)
        circles: tuple[Circle, ...] = ()
        if self.circle is not None:
            circles = (
                Circle(lat=self.circle.lat, lon=self.circle.lon, radius_km=self.circle.radius_km),
            )
        geocodes = tuple(
            ValuePair(value_name=name, value=value)
            for name, values in self.geocodes.items()
            for value in ([values] if isinstance(values, str) else values)
        )
        return Area(
            description=self.description, polygons=polygons, circles=circles, geocodes=geocodes
        )


class ResponseOption(_Strict):
    """One answer the public may text or post back: its key ("1") and label ("SAFE")."""

    key: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,10}$")]
    label: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[^=\r\n]+$")]


class TranslationRequest(_Strict):
    """The alert's text in a further language."""

    language: LanguageTag
    event: ShortText | None = None
    headline: ShortText | None = None
    description: LongText | None = None
    instruction: LongText | None = None


class AlertRequest(_Strict):
    """The JSON body of `POST /v1/alerts` (CAP 1.2 names in snake_case)."""

    event: ShortText
    headline: ShortText
    description: LongText | None = None
    instruction: LongText | None = None
    severity: Severity
    urgency: Urgency = Urgency.UNKNOWN
    certainty: Certainty = Certainty.UNKNOWN
    category: Annotated[list[Category], Field(min_length=1, max_length=12)] = Field(
        default_factory=lambda: [Category.SAFETY]
    )
    response_type: list[ResponseType] = Field(default_factory=list)
    status: Status = Status.ACTUAL
    msg_type: MsgType = MsgType.ALERT
    scope: Scope = Scope.PUBLIC
    restriction: ShortText | None = None
    addresses: ShortText | None = None
    references: Annotated[list[ShortText], Field(max_length=100)] = Field(default_factory=list)
    note: LongText | None = None
    sender_name: ShortText | None = None
    web: Annotated[str, Field(max_length=2000)] | None = None
    contact: ShortText | None = None
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    language: LanguageTag = "en-US"
    translations: Annotated[list[TranslationRequest], Field(max_length=20)] = Field(
        default_factory=list
    )
    areas: Annotated[list[AreaRequest], Field(max_length=100)] = Field(default_factory=list)
    channels: Annotated[list[ChannelName], Field(max_length=20)] = Field(default_factory=list)
    # Subscriber groups to reach (SMS); none means everyone in the areas. Public channels
    # (X, web) are public whatever this says.
    groups: Annotated[list[ShortText], Field(max_length=20)] = Field(default_factory=list)
    # Answers the public may reply with (SMS and X): counted per alert as a poll. Carried in
    # CAP as one `broadcaster:response` parameter "<key>=<label>" each.
    responses: Annotated[list[ResponseOption], Field(max_length=9)] = Field(default_factory=list)

    @field_validator("msg_type")
    @classmethod
    def _broadcastable(cls, value: MsgType) -> MsgType:
        if value in (MsgType.ACK, MsgType.ERROR):
            raise ValueError("only Alert, Update and Cancel can be broadcast")
        return value

    @model_validator(mode="after")
    def _distinct_responses(self) -> AlertRequest:
        keys = [r.key.casefold() for r in self.responses]
        labels = [r.label.casefold() for r in self.responses]
        if len(set(keys)) != len(keys) or len(set(labels)) != len(labels):
            raise ValueError("each response key and label may appear once")
        return self

    @model_validator(mode="after")
    def _distinct_languages(self) -> AlertRequest:
        languages = [self.language, *(t.language for t in self.translations)]
        if len({lang.lower() for lang in languages}) != len(languages):
            raise ValueError("each language may appear once (language and translations[])")
        return self

    def to_alert(
        self,
        *,
        identifier: str,
        sender: str,
        sent: datetime,
        references: tuple[str, ...] | None = None,
    ) -> Alert:
        """Build the CAP alert. `references` replaces the request's own when the caller has
        resolved them (our alert ids become CAP `sender,identifier,sent` triples).
        Raises pydantic.ValidationError when a CAP rule fails."""
        areas = tuple(a.to_area() for a in self.areas)
        first = Info(
            language=self.language,
            categories=tuple(self.category),
            event=self.event,
            response_types=tuple(self.response_type),
            urgency=self.urgency,
            severity=self.severity,
            certainty=self.certainty,
            effective=self.effective,
            onset=self.onset,
            expires=self.expires,
            sender_name=self.sender_name,
            headline=self.headline,
            description=self.description,
            instruction=self.instruction,
            web=self.web,
            contact=self.contact,
            parameters=tuple(
                ValuePair(value_name=GROUP_PARAMETER, value=group)
                for group in dict.fromkeys(self.groups)
            )
            + tuple(
                ValuePair(value_name=RESPONSE_PARAMETER, value=f"{r.key}={r.label}")
                for r in self.responses
            ),
            areas=areas,
        )
        others = tuple(
            first.model_copy(
                update={
                    "language": t.language,
                    "event": t.event or first.event,
                    "headline": t.headline,
                    "description": t.description,
                    "instruction": t.instruction,
                }
            )
            for t in self.translations
        )
        return Alert(
            identifier=identifier,
            sender=sender,
            sent=sent,
            status=self.status,
            msg_type=self.msg_type,
            scope=self.scope,
            restriction=self.restriction,
            addresses=self.addresses,
            note=self.note,
            references=tuple(self.references) if references is None else references,
            infos=(first, *others),
        )


def request_form(alert: Alert) -> dict[str, Any]:
    """The alert's text, classification and areas in our JSON form's names: what a desk
    posted comes back as it was sent (`to_alert` read backwards). From the first info block:
    `event, description, instruction, certainty, category, language, areas`; the other
    blocks as `translations`. The form has one polygon and one circle per area: a CAP area
    with more shows its first of each here (the whole alert is always given as CAP too).
    A CAP alert may have no info block (a bare Cancel): then the text fields are None and
    the lists empty."""
    if not alert.infos:
        return {
            "event": None,
            "description": None,
            "instruction": None,
            "certainty": None,
            "category": [],
            "language": None,
            "areas": [],
            "translations": [],
        }
    first, *others = alert.infos
    return {
        "event": first.event,
        "description": first.description,
        "instruction": first.instruction,
        "certainty": first.certainty.value,
        "category": [c.value for c in first.categories],
        "language": first.language,
        "areas": [_area_form(area) for area in first.areas],
        "translations": [
            {
                "language": info.language,
                "event": info.event,
                "headline": info.headline,
                "description": info.description,
                "instruction": info.instruction,
            }
            for info in others
        ],
    }


def _area_form(area: Area) -> dict[str, Any]:
    form: dict[str, Any] = {"description": area.description}
    if area.polygons:
        form["polygon"] = [[p.lat, p.lon] for p in area.polygons[0].points]
    if area.circles:
        circle = area.circles[0]
        form["circle"] = {"lat": circle.lat, "lon": circle.lon, "radius_km": circle.radius_km}
    geocodes: dict[str, list[str]] = {}
    for pair in area.geocodes:
        geocodes.setdefault(pair.value_name, []).append(pair.value)
    form["geocodes"] = {k: v[0] if len(v) == 1 else v for k, v in geocodes.items()}
    return form
