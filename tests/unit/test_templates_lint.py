"""Pre-approved alert templates (alerts.template_library): the lint and its worst cases."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.models import Status
from alerts.template_library import Template, get_template, lint_templates, worst_case_value
from tests.support.templates import GSM_TEXT, make


def correction(**overrides: Any) -> Template:
    """The correction template that `make()` names."""
    data: dict[str, Any] = {
        "name": "spill_all_clear",
        "kind": "correction",
        "msg_type": "Update",
        "correction": None,
        "response_type": ["AllClear"],
        "urgency": "Past",
        "severity": "Minor",
        "text": {
            "en-GB": {"headline": "All clear: {location}", "instruction": "You can return."},
            "cy": {
                "headline": "Diwedd y rhybudd: {location}",
                "instruction": "Gallwch ddychwelyd.",
            },
        },
    }
    data.update(overrides)
    return make(**data)


def lint(*templates: Template) -> list[str]:
    """Lint `templates` together with the default correction unless one is given."""
    given = {t.name: t for t in templates}
    given.setdefault("spill_all_clear", correction())
    return lint_templates(given)


def test_the_small_template_lints_clean() -> None:
    """The test's own template is clean, so each failure below is the one change made."""
    assert lint(make()) == []


def test_lint_catches_an_undeclared_placeholder() -> None:
    """A text using a placeholder that is not declared is reported."""
    text = {
        "en-GB": {"headline": "Spill near {location}", "instruction": "Avoid {street}."},
        "cy": {"headline": "Gollyngiad ger {location}", "instruction": "Cadwch draw."},
    }
    assert lint(make(text=text)) == [
        "spill: text.en-GB.instruction uses undeclared placeholder {street}"
    ]


def test_lint_catches_an_unused_placeholder() -> None:
    """A declared placeholder that no text uses is reported."""
    placeholders = {
        "location": {"description": "Where", "example": "Dock Road", "max_length": 30},
        "street": {"description": "Street", "example": "High St", "max_length": 20},
    }
    problems = lint(make(placeholders=placeholders))
    assert "spill: placeholder 'street' is declared but used in no text" in problems


@pytest.mark.parametrize(
    ("correction_name", "message"),
    [
        (None, "names no correction template"),
        ("nope", "names the correction 'nope', which does not exist"),
        ("spill", "names the correction 'spill', which is not one"),
    ],
)
def test_lint_catches_a_missing_correction(correction_name: str | None, message: str) -> None:
    """An alert template must name an existing correction template."""
    assert lint(make(correction=correction_name)) == [f"spill: {message}"]


def test_lint_catches_a_correction_without_the_alerts_languages() -> None:
    """A correction must speak every language of the alert that names it."""
    one_language = correction(
        text={"en-GB": {"headline": "All clear: {location}", "instruction": "Return."}}
    )
    assert lint(make(), one_language) == [
        "spill: its correction 'spill_all_clear' has no text in cy"
    ]


@pytest.mark.parametrize(
    "field",
    [
        "{location:>40}",
        "{location.__class__}",
        "{location[0]}",
        "{location!r}",
        "{}",
        "{0}",
    ],
)
def test_lint_catches_format_specs_and_attribute_access(field: str) -> None:
    """Only plain {name} fields are allowed: no spec, conversion, attribute, index, position."""
    text = {
        "en-GB": {"headline": f"Spill near {field} {{location}}", "instruction": "Keep away."},
        "cy": {"headline": "Gollyngiad ger {location}", "instruction": "Cadwch draw."},
    }
    problems = lint(make(text=text))
    assert len(problems) == 1
    assert problems[0].startswith(f"spill: text.en-GB.headline has the field {field}")
    assert "not allowed" in problems[0]


def test_lint_catches_unbalanced_braces() -> None:
    """A lone brace is reported, with how to write a literal one."""
    text = {
        "en-GB": {"headline": "Spill near {location", "instruction": "Keep away."},
        "cy": {"headline": "Gollyngiad ger {location}", "instruction": "Cadwch draw."},
    }
    assert any("malformed braces" in p for p in lint(make(text=text)))


def test_lint_catches_a_missing_headline_or_instruction() -> None:
    """Every language block needs a headline and an instruction."""
    text = {
        "en-GB": {"headline": "Spill near {location}", "instruction": "Keep away."},
        "cy": {"headline": "Gollyngiad ger {location}"},
    }
    assert "spill: text.cy has no instruction" in lint(make(text=text))


def test_lint_catches_an_example_its_placeholder_refuses() -> None:
    """An example longer than max_length or outside the pattern is reported."""
    placeholders = {
        "location": {
            "description": "Where",
            "example": "Ynys Môn",
            "max_length": 5,
            "pattern": GSM_TEXT,
        }
    }
    problems = lint(make(placeholders=placeholders))
    assert any("example 'Ynys Môn' is 8 characters long, more than 5" in p for p in problems)
    assert any("example 'Ynys Môn' does not match the pattern" in p for p in problems)


def test_lint_catches_a_too_long_rendering() -> None:
    """A text too long for one X post and two SMS segments is reported for both channels."""
    long = "Keep away from the area and follow every direction you are given. " * 4
    text = {
        "en-GB": {"headline": "Spill near {location}", "instruction": long},
        "cy": {"headline": "Gollyngiad ger {location}", "instruction": "Cadwch draw."},
    }
    problems = lint(make(text=text))
    assert any(
        p.startswith("spill: text.en-GB with example values (Actual): the X post does not fit")
        for p in problems
    )
    assert any(
        "text.en-GB with example values (Actual): the SMS takes 3 segments (GSM-7" in p
        for p in problems
    )
    assert not any("text.cy" in p for p in problems)


def test_lint_renders_the_worst_case_a_pattern_allows() -> None:
    """Without a pattern, emoji are possible: the UCS-2 worst case must fit too."""
    placeholders = {"location": {"description": "Where", "example": "Dock Road", "max_length": 40}}
    problems = lint(make(placeholders=placeholders))
    assert problems
    assert all("worst-case values" in p for p in problems)
    assert any("UCS-2" in p for p in problems)


def test_lint_checks_exercises_when_asked() -> None:
    """With Exercise among the statuses, its marker counts against the limits."""
    instruction = "Keep away from the area and follow the directions you are given. " * 2
    text = {
        "en-GB": {"headline": "Spill near {location}", "instruction": instruction.strip()},
        "cy": {"headline": "Gollyngiad ger {location}", "instruction": "Cadwch draw."},
    }
    templates = {"spill": make(text=text), "spill_all_clear": correction()}
    assert lint_templates(templates) == []
    problems = lint_templates(templates, statuses=(Status.ACTUAL, Status.EXERCISE))
    assert problems
    assert all("(Exercise)" in p for p in problems)


def test_worst_case_value_follows_the_pattern() -> None:
    """The worst case is an emoji, a Han character, € or W: the first the pattern allows."""
    template = make()
    gsm = template.placeholders["location"]
    assert worst_case_value(gsm) == "W" * 30
    assert worst_case_value(gsm.model_copy(update={"pattern": None})) == "\N{GRINNING FACE}" * 30
    time = get_template("false_alarm").placeholders["sent_time"]
    assert worst_case_value(time) == "WWWWW"
