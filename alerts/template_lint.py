"""The template lint: what is wrong with a set of templates, before a comms desk needs them.

Contract:
- `lint_templates(templates)` returns every problem as "<name>: <problem>" ([] when there are
  none); its docstring lists the rules. It renders each template through the real channel
  renderers (`alerts.tweet`, `alerts.sms`) with the examples and with `worst_case_value`s.
- Pure: no I/O, nothing cached. `alerts.template_library` re-exports the public names here
  and is where callers import them from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from alerts.models import MsgType, Status
from alerts.requests import AreaRequest
from alerts.sms import render_sms, segment_info
from alerts.template_model import (
    PLACEHOLDER_NAME,
    Placeholder,
    Template,
    TemplateError,
    field_problems,
    replacement_fields,
)
from alerts.tweet import MAX_WEIGHTED_LENGTH, render_posts, weighted_length

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
# Placeholders for the lint's renderings of corrections (CAP needs a reference to render).
_LINT_SENT = datetime(2026, 1, 1, tzinfo=UTC)
_LINT_REFERENCE = "lint@localhost,earlier-alert,2026-01-01T00:00:00+00:00"


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
        if not PLACEHOLDER_NAME.fullmatch(name):
            found.append(f"placeholder {name!r}: names are lower-case letters, digits and _")
    for lang, block in template.text.items():
        for field in ("headline", "instruction"):
            if not (getattr(block, field) or "").strip():
                found.append(f"text.{lang} has no {field}")
        for field, text in block.parts():
            found.extend(f"text.{lang}.{field} {p}" for p in field_problems(text))
            try:
                names = {name for name, _, _ in replacement_fields(text)}
            except ValueError:
                continue
            for name in sorted(names - set(template.placeholders)):
                if PLACEHOLDER_NAME.fullmatch(name):
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
    "lint_templates",
    "worst_case_value",
]
