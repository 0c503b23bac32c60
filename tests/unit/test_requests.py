"""The JSON alert form and its mapping to the CAP model (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerts.cap import parse_cap, to_cap_xml
from alerts.models import Alert, Info, MsgType, Severity
from alerts.requests import AlertRequest, request_form

SENT = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def build(**fields: object) -> Alert:
    base: dict[str, object] = {
        "event": "Gas leak",
        "headline": "Avoid Market St",
        "severity": "Severe",
    }
    return AlertRequest.model_validate({**base, **fields}).to_alert(
        identifier="id1", sender="desk@example.org", sent=SENT
    )


def test_minimal_request_fills_cap_defaults() -> None:
    """A request with event, headline and severity becomes a valid Actual/Public CAP alert."""
    alert = build()
    assert alert.msg_type is MsgType.ALERT
    assert alert.scope.value == "Public"
    info = alert.infos[0]
    assert (info.language, info.urgency.value, info.certainty.value) == (
        "en-US",
        "Unknown",
        "Unknown",
    )
    assert info.categories[0].value == "Safety"


def test_translations_become_info_blocks_sharing_areas() -> None:
    """Each translation is another info block with the first block's areas and event."""
    alert = build(
        areas=[
            {
                "description": "Centre",
                "polygon": [[1, 1], [1, 2], [2, 2], [1, 1]],
                "geocodes": {"postcode": ["M1", "M2"]},
            }
        ],
        translations=[{"language": "cy", "headline": "Osgowch Stryd y Farchnad"}],
    )
    assert [i.language for i in alert.infos] == ["en-US", "cy"]
    assert alert.infos[1].areas == alert.infos[0].areas
    assert alert.infos[1].event == "Gas leak"
    assert [g.value for g in alert.infos[0].areas[0].geocodes] == ["M1", "M2"]


def test_update_keeps_resolved_references() -> None:
    """An Update carries the references the caller resolved."""
    alert = AlertRequest.model_validate(
        {
            "event": "Gas leak",
            "headline": "Now clear",
            "severity": "Minor",
            "msg_type": "Update",
            "references": ["abc"],
        }
    ).to_alert(
        identifier="id2", sender="s", sent=SENT, references=("s,id1,2026-01-01T00:00:00+00:00",)
    )
    assert alert.references == ("s,id1,2026-01-01T00:00:00+00:00",)


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"expires": SENT - timedelta(hours=1)}, "expires must not be before sent"),
        ({"msg_type": "Cancel"}, "requires references"),
        ({"scope": "Restricted"}, "requires restriction"),
        ({"scope": "Private"}, "requires addresses"),
        (
            {"areas": [{"description": "x", "polygon": [[1, 1], [1, 2], [2, 2], [2, 1]]}]},
            "must be closed",
        ),
        ({"areas": [{"description": "x", "polygon": [[1, 1], [2, 2], [1, 1]]}]}, "at least 4"),
    ],
)
def test_cap_rules_are_enforced(fields: dict[str, object], phrase: str) -> None:
    """Each CAP rule failure is a ValidationError naming the rule."""
    with pytest.raises(ValidationError, match=phrase):
        build(**fields)


def test_model_drops_fractional_seconds_and_needs_offsets() -> None:
    """CAP times lose fractions (CAP's pattern has none) and must carry an offset."""
    info = Info(
        categories=("Met",),
        event="e",
        urgency="Past",
        severity="Minor",
        certainty="Observed",
        onset=datetime(2026, 1, 1, 1, 2, 3, 456, tzinfo=UTC),
    )
    assert info.onset is not None
    assert info.onset.microsecond == 0
    with pytest.raises(ValidationError, match="timezone offset"):
        Info(
            categories=("Met",),
            event="e",
            urgency="Past",
            severity="Minor",
            certainty="Observed",
            onset=datetime(2026, 1, 1),
        )


def test_identifier_rejects_cap_forbidden_characters() -> None:
    """Identifiers with spaces, commas, '<' or '&' are refused."""
    with pytest.raises(ValidationError, match="must not contain"):
        AlertRequest.model_validate({"event": "e", "headline": "h", "severity": "Minor"}).to_alert(
            identifier="a b", sender="s", sent=SENT
        )


def test_alert_summaries_take_the_most_severe_block() -> None:
    """severity/urgency of an alert are the most severe/urgent over its info blocks."""
    alert = build(urgency="Future", translations=[{"language": "fr", "headline": "x"}])
    assert alert.severity is Severity.SEVERE
    assert alert.reference_key == "desk@example.org,id1,2026-11-22T12:00:00+00:00"


def test_groups_become_cap_parameters_that_survive_the_cap_round_trip() -> None:
    """`groups` become one broadcaster:group parameter each, read back after CAP emit/parse."""
    alert = build(groups=["businesses", "schools", "businesses"])
    assert [(p.value_name, p.value) for p in alert.infos[0].parameters] == [
        ("broadcaster:group", "businesses"),
        ("broadcaster:group", "schools"),
    ]
    assert parse_cap(to_cap_xml(alert))[0].groups == frozenset({"businesses", "schools"})


@pytest.mark.parametrize("bad", ["\x00", "\x01", "\x0b", "\x1f", "\ufffe", "\uffff"])
def test_text_xml_cannot_carry_is_refused_naming_the_field(bad: str) -> None:
    """A character XML 1.0 cannot carry is refused at the model (so CAP/Atom never fail later),
    naming the field and the code point; tab, newline and carriage return are fine."""
    with pytest.raises(ValidationError, match=rf"headline holds the character U\+{ord(bad):04X}"):
        build(headline=f"Fire{bad}near the market")
    alert = build(headline="Fire\tnear\nthe\rmarket", description="Smoke é 火 🔥")
    assert to_cap_xml(alert)


@pytest.mark.parametrize(
    ("field", "value"),
    [("expires", "9999-12-31T23:59:59-14:00"), ("onset", "0001-01-01T00:00:00+14:00")],
)
def test_time_with_no_utc_equivalent_is_refused_naming_the_field(field: str, value: str) -> None:
    """A time that overflows once converted to UTC is refused at the model, naming the field."""
    with pytest.raises(ValidationError, match=rf"{field}\n.*out of range once converted to UTC"):
        build(**{field: value})


def test_request_form_reads_an_alert_back_in_the_posted_names() -> None:
    """`request_form` gives back the posted text, classification, areas and translations."""
    area = {
        "description": "Centre",
        "polygon": [[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [1.0, 1.0]],
        "circle": {"lat": 1.5, "lon": 1.5, "radius_km": 2.0},
        "geocodes": {"postcode": ["M1", "M2"], "ward": "City"},
    }
    alert = build(
        description="Leak",
        category=["Safety", "Env"],
        language="en-GB",
        areas=[area],
        translations=[{"language": "cy", "headline": "Osgowch"}],
    )
    form = request_form(alert)
    assert form["areas"] == [area]
    assert (form["event"], form["description"], form["instruction"]) == ("Gas leak", "Leak", None)
    assert (form["category"], form["language"], form["certainty"]) == (
        ["Safety", "Env"],
        "en-GB",
        "Unknown",
    )
    assert [(t["language"], t["headline"], t["event"]) for t in form["translations"]] == [
        ("cy", "Osgowch", "Gas leak")
    ]


def test_request_form_of_an_alert_without_info_blocks() -> None:
    """A CAP Cancel may carry no info block: the form's text is None, its lists empty."""
    path = Path(__file__).resolve().parent.parent / "data/cap/real/us_athoc_cancel_no_info.xml"
    (alert,) = parse_cap(path.read_bytes())
    assert alert.infos == ()
    form = request_form(alert)
    assert (form["event"], form["language"], form["areas"], form["translations"]) == (
        None,
        None,
        [],
        [],
    )
