"""The pre-approved alert template as a model: its placeholders, its texts per language, and
`Template.fill`, which makes the JSON alert form from a template and values.

Contract:
- Models only, no I/O: `alerts.template_library` loads the packaged files into these models
  and `alerts.template_lint` checks them; the library re-exports the public names here and is
  where callers import them from. The rules for files, values and fill are in its docstring.
- Texts use plain `{placeholder}` fields only and are filled by concatenation, never with
  `str.format` (`replacement_fields`, `field_problems` and the fill share that one reading).
- `Template._build` is `fill` without the value checks; besides `fill`, only the lint calls
  it (its worst-case values need not match a pattern).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
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

PLACEHOLDER_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TEMPLATE_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_TEXT_FIELDS = ("event", "headline", "description", "instruction")


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


def replacement_fields(text: str) -> list[tuple[str, str, str | None]]:
    """(field name, format spec, conversion) of every replacement field in `text`.
    Raises ValueError for unbalanced braces."""
    return [
        (field, spec or "", conversion)
        for _, field, spec, conversion in string.Formatter().parse(text)
        if field is not None
    ]


def field_problems(text: str) -> list[str]:
    """What is wrong with the replacement fields of `text`: only plain `{name}` is allowed."""
    try:
        fields = replacement_fields(text)
    except ValueError as exc:
        return [f"has malformed braces ({exc}); write {{{{ and }}}} for literal braces"]
    found: list[str] = []
    for field, spec, conversion in fields:
        bang = "!" + conversion if conversion else ""
        colon = ":" + spec if spec else ""
        shown = "{" + field + bang + colon + "}"
        if not PLACEHOLDER_NAME.fullmatch(field):
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
    problems = field_problems(text)
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
                    used.update(field for field, _, _ in replacement_fields(text))
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
