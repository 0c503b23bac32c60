"""Pre-approved alert templates (alerts.template_library): the shipped set and loading it."""

from __future__ import annotations

from importlib import resources

import pytest

from alerts.models import MsgType
from alerts.template_library import (
    TemplateError,
    _parse,
    get_template,
    lint_templates,
    load_templates,
)

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
