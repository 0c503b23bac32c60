"""Pre-approved alert templates: messages written, translated and checked before they are needed.

A comms desk under pressure fills in a few blanks ("location") instead of writing an alert from
scratch, and every alert template names the correction template that undoes it, so a
correction is ready the moment it is needed (Hawaii, 2018: a false missile alert whose
correction took 38 minutes because none had been prepared).

Contract:
- Templates are data: one TOML file per template in the package directory
  `alerts/templates/`, named `<name>.toml`. `load_templates()` reads them all (through
  `importlib.resources`, no other I/O), validates their shape and returns
  `{name: Template}`; the files are parsed once per process. A malformed file raises
  `TemplateError` naming the file. `get_template(name)` is one of them, or `TemplateError`.
- A template fixes the CAP classification (`event`, `category`, `severity`, `urgency`,
  `certainty`, `response_type`, `msg_type`, optionally `status`), declares its placeholders
  (`description`, `example`, `max_length`, optional `pattern` that must match the whole value)
  and holds one text block per language (`[text.<language>]`: `headline`, `instruction`,
  optional `description` and `event`), the first block being the alert's main language.
  Texts use plain `{placeholder}` fields only; `{{` and `}}` are literal braces.
- `kind = "alert"` templates (the default) name their `correction`: a `kind = "correction"`
  template (msgType Update or Cancel) such as `gas_leak_all_clear`; `false_alarm` is the
  generic correction for any alert sent in error.
- `Template.fill(values, areas=..., ...)` returns the JSON alert form (`AlertRequest`): the
  first language's text at the top level, the others as `translations`. Values are plain
  text: they are stripped, must be non-empty, free of control characters, at most
  `max_length` characters and match `pattern`. Unknown, missing or invalid values raise one
  `TemplateError` naming every offending field (`.fields`). Texts are filled by
  concatenating the literal parts with the values; `str.format` is never called, so a value
  such as "{0.__class__}" stays literal text and a template cannot reach attributes.
- `lint_templates(templates)` returns the problems found (empty when there are none); see its
  docstring for the rules. The shipped templates lint clean; tests enforce it.
"""

from __future__ import annotations

import re
import string
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alerts.models import (
    Category,
    Certainty,
    LanguageTag,
    MsgType,
    ResponseType,
    Severity,
    Status,
    Urgency,
)
from alerts.requests import AlertRequest, AreaRequest, TranslationRequest
from alerts.sms import render_sms, segment_info
from alerts.tweet import MAX_WEIGHTED_LENGTH, render_posts, weighted_length

TEMPLATE_PACKAGE = "alerts"
TEMPLATE_DIRECTORY = "templates"

# What the lint renders with, standing for what a real alert adds around the template's text:
# the alert's page link as the channels build it (`<public_url>/alerts/<32 hex id>`, here with
# a 26-character public URL) and one area described in 30 characters.
LINT_LINK = "https://alerts.example.org/alerts/" + "0" * 32
LINT_AREA = "W" * 30
LINT_MAX_SMS_SEGMENTS = 2
# Live alerts are what must fit. An exercise adds its marker (up to 28 characters): its SMS
# still goes whole within the channel's default of 3 segments, its X post may become a thread.
# Pass `statuses=(Status.ACTUAL, Status.EXERCISE)` to hold exercises to the same limits.
LINT_STATUSES = (Status.ACTUAL,)
# Worst-case characters, worst first: an emoji weighs 2 on X and takes 2 UCS-2 units; a Han
# character weighs 2 on X and forces UCS-2; "€" takes 2 GSM-7 septets; "W" is a plain GSM-7
# character. A placeholder's worst case is its max_length of the first one its pattern allows.
_WORST_CHARACTERS = ("\N{GRINNING FACE}", "\u4e2d", "\u20ac", "W")

_PLACEHOLDER_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TEMPLATE_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_TEXT_FIELDS = ("event", "headline", "description", "instruction")
# Placeholders for the lint's renderings of corrections (CAP needs a reference to render).
_LINT_SENT = datetime(2026, 1, 1, tzinfo=UTC)
_LINT_REFERENCE = "lint@localhost,earlier-alert,2026-01-01T00:00:00+00:00"


class TemplateError(ValueError):
    """A template could not be loaded or filled. `fields` names the offending placeholders
    (empty when the problem is not about particular values)."""

    def __init__(self, message: str, *, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Placeholder(_Data):
    """One blank of a template: what it means, an example, and what values it accepts."""

    description: Annotated[str, Field(min_length=1)]
    example: str
    max_length: Annotated[int, Field(ge=1, le=200)]
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from exc
        return value

    def problems(self, value: str) -> list[str]:
        """Why `value` (already stripped) is refused; empty when it is accepted."""
        found: list[str] = []
        if not value:
            found.append("is empty")
        if len(value) > self.max_length:
            found.append(f"is {len(value)} characters long, more than {self.max_length}")
        if any(unicodedata.category(c) == "Cc" for c in value):
            found.append("contains control characters (line breaks, tabs ...)")
        if self.pattern is not None and value and re.fullmatch(self.pattern, value) is None:
            found.append(f"does not match the pattern {self.pattern!r}")
        return found


class TemplateText(_Data):
    """A template's text in one language. `headline` and `instruction` are required by the
    lint (and by `fill`); they are optional here so that the lint can report them missing."""

    event: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None

    def parts(self) -> Iterator[tuple[str, str]]:
        """(field name, text) of every text this block holds."""
        for name in _TEXT_FIELDS:
            text = getattr(self, name)
            if text is not None:
                yield name, text


def _fields(text: str) -> list[tuple[str, str, str | None]]:
    """(field name, format spec, conversion) of every replacement field in `text`.
    Raises ValueError for unbalanced braces."""
    return [
        (field, spec or "", conversion)
        for _, field, spec, conversion in string.Formatter().parse(text)
        if field is not None
    ]


def _field_problems(text: str) -> list[str]:
    """What is wrong with the replacement fields of `text`: only plain `{name}` is allowed."""
    try:
        fields = _fields(text)
    except ValueError as exc:
        return [f"has malformed braces ({exc}); write {{{{ and }}}} for literal braces"]
    found: list[str] = []
    for field, spec, conversion in fields:
        bang = "!" + conversion if conversion else ""
        colon = ":" + spec if spec else ""
        shown = "{" + field + bang + colon + "}"
        if not _PLACEHOLDER_NAME.fullmatch(field):
            found.append(
                f"has the field {shown}: positional fields, attribute access and indexing "
                "are not allowed; use a plain {name}"
            )
        elif spec or conversion is not None:
            found.append(
                f"has the field {shown}: format specs and conversions are not allowed; "
                "use a plain {name}"
            )
    return found


def _substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with each plain `{name}` replaced by `values[name]`, by concatenation: nothing
    in a value is interpreted. Raises TemplateError for any other kind of field."""
    problems = _field_problems(text)
    if problems:
        raise TemplateError(f"template text {text!r} " + "; ".join(problems))
    out: list[str] = []
    for literal, field, _, _ in string.Formatter().parse(text):
        out.append(literal)
        if field is not None:
            if field not in values:
                raise TemplateError(
                    f"template text {text!r} uses the undeclared placeholder {{{field}}}",
                    fields=(field,),
                )
            out.append(values[field])
    return "".join(out)


class Template(_Data):
    """One pre-approved alert: fixed classification, placeholders, text per language."""

    name: Annotated[str, Field(pattern=_TEMPLATE_NAME)]
    description: Annotated[str, Field(min_length=1)]
    kind: Literal["alert", "correction"] = "alert"
    correction: str | None = None
    event: Annotated[str, Field(min_length=1, max_length=200)]
    category: Annotated[tuple[Category, ...], Field(min_length=1)]
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    response_type: tuple[ResponseType, ...] = ()
    msg_type: MsgType = MsgType.ALERT
    status: Status | None = None
    placeholders: dict[str, Placeholder] = Field(default_factory=dict)
    text: Annotated[dict[LanguageTag, TemplateText], Field(min_length=1)]

    @property
    def languages(self) -> tuple[str, ...]:
        """The template's languages, the main one first."""
        return tuple(self.text)

    def used_placeholders(self) -> set[str]:
        """Names of the plain fields used in any text (malformed texts contribute none)."""
        used: set[str] = set()
        for block in self.text.values():
            for _, text in block.parts():
                try:
                    used.update(field for field, _, _ in _fields(text))
                except ValueError:
                    continue
        return used

    def check_values(self, values: Mapping[str, str]) -> dict[str, str]:
        """The values stripped, or TemplateError naming every unknown, missing or invalid one."""
        unknown = sorted(set(values) - set(self.placeholders))
        missing = sorted(set(self.placeholders) - set(values))
        problems: list[str] = []
        bad: list[str] = [*unknown, *missing]
        if unknown:
            problems.append("unknown placeholder(s): " + ", ".join(unknown))
        if missing:
            problems.append("missing placeholder(s): " + ", ".join(missing))
        cleaned: dict[str, str] = {}
        for name, placeholder in self.placeholders.items():
            if name not in values:
                continue
            raw = values[name]
            if not isinstance(raw, str):
                problems.append(f"{name}: must be text, got {type(raw).__name__}")
                bad.append(name)
                continue
            value = raw.strip()
            refused = placeholder.problems(value)
            if refused:
                problems.append(f"{name}: {value!r} " + " and ".join(refused))
                bad.append(name)
            cleaned[name] = value
        if problems:
            raise TemplateError(
                f"template {self.name!r}: " + "; ".join(problems), fields=sorted(set(bad))
            )
        return cleaned

    def fill(
        self,
        values: Mapping[str, str],
        *,
        areas: Sequence[AreaRequest],
        expires: datetime | None = None,
        references: Sequence[str] = (),
        status: Status | None = None,
        languages: Sequence[str] | None = None,
        channels: Sequence[str] = (),
        groups: Sequence[str] = (),
        web: str | None = None,
        contact: str | None = None,
        note: str | None = None,
    ) -> AlertRequest:
        """The JSON alert this template makes with `values`.

        `languages` picks and orders the text blocks (default: all, in the template's order);
        the first is the alert's `language`, the others become `translations`. `status`
        defaults to the template's own (test_message is a Test) or Actual; asking for another
        status than a template fixes is an error. A correction (Update/Cancel) needs
        `references`: the alert(s) it corrects.
        Raises TemplateError for bad values (naming them) and for anything else that would
        not make a valid alert.
        """
        cleaned = self.check_values(values)
        return self._build(
            cleaned,
            areas=areas,
            expires=expires,
            references=references,
            status=status,
            languages=languages,
            channels=channels,
            groups=groups,
            web=web,
            contact=contact,
            note=note,
        )

    def _build(
        self,
        values: Mapping[str, str],
        *,
        areas: Sequence[AreaRequest],
        expires: datetime | None = None,
        references: Sequence[str] = (),
        status: Status | None = None,
        languages: Sequence[str] | None = None,
        channels: Sequence[str] = (),
        groups: Sequence[str] = (),
        web: str | None = None,
        contact: str | None = None,
        note: str | None = None,
    ) -> AlertRequest:
        """`fill` without checking the values against their placeholders (the lint's
        worst cases need not match a pattern); every declared placeholder must be present."""
        if status is not None and self.status is not None and status is not self.status:
            raise TemplateError(
                f"template {self.name!r} is always sent as {self.status.value}, not {status.value}"
            )
        if self.msg_type in (MsgType.UPDATE, MsgType.CANCEL) and not references:
            raise TemplateError(
                f"template {self.name!r} is a correction ({self.msg_type.value}): "
                "references must name the alert it corrects"
            )
        chosen = list(self.text) if languages is None else list(languages)
        if not chosen:
            raise TemplateError(f"template {self.name!r}: choose at least one language")
        unknown = [lang for lang in chosen if lang not in self.text]
        if unknown:
            raise TemplateError(
                f"template {self.name!r} has no text in {', '.join(unknown)} "
                f"(it has {', '.join(self.text)})"
            )
        filled: list[dict[str, str]] = []
        for lang in chosen:
            block = self.text[lang]
            if not block.headline or not block.instruction:
                raise TemplateError(
                    f"template {self.name!r}: text.{lang} needs a headline and an instruction"
                )
            filled.append({name: _substitute(text, values) for name, text in block.parts()})
        first, *others = filled
        try:
            return AlertRequest(
                event=first.get("event", self.event),
                headline=first["headline"],
                description=first.get("description"),
                instruction=first["instruction"],
                severity=self.severity,
                urgency=self.urgency,
                certainty=self.certainty,
                category=list(self.category),
                response_type=list(self.response_type),
                status=status or self.status or Status.ACTUAL,
                msg_type=self.msg_type,
                references=list(references),
                expires=expires,
                language=chosen[0],
                translations=[
                    TranslationRequest(
                        language=lang,
                        # Not the first block's: that may be another language's.
                        event=texts.get("event", self.event),
                        headline=texts["headline"],
                        description=texts.get("description"),
                        instruction=texts["instruction"],
                    )
                    for lang, texts in zip(chosen[1:], others, strict=True)
                ],
                areas=list(areas),
                channels=list(channels),
                groups=list(groups),
                web=web,
                contact=contact,
                note=note,
            )
        except ValidationError as exc:
            raise TemplateError(
                f"template {self.name!r} does not make a valid alert: {exc}"
            ) from exc


def _parse(name: str, data: bytes) -> Template:
    stem = name.removesuffix(".toml")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
        template = Template.model_validate(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise TemplateError(f"template file {name}: {exc}") from exc
    if template.name != stem:
        raise TemplateError(f"template file {name}: name {template.name!r} must be {stem!r}")
    return template


@cache
def _load() -> tuple[Template, ...]:
    folder = resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_DIRECTORY)
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".toml")),
        key=lambda entry: entry.name,
    )
    return tuple(_parse(entry.name, entry.read_bytes()) for entry in files)


def load_templates() -> dict[str, Template]:
    """Every packaged template by name (parsed once per process; a new dict each call).
    Raises TemplateError naming the file when one is malformed."""
    return {template.name: template for template in _load()}


def get_template(name: str) -> Template:
    """The packaged template called `name`, or TemplateError."""
    templates = load_templates()
    try:
        return templates[name]
    except KeyError:
        raise TemplateError(
            f"no template {name!r}; there are: {', '.join(sorted(templates))}"
        ) from None


def worst_case_value(placeholder: Placeholder) -> str:
    """The longest, costliest value the placeholder can take, for the lint: `max_length`
    times the first of 😀, 中, €, W whose repetition the pattern allows (any when there is
    none); "W" repeated when the pattern allows none of them (a time "HH:MM", say), which
    still counts as much as any GSM-7 text of that length without extension characters."""
    for char in _WORST_CHARACTERS:
        value = char * placeholder.max_length
        if placeholder.pattern is None or re.fullmatch(placeholder.pattern, value):
            return value
    return "W" * placeholder.max_length


def _structure_problems(
    key: str, template: Template, templates: Mapping[str, Template]
) -> list[str]:
    found: list[str] = []
    if key != template.name:
        found.append(f"is filed as {key!r} but named {template.name!r}")
    for name in template.placeholders:
        if not _PLACEHOLDER_NAME.fullmatch(name):
            found.append(f"placeholder {name!r}: names are lower-case letters, digits and _")
    for lang, block in template.text.items():
        for field in ("headline", "instruction"):
            if not (getattr(block, field) or "").strip():
                found.append(f"text.{lang} has no {field}")
        for field, text in block.parts():
            found.extend(f"text.{lang}.{field} {p}" for p in _field_problems(text))
            try:
                names = {name for name, _, _ in _fields(text)}
            except ValueError:
                continue
            for name in sorted(names - set(template.placeholders)):
                if _PLACEHOLDER_NAME.fullmatch(name):
                    found.append(f"text.{lang}.{field} uses undeclared placeholder {{{name}}}")
    for name in sorted(set(template.placeholders) - template.used_placeholders()):
        found.append(f"placeholder {name!r} is declared but used in no text")
    for name, placeholder in template.placeholders.items():
        example = placeholder.example
        if example != example.strip():
            found.append(f"placeholder {name!r}: the example has surrounding spaces")
        for problem in placeholder.problems(example.strip()):
            found.append(f"placeholder {name!r}: the example {example!r} {problem}")
    if template.kind == "alert":
        if template.msg_type is not MsgType.ALERT:
            found.append(f"an alert template must have msg_type Alert, not {template.msg_type}")
        if template.correction is None:
            found.append("names no correction template")
        elif template.correction not in templates:
            found.append(f"names the correction {template.correction!r}, which does not exist")
        elif templates[template.correction].kind != "correction":
            found.append(f"names the correction {template.correction!r}, which is not one")
        else:
            missing = [
                lang for lang in template.text if lang not in templates[template.correction].text
            ]
            if missing:
                found.append(
                    f"its correction {template.correction!r} has no text in {', '.join(missing)}"
                )
    else:
        if template.msg_type not in (MsgType.UPDATE, MsgType.CANCEL):
            found.append(
                "a correction template must have msg_type Update or Cancel, "
                f"not {template.msg_type}"
            )
        if template.correction is not None:
            found.append("a correction template names no correction of its own")
    return found


def _rendering_problems(
    template: Template,
    *,
    link: str | None,
    area: str,
    max_sms_segments: int,
    max_weighted: int,
    statuses: Sequence[Status],
) -> list[str]:
    if template.status is not None:
        statuses = (template.status,)
    cases = {
        "example values": {n: p.example.strip() for n, p in template.placeholders.items()},
        "worst-case values": {n: worst_case_value(p) for n, p in template.placeholders.items()},
    }
    needs_reference = template.msg_type in (MsgType.UPDATE, MsgType.CANCEL)
    found: list[str] = []
    for case, values in cases.items():
        for status in statuses:
            try:
                request = template._build(
                    values,
                    areas=[AreaRequest(description=area)],
                    status=status,
                    references=["earlier-alert"] if needs_reference else [],
                )
                alert = request.to_alert(
                    identifier="lint",
                    sender="lint@localhost",
                    sent=_LINT_SENT,
                    references=(_LINT_REFERENCE,) if needs_reference else (),
                )
            except (TemplateError, ValidationError) as exc:
                found.append(f"with {case} ({status.value}): {exc}")
                continue
            for lang in template.text:
                where = f"text.{lang} with {case} ({status.value})"
                posts = render_posts(alert, link=link, mode="thread", language=lang)
                if len(posts) != 1 or weighted_length(posts[0]) > max_weighted:
                    found.append(
                        f"{where}: the X post does not fit {max_weighted} weighted characters "
                        f"(it takes {len(posts)} posts)"
                    )
                # A generous limit returns the whole message the channel sends when it fits.
                (whole,) = render_sms(alert, language=lang, max_segments=1000, link=link)
                info = segment_info(whole)
                if info.segments > max_sms_segments:
                    unit = "septets" if info.encoding == "GSM-7" else "UCS-2 units"
                    found.append(
                        f"{where}: the SMS takes {info.segments} segments "
                        f"({info.encoding}, {info.units} {unit}), more than {max_sms_segments}"
                    )
    return found


def lint_templates(
    templates: Mapping[str, Template],
    *,
    link: str | None = LINT_LINK,
    area: str = LINT_AREA,
    max_sms_segments: int = LINT_MAX_SMS_SEGMENTS,
    max_weighted: int = MAX_WEIGHTED_LENGTH,
    statuses: Sequence[Status] = LINT_STATUSES,
) -> list[str]:
    """Every problem of `templates` ({name: template}), each "<name>: <problem>"; [] if none.

    Rules:
    - the key is the template's name; placeholder names are `[a-z][a-z0-9_]*`;
    - every language block has a headline and an instruction;
    - texts use plain `{name}` fields only: no positional `{}`/`{0}`, attribute access
      `{name.attr}`, indexing `{name[0]}`, conversion `{name!r}` or format spec
      `{name:>10}`, and no unbalanced braces;
    - every placeholder used in a text is declared, and every declared one is used somewhere;
    - every example is accepted by its own placeholder (length, pattern, no control characters);
    - an alert template has msgType Alert and names an existing correction template, which has
      text in every language the alert has; a correction template has msgType Update or
      Cancel and names no correction;
    - filled with the examples, and with each placeholder's worst case (`worst_case_value`),
      the template makes a valid alert, and for each language and status (the template's fixed
      status, else each of `statuses`: Actual by default) the X channel's rendering
      (`alerts.tweet.render_posts`) is one post of at most `max_weighted` weighted characters
      and the SMS channel's (`alerts.sms.render_sms`) fits whole in `max_sms_segments`
      segments (GSM-7 or UCS-2, whichever the text needs), both with `link` and one area
      described as `area`.
    """
    problems: list[str] = []
    for key, template in templates.items():
        found = _structure_problems(key, template, templates)
        # Renderings of a template with structural problems would only repeat them.
        if not found:
            found = _rendering_problems(
                template,
                link=link,
                area=area,
                max_sms_segments=max_sms_segments,
                max_weighted=max_weighted,
                statuses=statuses,
            )
        problems.extend(f"{key}: {problem}" for problem in found)
    return problems


__all__ = [
    "LINT_AREA",
    "LINT_LINK",
    "LINT_MAX_SMS_SEGMENTS",
    "LINT_STATUSES",
    "Placeholder",
    "Template",
    "TemplateError",
    "TemplateText",
    "get_template",
    "lint_templates",
    "load_templates",
    "worst_case_value",
]
