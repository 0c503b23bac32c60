"""The CAP codec (alerts.cap) on every real, specification and invalid file in tests/data/cap/."""

from __future__ import annotations

import pytest

from alerts.cap import CapError, parse_cap, to_cap_xml, validate_cap_xml
from tests.support.cap import INVALID_FILES, MANIFEST, _good_params, _read

# --- every real and specification file -------------------------------------------------------


@pytest.mark.parametrize("name", _good_params())
def test_round_trip_is_xsd_valid_and_equal(name: str) -> None:
    """parse -> to_cap_xml is XSD-valid and parses back to equal models."""
    alerts = parse_cap(_read(name))
    assert alerts
    for alert in alerts:
        xml = to_cap_xml(alert)
        assert validate_cap_xml(xml) == []
        assert parse_cap(xml) == [alert]


@pytest.mark.parametrize("name", _good_params())
def test_properties_match_manifest(name: str) -> None:
    """Identifier, msgType, alert count and info languages agree with MANIFEST.json."""
    expected = MANIFEST[name]
    alerts = parse_cap(_read(name))
    first = alerts[0]
    assert len(alerts) == expected["n_alerts"]
    assert first.identifier == expected["identifier"]
    assert first.sender == expected["sender"]
    assert first.msg_type.value == expected["msgType"]
    assert first.references == tuple((expected["references"] or "").split())
    # The manifest records an absent <language> as null; CAP's default is en-US.
    assert [i.language for i in first.infos] == [
        lang or "en-US" for lang in expected["info_languages"]
    ]
    assert [i.event for i in first.infos] == expected["events"]


# --- every invalid file ----------------------------------------------------------------------

INVALID_EXPECTATIONS = {
    "invalid/invalid.xml": ("alert/scope", "required element missing"),
    "invalid/invalid_xmlns.xml": (
        "alert",
        "unsupported namespace 'urn:oasis:names:tc:emergency:alerts:1.2'; expected CAP 1.2",
    ),
    "invalid/canada_errors.xml": ("alert/references", "empty; msg_type Update requires references"),
    "invalid/no_optional_fields_cap11.xml": ("alert/info", "broadcast rule"),
    "invalid/noaa_errors_cap11.xml": ("alert/info[0]/urgency", "'' is not one of Immediate"),
    "invalid/au_nsw_rfs_edxlde_wrapped_cap_circle.xml": (
        "EDXLDistribution", "EDXL-DE wrapped CAP is refused: send the inner <alert> itself",
    ),
    "invalid/xxe_attack.xml": (None, "DTD/entity declarations are refused"),
}  # fmt: skip


@pytest.mark.parametrize("name", INVALID_FILES)
def test_invalid_file_refused_naming_problem(name: str) -> None:
    """Each invalid/ file raises CapError whose path and message name its problem."""
    path, phrase = INVALID_EXPECTATIONS[name]
    with pytest.raises(CapError) as caught:
        parse_cap(_read(name))
    assert caught.value.path == path
    assert phrase in str(caught.value)


def test_invalid_table_covers_every_invalid_file() -> None:
    """The expectation table names exactly the files in invalid/."""
    assert sorted(INVALID_EXPECTATIONS) == INVALID_FILES
