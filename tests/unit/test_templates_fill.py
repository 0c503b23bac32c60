"""Pre-approved alert templates (alerts.template_library): filling one into an alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.models import MsgType, ResponseType, Severity, Status
from alerts.requests import AlertRequest, AreaRequest
from alerts.template_library import TemplateError, get_template
from tests.support.templates import make

SENT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AREA = AreaRequest(description="Cardiff city centre")


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
