"""The CAP codec's parsing rules (alerts.cap.parse_cap): what it accepts, normalises, refuses."""

from __future__ import annotations

import pytest

from alerts.cap import CAP11_NS, CapError, parse_cap
from alerts.models import Certainty, MsgType
from tests.support.cap import _doc, _read

# --- parsing rules ---------------------------------------------------------------------------


def test_cap11_very_likely_upgraded_to_likely() -> None:
    """CAP 1.1's certainty 'Very Likely' becomes 1.2's 'Likely'."""
    [alert] = parse_cap(_doc(ns=CAP11_NS, certainty="Very Likely"))
    assert alert.infos[0].certainty is Certainty.LIKELY


def test_very_likely_refused_in_cap12() -> None:
    """'Very Likely' is not a CAP 1.2 certainty, so a 1.2 document using it is refused."""
    with pytest.raises(CapError, match="'Very Likely' is not one of Observed") as caught:
        parse_cap(_doc(certainty="Very Likely"))
    assert caught.value.path == "alert/info[0]/certainty"


def test_prefixed_namespace_equals_default_namespace() -> None:
    """A cap:-prefixed document parses to the same model as its default-namespace form."""
    prefixed = _read("real/au_bom_thunderstorm_prefixed_ns.xml")
    [alert] = parse_cap(prefixed)
    assert parse_cap(prefixed.replace(b"<cap:", b"<").replace(b"</cap:", b"</")
                     .replace(b"xmlns:cap=", b"xmlns=")) == [alert]  # fmt: skip


def test_collection_returns_every_alert() -> None:
    """An <alerts> collection yields each alert inside, in document order."""
    alerts = parse_cap(_read("real/se_smhi_17_alerts_collection.xml"))
    assert len(alerts) == 17
    assert len({a.identifier for a in alerts}) == 17


def test_collection_errors_name_the_alert() -> None:
    """A problem inside an <alerts> collection is located at alerts/alert[i]."""
    good = _doc().split(b"?>", 1)[1].replace(b' xmlns="urn:oasis:names:tc:emergency:cap:1.2"', b"")
    bad = good.replace(b"<urgency>Immediate</urgency>", b"<urgency>Soon</urgency>")
    data = b'<alerts xmlns="urn:oasis:names:tc:emergency:cap:1.2">' + good + bad + b"</alerts>"
    with pytest.raises(CapError, match="'Soon' is not one of") as caught:
        parse_cap(data)
    assert caught.value.path == "alerts/alert[1]/info[0]/urgency"


def test_signature_ignored() -> None:
    """An xmldsig Signature after the info blocks does not change the parsed alert."""
    signature = '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature>'
    signed = _doc().replace(b"</alert>", signature.encode() + b"</alert>")
    assert parse_cap(signed) == parse_cap(_doc())


def test_cancel_without_info_accepted() -> None:
    """A Cancel may carry no info block (the broadcast rule is for Alert and Update)."""
    [alert] = parse_cap(_read("real/us_athoc_cancel_no_info.xml"))
    assert alert.msg_type is MsgType.CANCEL
    assert alert.infos == ()


RULE_BREAKS: list[tuple[dict[str, str], str, str]] = [
    ({"alert": "<colour>red</colour>"}, "alert/colour", "unknown element <colour>"),
    ({"area": "<Polygon>1</Polygon><Colour/>"}, "alert/info[0]/area[0]/Colour",
     "unknown element <Colour>"),
    ({"info": '<x:y xmlns:x="http://a.b/">1</x:y>'}, "alert/info[0]/y",
     "unexpected element from namespace 'http://a.b/'"),
    ({"alert": "<scope>Public</scope>"}, "alert/scope", "appears 2 times; CAP allows one"),
    ({"info": "<event>Other</event>"}, "alert/info[0]/event", "appears 2 times; CAP allows one"),
    ({"msg_type": "Update"}, "alert/references", "required element missing; msg_type Update"),
    ({"alert": "<references>a,b</references>", "msg_type": "Cancel"}, "alert/references",
     "reference 'a,b' is not 'sender,identifier,sent'"),
    ({"area": "<polygon>1,2 3,4 5,6 1,2.5</polygon>"}, "alert/info[0]/area[0]/polygon[0]",
     "first point must equal the last"),
    ({"area": "<polygon/><polygon>91,0 1,1 2,2 91,0</polygon>"},
     "alert/info[0]/area[0]/polygon[1]", "points.0.lat: Input should be less than"),
    ({"area": "<polygon>1,2 3;4 1,2</polygon>"}, "alert/info[0]/area[0]/polygon[0]",
     "point 1 '3;4' is not 'lat,lon'"),
    ({"area": "<circle>1,2</circle>"}, "alert/info[0]/area[0]/circle[0]",
     "'1,2' is not 'lat,lon radius'"),
    ({"area": "<circle>1,2 -1</circle>"}, "alert/info[0]/area[0]/circle[0]",
     "radius_km: Input should be greater than or equal to 0"),
    ({"area": "<circle>1,2 nan</circle>"}, "alert/info[0]/area[0]/circle[0]",
     "'nan' is not a finite decimal number"),
    ({"area": "<ceiling>5</ceiling>"}, "alert/info[0]/area[0]/ceiling",
     "ceiling requires altitude"),
    ({"info": "<expires>2023-01-01T00:00:00+00:00</expires>"}, "alert/info[0]/expires",
     "must not be before sent"),
    ({"info": "<onset>2024-01-01T00:00:00</onset>"}, "alert/info[0]/onset",
     "'2024-01-01T00:00:00' is not a CAP time"),
    ({"info": "<headline><b>x</b></headline>"}, "alert/info[0]/headline",
     "holds element <b> but CAP wants text here"),
    ({"info": "<resource><resourceDesc>r</resourceDesc><mimeType>a/b</mimeType>"
              "<size>big</size></resource>"}, "alert/info[0]/resource[0]/size",
     "'big' is not an integer"),
    ({"info": "<parameter><valueName/><value>1</value></parameter>"},
     "alert/info[0]/parameter[0]/valueName", "empty; a value is required"),
    ({"info": "<parameter><valueName>n</valueName></parameter>"},
     "alert/info[0]/parameter[0]/value", "required element missing"),
    ({"info": "<category>Weather</category>"}, "alert/info[0]/category[1]",
     "'Weather' is not one of Geo, Met"),
    ({"alert": "stray text"}, "alert", "unexpected text 'stray text' between elements"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "path", "phrase"), RULE_BREAKS, ids=[p for *_, p in RULE_BREAKS]
)
def test_rule_breaks_refused_with_cap_path(kwargs: dict[str, str], path: str, phrase: str) -> None:
    """Unknown, foreign, repeated and invalid elements raise CapError at their CAP path."""
    with pytest.raises(CapError) as caught:
        parse_cap(_doc(**kwargs))
    assert caught.value.path == path
    assert phrase in caught.value.problem


def test_identifier_with_space_refused() -> None:
    """The model's identifier rule surfaces as a CapError at alert/identifier."""
    data = _doc().replace(b"<identifier>T-1</identifier>", b"<identifier>T 1</identifier>")
    with pytest.raises(CapError, match="must not contain spaces") as caught:
        parse_cap(data)
    assert caught.value.path == "alert/identifier"


def test_empty_optional_elements_are_absent() -> None:
    """Empty <references/>, <restriction/>, <polygon/> and friends read as absent."""
    [alert] = parse_cap(
        _doc(
            alert="<restriction/><addresses> </addresses><references/><code/>",
            info="<responseType/><audience>\n</audience><effective/>",
            area="<polygon></polygon><circle/>",
        )
    )
    assert (alert.restriction, alert.addresses, alert.references, alert.codes) == (
        None, None, (), (),
    )  # fmt: skip
    info = alert.infos[0]
    assert (info.response_types, info.audience, info.effective) == ((), None, None)
    assert (info.areas[0].polygons, info.areas[0].circles) == ((), ())


def test_whitespace_stripped_around_values() -> None:
    """Surrounding whitespace is stripped from enums, times and free text; inner text is kept."""
    [alert] = parse_cap(
        _doc(info="<description>\n  line one\n  line two\n</description>")
        .replace(b"<status>Actual</status>", b"<status>\n Actual </status>")
        .replace(b"2024-01-01T00:00:00+00:00", b" 2024-01-01T00:00:00Z\n")
    )
    assert alert.status.value == "Actual"
    assert alert.sent.utcoffset() is not None
    assert alert.infos[0].description == "line one\n  line two"


def test_polygon_trailing_commas_accepted() -> None:
    """NWS-style polygons with '+' signs and trailing commas after pairs parse."""
    text = "+41.12,-117.61 +41.04,-117.47 +40.85,-118.09, +40.86,-118.09, +41.12,-117.61"
    [alert] = parse_cap(_doc(area=f"<polygon>{text}</polygon>"))
    points = alert.infos[0].areas[0].polygons[0].points
    assert [(p.lat, p.lon) for p in points][2:4] == [(40.85, -118.09), (40.86, -118.09)]


def test_alert_without_info_refused_as_broadcast_rule() -> None:
    """An Update with no info block is refused by the codec's broadcast rule."""
    data = _doc(msg_type="Update", alert="<references>a,b,2024-01-01T00:00:00+00:00</references>")
    start, end = data.index(b"<info>"), data.index(b"</info>") + len(b"</info>")
    with pytest.raises(CapError, match="broadcast rule: an Update must carry") as caught:
        parse_cap(data[:start] + data[end:])
    assert caught.value.path == "alert/info"
