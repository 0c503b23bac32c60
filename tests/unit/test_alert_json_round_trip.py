"""An alert as inserted equals what the stores read back from its JSON column: the inserts
answer with the model they encoded (`schema.stored_alert_from_new`) instead of re-reading
the row, so both must be the same alert."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.cap import parse_cap
from alerts.models import READ_BACK, Alert
from alerts.requests import AlertRequest

DATA = Path(__file__).resolve().parent.parent / "data" / "cap"
GOOD_FILES = sorted(
    path for folder in ("real", "spec_examples") for path in (DATA / folder).glob("*.xml")
)


def _from_json_form() -> Alert:
    """An alert as REST/MQTT JSON intake builds it: areas of each kind, a translation,
    groups, a fractional-second offset time."""
    request = AlertRequest.model_validate(
        {
            "event": "Gas leak",
            "headline": "Avoid Market St",
            "severity": "Severe",
            "description": "Leak at the corner of Market St and High St.",
            "expires": "2026-11-22T18:00:00+05:30",
            "groups": ["wardens"],
            "areas": [
                {
                    "description": "Centre",
                    "polygon": [[1, 1], [1, 2], [2, 2], [1, 1]],
                    "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 1.5},
                    "geocodes": {"postcode": ["M1", "M2"]},
                }
            ],
            "translations": [{"language": "cy", "headline": "Osgowch Stryd y Farchnad"}],
        }
    )
    return request.to_alert(
        identifier="id1", sender="desk@example.org", sent=datetime(2026, 11, 22, 12, tzinfo=UTC)
    )


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_cap_alert_as_inserted_equals_its_stored_json_read_back(path: Path) -> None:
    """Every corpus alert: dump then read back (`READ_BACK`) gives an equal model and the
    same JSON, so an insert's answer and a later read agree."""
    for alert in parse_cap(path.read_bytes()):
        text = alert.model_dump_json()
        read_back = Alert.model_validate_json(text, context=READ_BACK)
        assert read_back == alert
        assert read_back.model_dump_json() == text


def test_a_json_form_alert_as_inserted_equals_its_stored_json_read_back() -> None:
    """The same for an alert built from our JSON form."""
    alert = _from_json_form()
    text = alert.model_dump_json()
    assert Alert.model_validate_json(text, context=READ_BACK) == alert
