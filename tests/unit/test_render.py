"""Plain-text rendering of alerts (alerts.render): markers, prefixes, language choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.models import Alert, MsgType, Status
from alerts.render import pick_info, render_text
from alerts.requests import AlertRequest

SENT = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
REF = "desk@example.org,old1,2026-11-22T11:00:00+00:00"


def build(**fields: object) -> Alert:
    base: dict[str, object] = {
        "event": "Tornado Warning",
        "headline": "Tornado approaching Springfield",
        "severity": "Extreme",
    }
    return AlertRequest.model_validate({**base, **fields}).to_alert(
        identifier="id1", sender="desk@example.org", sent=SENT
    )


def bare(**fields: object) -> Alert:
    base: dict[str, object] = {
        "identifier": "id9",
        "sender": "desk@example.org",
        "sent": SENT,
        "status": "Actual",
        "msg_type": "Alert",
        "scope": "Public",
    }
    return Alert.model_validate({**base, **fields})


def test_full_alert_renders_every_part_in_order() -> None:
    """An Actual alert renders severity/event, headline, text, areas, expiry and link in order."""
    alert = build(
        description="A tornado was sighted.",
        instruction="Go to a basement.",
        areas=[{"description": "Springfield"}, {"description": "Shelbyville"}],
        expires=(SENT + timedelta(hours=2)).isoformat(),
        web="https://example.org/a/1",
    )
    assert render_text(alert).split("\n") == [
        "Extreme — Tornado Warning",
        "Tornado approaching Springfield",
        "A tornado was sighted.",
        "What to do: Go to a basement.",
        "Area: Springfield; Shelbyville",
        "Expires: 2026-11-22T14:00:00+00:00",
        "More info: https://example.org/a/1",
    ]


def test_actual_alert_has_no_marker_and_empty_parts_are_skipped() -> None:
    """A minimal Actual alert is just its title and headline: no marker, no blank lines."""
    assert render_text(build()) == "Extreme — Tornado Warning\nTornado approaching Springfield"


@pytest.mark.parametrize(
    ("status", "marker"),
    [
        (Status.EXERCISE, "EXERCISE — NOT A REAL ALERT"),
        (Status.TEST, "TEST — NOT A REAL ALERT"),
        (Status.SYSTEM, "SYSTEM MESSAGE"),
        (Status.DRAFT, "DRAFT"),
    ],
)
def test_non_actual_status_is_marked_on_the_first_line(status: Status, marker: str) -> None:
    """Every non-Actual status puts its marker first, so test and live never look alike."""
    lines = render_text(build(status=status.value)).split("\n")
    assert lines[0] == marker
    assert lines[1] == "Extreme — Tornado Warning"


@pytest.mark.parametrize(
    ("msg_type", "prefix"),
    [(MsgType.UPDATE, "UPDATE: "), (MsgType.CANCEL, "CANCELLED: ")],
)
def test_msg_type_prefixes_the_headline(msg_type: MsgType, prefix: str) -> None:
    """Update and Cancel prefix the headline line."""
    alert = build(msg_type=msg_type.value, references=[REF])
    assert render_text(alert).split("\n")[1] == prefix + "Tornado approaching Springfield"


def test_error_prefix_and_ack_without_prefix() -> None:
    """Error alerts get the ERROR prefix; Ack alerts read as themselves."""
    error = bare(msg_type="Error", references=[REF])
    ack = bare(msg_type="Ack", references=[REF])
    assert render_text(error) == "ERROR: Alert id9 from desk@example.org"
    assert render_text(ack) == "Alert id9 from desk@example.org"


def test_prefix_moves_to_title_when_there_is_no_headline() -> None:
    """Without a headline the msgType prefix lands on the severity/event line, never lost."""
    alert = build(msg_type="Cancel", references=[REF])
    info = alert.infos[0].model_copy(update={"headline": None})
    alert = alert.model_copy(update={"infos": (info,)})
    assert render_text(alert) == "CANCELLED: Extreme — Tornado Warning"


def test_unknown_severity_is_left_out_of_the_title() -> None:
    """An Unknown severity is not printed before the event."""
    assert render_text(build(severity="Unknown")).split("\n")[0] == "Tornado Warning"


def test_language_exact_match_then_primary_subtag_then_first() -> None:
    """The block is chosen by exact tag, then primary subtag, else the first block."""
    alert = build(
        language="en-US",
        translations=[
            {"language": "es-MX", "headline": "Tornado en Springfield"},
            {"language": "fr", "headline": "Tornade à Springfield"},
        ],
    )
    assert render_text(alert, language="es-MX").split("\n")[1] == "Tornado en Springfield"
    assert render_text(alert, language="ES-mx").split("\n")[1] == "Tornado en Springfield"
    assert render_text(alert, language="es").split("\n")[1] == "Tornado en Springfield"
    assert render_text(alert, language="fr-CA").split("\n")[1] == "Tornade à Springfield"
    assert render_text(alert, language="de").split("\n")[1] == "Tornado approaching Springfield"
    assert render_text(alert) == render_text(alert, language="en-US")


def test_pick_info_prefers_exact_over_primary_subtag() -> None:
    """An exact tag wins over an earlier block that only shares the primary subtag."""
    alert = build(
        language="es-ES",
        translations=[{"language": "es-MX", "headline": "México"}],
    )
    picked = pick_info(alert, "es-MX")
    assert picked is not None
    assert picked.headline == "México"
    assert pick_info(bare(), "en") is None


def test_alert_without_info_names_identifier_sender_and_note() -> None:
    """An info-less alert renders marker, identifier/sender line and note."""
    alert = bare(status="Test", note="Monthly system check")
    assert render_text(alert) == (
        "TEST — NOT A REAL ALERT\nAlert id9 from desk@example.org\nMonthly system check"
    )


def test_rendering_is_deterministic() -> None:
    """Equal alerts render to equal text, call after call."""
    first = build(description="x", areas=[{"description": "A"}], status="Exercise")
    second = build(description="x", areas=[{"description": "A"}], status="Exercise")
    assert render_text(first) == render_text(second) == render_text(first)
