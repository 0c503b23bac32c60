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
- This module loads the files; the model and `fill` live in `alerts.template_model`, the lint
  in `alerts.template_lint`. Import all of them from here.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from pydantic import ValidationError

from alerts.template_lint import (
    LINT_AREA,
    LINT_LINK,
    LINT_MAX_SMS_SEGMENTS,
    LINT_STATUSES,
    lint_templates,
    worst_case_value,
)
from alerts.template_model import Placeholder, Template, TemplateError, TemplateText

TEMPLATE_PACKAGE = "alerts"
TEMPLATE_DIRECTORY = "templates"


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
