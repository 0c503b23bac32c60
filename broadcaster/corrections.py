"""Alerts from pre-approved templates, and the one-step correction of an alert.

Contract:
- `template_submission(name, body, actor, key)` parses `{"values", "areas", "expires"?,
  "status"?, "languages"?, "channels"?, "groups"?}`, fills the packaged template `name`
  (`alerts.template_library`) and returns the `Submission` intake takes for a JSON alert, with
  the template's name and values attached (stored with the alert). From there it is the
  normal path: idempotency, the two-person rule, planning. An unknown template is
  `TemplateNotFound` (404); a `TemplateError` is a `PayloadError` (422) naming the fields.
- `correction_request(stored, values)` builds the correction of a stored alert: the
  correction template of the template it was filled from, else `false_alarm`, sent as a
  **Cancel** referencing it, in its status (an exercise's correction is an exercise too), its
  languages where the template has them, and its areas (for the record: a Cancel is sent to
  exactly those the original reached, by the store). Placeholder values default to the
  original's template values of the same names and, for `false_alarm`, to the original's
  event and the time it was sent (`HH:MM`, UTC); `values` override them. Returns
  (template name, the values used, the JSON alert).
- `template_listing()` describes every template: name, description, kind, correction,
  severity, languages and placeholders (description, example, max_length, pattern).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.models import Alert, Area, MsgType, Status
from alerts.requests import AlertRequest, AreaRequest, CircleRequest
from alerts.template_library import Template, TemplateError, load_templates
from broadcaster.errors import IntakeError, MalformedPayload, PayloadError
from broadcaster.intake import PayloadFormat, Submission, describe_validation_error

GENERIC_CORRECTION = "false_alarm"


class TemplateNotFound(IntakeError):
    status = 404
    code = "unknown_template"


class FromTemplate(BaseModel):
    """The body of `POST /v1/alerts/from-template/{name}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: dict[str, Any] = Field(default_factory=dict)
    areas: Annotated[list[AreaRequest], Field(max_length=100)] = Field(default_factory=list)
    expires: datetime | None = None
    status: Status | None = None
    languages: Annotated[list[str], Field(min_length=1, max_length=20)] | None = None
    channels: Annotated[list[str], Field(max_length=20)] = Field(default_factory=list)
    groups: Annotated[list[str], Field(max_length=20)] = Field(default_factory=list)


def find_template(name: str) -> Template:
    template = load_templates().get(name)
    if template is None:
        raise TemplateNotFound(f"no template {name!r}; GET /v1/templates lists them")
    return template


def _template_error(exc: TemplateError) -> PayloadError:
    fields = f" (fields: {', '.join(exc.fields)})" if exc.fields else ""
    return PayloadError(f"{exc}{fields}", code="invalid_template_values")


def template_submission(
    name: str, body: bytes, *, actor: str | None, idempotency_key: str | None
) -> Submission:
    template = find_template(name)
    try:
        request = FromTemplate.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise MalformedPayload(describe_validation_error(exc)) from exc
        raise PayloadError(describe_validation_error(exc)) from exc
    try:
        filled = template.fill(
            request.values,
            areas=request.areas,
            expires=request.expires,
            status=request.status,
            languages=request.languages,
            channels=request.channels,
            groups=request.groups,
        )
    except TemplateError as exc:
        raise _template_error(exc) from exc
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from exc
    values = tuple(sorted((k, str(v).strip()) for k, v in request.values.items()))
    return Submission(
        body=filled.model_dump_json(exclude_none=True).encode(),
        format=PayloadFormat.JSON,
        source="rest",
        actor=actor,
        idempotency_key=idempotency_key,
        template=template.name,
        template_values=values,
    )


def correction_template(template_name: str | None) -> Template:
    """The correction of the template an alert came from; `false_alarm` otherwise."""
    templates = load_templates()
    origin = templates.get(template_name) if template_name else None
    name = origin.correction if origin is not None and origin.correction else GENERIC_CORRECTION
    return templates.get(name) or templates[GENERIC_CORRECTION]


_PRIMARY = re.compile(r"^[A-Za-z]+")


def _primary(tag: str) -> str:
    match = _PRIMARY.match(tag)
    return match.group(0).lower() if match else tag.lower()


def _languages(alert: Alert, template: Template) -> list[str]:
    """The template's languages the original spoke (exact tag, else the same primary
    subtag), in the original's order; all of the template's when none match."""
    chosen: list[str] = []
    for info in alert.infos:
        exact = [lang for lang in template.languages if lang.lower() == info.language.lower()]
        near = [lang for lang in template.languages if _primary(lang) == _primary(info.language)]
        for lang in exact or near[:1]:
            if lang not in chosen:
                chosen.append(lang)
    return chosen or list(template.languages)


def _area_request(area: Area) -> AreaRequest:
    """The JSON form of a stored area (its first polygon and circle, and its geocodes)."""
    polygon = [(p.lat, p.lon) for p in area.polygons[0].points] if area.polygons else None
    circle = next(
        (
            CircleRequest(lat=c.lat, lon=c.lon, radius_km=c.radius_km)
            for c in area.circles
            if c.radius_km > 0
        ),
        None,
    )
    geocodes: dict[str, str | list[str]] = {}
    for pair in area.geocodes:
        have = geocodes.get(pair.value_name)
        if have is None:
            geocodes[pair.value_name] = pair.value
        else:
            geocodes[pair.value_name] = [*([have] if isinstance(have, str) else have), pair.value]
    return AreaRequest(
        description=area.description[:200], polygon=polygon, circle=circle, geocodes=geocodes
    )


def _default_values(
    alert: Alert, origin_values: Mapping[str, str], template: Template
) -> dict[str, str]:
    event = next((i.event for i in alert.infos if i.event), "")
    derived = {
        "event": event,
        "hazard": event.lower(),
        "sent_time": alert.sent.strftime("%H:%M"),
        **origin_values,
    }
    return {name: derived[name] for name in template.placeholders if name in derived}


def correction_request(
    alert_id: str,
    alert: Alert,
    template_name: str | None,
    template_values: Mapping[str, str],
    values: Mapping[str, Any] | None,
) -> tuple[Template, dict[str, str], AlertRequest]:
    template = correction_template(template_name)
    chosen = _default_values(alert, template_values, template)
    chosen.update({k: v for k, v in (values or {}).items()})
    areas = [_area_request(a) for info in alert.infos[:1] for a in info.areas]
    try:
        filled = template.fill(
            chosen,
            areas=areas,
            references=[alert_id],
            status=None if template.status is not None else alert.status,
            languages=_languages(alert, template),
        )
    except TemplateError as exc:
        raise _template_error(exc) from exc
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from exc
    # The correction undoes the alert: whatever the template's own msgType, it goes as a
    # Cancel, which the engine sends to exactly those the original reached.
    cancel = filled.model_copy(update={"msg_type": MsgType.CANCEL})
    return template, {k: str(v) for k, v in chosen.items()}, cancel


def template_listing() -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "description": t.description,
            "kind": t.kind,
            "correction": t.correction,
            "event": t.event,
            "severity": t.severity.value,
            "msg_type": t.msg_type.value,
            "status": t.status.value if t.status else None,
            "languages": list(t.languages),
            "placeholders": {
                name: {
                    "description": p.description,
                    "example": p.example,
                    "max_length": p.max_length,
                    "pattern": p.pattern,
                }
                for name, p in t.placeholders.items()
            },
        }
        for t in sorted(load_templates().values(), key=lambda t: t.name)
    ]
