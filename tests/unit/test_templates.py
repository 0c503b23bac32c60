"""Pre-approved alert templates (alerts.template_library): loading, lint and fill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from alerts.models import MsgType, ResponseType, Severity, Status
from alerts.requests import AlertRequest, AreaRequest
from alerts.template_library import (
    Template,
    TemplateError,
    _parse,
    get_template,
    lint_templates,
    load_templates,
    worst_case_value,
)

SENT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AREA = AreaRequest(description="Cardiff city centre")
GSM_TEXT = "^[A-Za-z0-9 ,.'-]+$"
ALERT_TEMPLATES = {
    "gas_leak",
    "armed_incident",
    "flood_warning",
    "missing_person",
    "evacuation",
    "shelter_in_place",
    "road_closure",
    "test_message",
}


def make(**overrides: Any) -> Template:
    """A small valid alert template, with `overrides` replacing its fields."""
    data: dict[str, Any] = {
        "name": "spill",
        "description": "A chemical spill.",
        "correction": "spill_all_clear",
        "event": "Chemical spill",
        "category": ["CBRNE"],
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
        "response_type": ["Avoid"],
        "placeholders": {
            "location": {
                "description": "Where",
                "example": "Dock Road",
                "max_length": 30,
                "pattern": GSM_TEXT,
            }
        },
        "text": {
            "en-GB": {"headline": "Spill near {location}", "instruction": "Keep away."},
            "cy": {"headline": "Gollyngiad ger {location}", "instruction": "Cadwch draw."},
        },
    }
    data.update(overrides)
    return Template.model_validate(data)


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


def test_shipped_templates_pass_the_lint() -> None:
    """Every packaged template lints clean."""
    assert lint_templates(load_templates()) == []


def test_shipped_templates_cover_the_alert_types_and_their_corrections() -> None:
    """The packaged set has each alert type, a correction for each and the false alarm."""
    templates = load_templates()
    assert set(templates) >= ALERT_TEMPLATES
    assert templates["false_alarm"].kind == "correction"
    assert templates["false_alarm"].msg_type is MsgType.CANCEL
    for name in ALERT_TEMPLATES:
        template = templates[name]
        assert template.kind == "alert"
        assert templates[template.correction or ""].kind == "correction"
        assert template.languages[:2] == ("en-GB", "cy")
    assert sum("es" in t.text for t in templates.values()) >= 3


def test_load_templates_is_cached_but_returns_a_fresh_dict() -> None:
    """Loading twice parses once (same objects) and gives a new dict each time."""
    first, second = load_templates(), load_templates()
    assert first is not second
    assert all(first[name] is second[name] for name in first)


def test_get_template_refuses_an_unknown_name() -> None:
    """An unknown template name is a TemplateError listing the known ones."""
    with pytest.raises(TemplateError, match="gas_leak"):
        get_template("nope")


def test_a_malformed_file_names_itself() -> None:
    """A file that is not valid TOML, or whose name differs from the file, is refused by name."""
    with pytest.raises(TemplateError, match=r"broken\.toml"):
        _parse("broken.toml", b"name = ")
    data = (resources.files("alerts") / "templates" / "gas_leak.toml").read_bytes()
    with pytest.raises(TemplateError, match=r"other\.toml: name 'gas_leak' must be 'other'"):
        _parse("other.toml", data)


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


def test_fill_makes_a_valid_alert_with_translations() -> None:
    """Filling gas_leak gives the JSON alert, its translations, and a CAP alert from it."""
    expires = SENT + timedelta(hours=2)
    request = get_template("gas_leak").fill(
        {"location": "Market Street, Cardiff"}, areas=[AREA], expires=expires
    )
    assert isinstance(request, AlertRequest)
    assert request.headline == "Gas leak near Market Street, Cardiff: keep away"
    assert request.language == "en-GB"
    assert request.event == "Gas leak"
    assert request.severity is Severity.SEVERE
    assert request.response_type == [ResponseType.AVOID]
    assert request.status is Status.ACTUAL
    assert [t.language for t in request.translations] == ["cy", "es"]
    assert request.translations[0].event == "Gollyngiad nwy"
    assert (
        request.translations[0].headline == "Gollyngiad nwy ger Market Street, Cardiff: cadwch draw"
    )
    alert = request.to_alert(identifier="a1", sender="desk@example.org", sent=SENT)
    assert [info.language for info in alert.infos] == ["en-GB", "cy", "es"]
    assert all(info.areas[0].description == AREA.description for info in alert.infos)
    assert alert.expires == expires
    # The JSON form survives a round trip through its own validation (what the route does).
    assert AlertRequest.model_validate(request.model_dump()) == request


def test_fill_a_correction_needs_references() -> None:
    """A correction (Cancel) refuses to be filled without the alert it corrects."""
    template = get_template("false_alarm")
    values = {"event": "missile threat", "sent_time": "08:07", "hazard": "missile threat"}
    with pytest.raises(TemplateError, match="references"):
        template.fill(values, areas=[AREA])
    request = template.fill(values, areas=[AREA], references=["a1"])
    assert request.msg_type is MsgType.CANCEL
    assert request.headline == (
        "FALSE ALARM: the alert about missile threat sent at 08:07 was sent in error"
    )
    assert request.instruction == "There is NO missile threat. No action is needed."
    alert = request.to_alert(
        identifier="a2",
        sender="desk@example.org",
        sent=SENT,
        references=("desk@example.org,a1,2026-03-01T08:07:00+00:00",),
    )
    assert alert.msg_type is MsgType.CANCEL
    assert len(alert.infos) == 3


def test_fill_keeps_the_status_a_template_fixes() -> None:
    """test_message is always a Test; asking for Actual is an error."""
    template = get_template("test_message")
    assert template.fill({}, areas=[AREA]).status is Status.TEST
    with pytest.raises(TemplateError, match="Test"):
        template.fill({}, areas=[AREA], status=Status.ACTUAL)


def test_fill_chooses_languages() -> None:
    """`languages` picks and orders the blocks; an unknown one is refused."""
    template = get_template("gas_leak")
    request = template.fill({"location": "Dock Road"}, areas=[AREA], languages=["cy", "en-GB"])
    assert request.language == "cy"
    assert request.event == "Gollyngiad nwy"
    assert [t.language for t in request.translations] == ["en-GB"]
    assert request.translations[0].event == "Gas leak"
    with pytest.raises(TemplateError, match="fr"):
        template.fill({"location": "Dock Road"}, areas=[AREA], languages=["fr"])


@pytest.mark.parametrize(
    ("values", "fields", "message"),
    [
        ({}, ("location",), "missing placeholder(s): location"),
        (
            {"location": "Dock Road", "street": "x"},
            ("street",),
            "unknown placeholder(s): street",
        ),
        ({"location": "   "}, ("location",), "location: '' is empty"),
        ({"location": "W" * 31}, ("location",), "more than 30"),
        ({"location": "Ynys Môn"}, ("location",), "does not match the pattern"),
        ({"location": "Dock\nRoad"}, ("location",), "control characters"),
    ],
)
def test_fill_refuses_bad_values_naming_the_field(
    values: dict[str, str], fields: tuple[str, ...], message: str
) -> None:
    """Missing, unknown and invalid values raise TemplateError naming the field."""
    with pytest.raises(TemplateError) as caught:
        get_template("gas_leak").fill(values, areas=[AREA])
    assert caught.value.fields == fields
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_fill_names_every_bad_field_at_once() -> None:
    """All problems are reported together, so the desk fixes them in one go."""
    with pytest.raises(TemplateError) as caught:
        get_template("missing_person").fill({"name": "Jo", "age": "old", "x": "y"}, areas=[AREA])
    assert caught.value.fields == ("age", "place", "reference", "x")


def test_fill_treats_values_as_plain_text() -> None:
    """A value that looks like a format field is inserted literally, never interpreted."""
    placeholders = {"location": {"description": "Where", "example": "Dock", "max_length": 40}}
    template = make(placeholders=placeholders)
    request = template.fill({"location": "{0.__class__} {location}"}, areas=[AREA])
    assert request.headline == "Spill near {0.__class__} {location}"


def test_fill_refuses_a_template_with_attribute_access() -> None:
    """A template that skipped the lint still cannot reach attributes of a value."""
    text = {
        "en-GB": {"headline": "Spill near {location.__class__}", "instruction": "Keep away."},
    }
    with pytest.raises(TemplateError, match="not allowed"):
        make(text=text).fill({"location": "Dock Road"}, areas=[AREA])


def test_literal_braces_are_written_doubled() -> None:
    """`{{` and `}}` in a template are literal braces."""
    text = {"en-GB": {"headline": "Spill {{near}} {location}", "instruction": "Keep away."}}
    request = make(text=text).fill({"location": "Dock Road"}, areas=[AREA])
    assert request.headline == "Spill {near} Dock Road"
