"""Writing CAP 1.2 (alerts.cap.to_cap_xml) and checking it against the XSD (validate_cap_xml)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alerts.cap import CapError, parse_cap, to_cap_xml, validate_cap_xml
from alerts.models import Alert
from tests.support.cap import _doc, _read

# --- emitting --------------------------------------------------------------------------------


def test_emitted_document_shape() -> None:
    """Output is UTF-8 with a declaration, CAP 1.2 as default namespace, elements in XSD order."""
    [alert] = parse_cap(_read("real/se_krisinformation_news_derefuri.xml"))
    xml = to_cap_xml(alert)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">' in xml
    # The source has senderName after headline, which the XSD refuses; the output follows the XSD.
    assert validate_cap_xml(_read("real/se_krisinformation_news_derefuri.xml")) != []
    assert xml.index(b"<senderName>") < xml.index(b"<headline>") < xml.index(b"<area>")
    assert xml.index(b"<resource>") < xml.index(b"<area>")


def test_emitted_numbers_and_times_are_cap_formatted() -> None:
    """Floats use the shortest exact decimal, radius 0 stays a number, times use +hh:mm."""
    [alert] = parse_cap(_read("spec_examples/cap12_appendix_A3.xml"))
    xml = to_cap_xml(alert)
    assert b"<circle>32.9525,-115.5527 0.0</circle>" in xml
    assert b"<sent>2003-06-11T20:56:00-07:00</sent>" in xml
    [tiny] = parse_cap(_doc(area="<altitude>0.00001</altitude><ceiling>1e3</ceiling>"))
    tiny_xml = to_cap_xml(tiny)
    assert b"<altitude>0.00001</altitude>" in tiny_xml
    assert b"<ceiling>1000.0</ceiling>" in tiny_xml
    assert validate_cap_xml(tiny_xml) == []
    assert parse_cap(tiny_xml) == [tiny]


def test_utc_written_as_plus_zero() -> None:
    """A 'Z' or '-00:00' time is written as +00:00, never Z."""
    for suffix in (b"Z", b"-00:00"):
        [alert] = parse_cap(_doc().replace(b"+00:00</sent>", suffix + b"</sent>"))
        assert b"<sent>2024-01-01T00:00:00+00:00</sent>" in to_cap_xml(alert)


def test_to_cap_xml_refuses_control_characters() -> None:
    """A text XML cannot carry raises CapError naming the element instead of writing bad XML
    (validation refuses such an alert; model_copy, which skips it, is how one could exist)."""
    [alert] = parse_cap(_doc())
    info = alert.infos[0].model_copy(update={"headline": "bad\x00text"})
    with pytest.raises(ValidationError, match="U\\+0000"):
        Alert.model_validate({**alert.model_dump(), "infos": (info,)})
    broken = alert.model_copy(update={"infos": (info,)})
    with pytest.raises(CapError) as caught:
        to_cap_xml(broken)
    assert caught.value.path == "alert/info[0]/headline"


# --- XSD validation --------------------------------------------------------------------------


def test_validate_reports_xsd_errors() -> None:
    """validate_cap_xml names the XSD problem of a structurally invalid document."""
    errors = validate_cap_xml(_read("invalid/invalid.xml"))
    assert errors
    assert "scope" in errors[0]


def test_validate_refuses_dtd_and_broken_xml() -> None:
    """validate_cap_xml refuses any DOCTYPE and reports malformed XML instead of raising."""
    assert validate_cap_xml(_read("invalid/xxe_attack.xml")) == [
        "DTD/entity declarations are refused (XXE protection)"
    ]
    assert validate_cap_xml(b"<alert")[0].startswith("not well-formed XML")
