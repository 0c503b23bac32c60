"""The listening core without I/O: SMS keywords, area normalisation, poll answers, response
options in the JSON form and the renderers, and JSON-able triage entities."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from adapters.store.replies_sql import jsonable
from alerts.models import RESPONSE_PARAMETER
from alerts.requests import AlertRequest
from alerts.sms import render_sms
from alerts.tweet import render_posts
from broadcaster.ports import Reply, ReplySource
from broadcaster.replies import classify_nothing, poll_choice, storable
from broadcaster.sms_inbox import Keyword, normalise_area, parse_sms

OPTIONS = (("1", "SAFE"), ("2", "NEED HELP"))


@pytest.mark.parametrize(
    ("body", "keyword", "argument"),
    [
        ("STOP", Keyword.STOP, ""),
        ("  stop\n", Keyword.STOP, ""),
        ("StopAll", Keyword.STOP, ""),
        ("unsubscribe", Keyword.STOP, ""),
        ("cancel", Keyword.STOP, ""),
        ("End", Keyword.STOP, ""),
        ("QUIT", Keyword.STOP, ""),
        ("start", Keyword.START, ""),
        ("UNSTOP", Keyword.START, ""),
        ("yes", Keyword.START, ""),
        ("help", Keyword.HELP, ""),
        ("info", Keyword.HELP, ""),
        ("JOIN M1 1AE", Keyword.JOIN, "M1 1AE"),
        ("join   Old Trafford ", Keyword.JOIN, "Old Trafford"),
        ("join", Keyword.JOIN, ""),
        ("please stop the fire", Keyword.NONE, "please stop the fire"),
        ("joined the queue", Keyword.NONE, "joined the queue"),
        ("Stop!", Keyword.NONE, "Stop!"),
    ],
)
def test_keywords_are_whole_trimmed_bodies_in_any_case(
    body: str, keyword: Keyword, argument: str
) -> None:
    """A keyword is the whole trimmed body (JOIN takes the rest); other text is a reply."""
    command = parse_sms(body)
    assert command.keyword is keyword
    assert command.argument == argument


@pytest.mark.parametrize(
    ("text", "area"),
    [
        ("M1 1AE", "M1"),
        ("m11ae", "M1"),
        ("SW1A 2AA", "SW1A"),
        ("ec1v 9hq", "EC1V"),
        ("M1", "M1"),
        ("  Old   Trafford ", "Old Trafford"),
        ("x" * 60, "x" * 40),
        ("   ", None),
        ("Old\x01 Traf\x7fford\x00", "Old Trafford"),
        ("\x02\x03", None),
        ("M1\ufffe", "M1"),
        ("Old Traf\uffffford", "Old Trafford"),
    ],
)
def test_areas_are_outward_codes_or_place_names(text: str, area: str | None) -> None:
    """A UK postcode becomes its outward code; other text a collapsed place name, without
    control characters (it is echoed in TwiML)."""
    assert normalise_area(text) == area


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("1", "1"),
        (" 2 ", "2"),
        ("safe", "1"),
        ("Need help!", "2"),
        ("@EmergencyDev @Council 1", "1"),
        ("@EmergencyDev need help", "2"),
        ("1 but the road is flooded", None),
        ("3", None),
        ("", None),
    ],
)
def test_poll_choice_matches_a_key_or_label(text: str, key: str | None) -> None:
    """The trimmed text, without leading handles or trailing punctuation, is a key or a label."""
    assert poll_choice(text, OPTIONS) == key


def alert_with_responses(**fields: object) -> AlertRequest:
    return AlertRequest.model_validate(
        {
            "event": "Flood",
            "headline": "Flooding on the ring road",
            "instruction": "Move to higher ground.",
            "severity": "Severe",
            "responses": [{"key": "1", "label": "SAFE"}, {"key": "2", "label": "NEED HELP"}],
            **fields,
        }
    )


def test_responses_become_cap_parameters_and_prompts() -> None:
    """The JSON form's responses are CAP parameters "<key>=<label>", read back as
    Alert.responses, and the SMS and the X post invite the answers."""
    request = alert_with_responses(groups=["businesses"])
    alert = request.to_alert(identifier="a1", sender="desk@example.org", sent=datetime.now(UTC))
    values = [p.value for p in alert.infos[0].parameters if p.value_name == RESPONSE_PARAMETER]
    assert values == ["1=SAFE", "2=NEED HELP"]
    assert alert.responses == OPTIONS
    assert alert.groups == frozenset({"businesses"})
    [sms] = render_sms(alert, language=None, max_segments=3, link=None)
    assert "Move to higher ground.\nReply 1 SAFE, 2 NEED HELP" in sms
    [post] = render_posts(alert, link=None)
    assert post.endswith("Reply 1 SAFE, 2 NEED HELP")


@pytest.mark.parametrize(
    "responses",
    [
        [{"key": "1", "label": "SAFE"}, {"key": "1", "label": "OK"}],
        [{"key": "1", "label": "SAFE"}, {"key": "2", "label": "safe"}],
        [{"key": "1 2", "label": "SAFE"}],
        [{"key": "1", "label": "A=B"}],
        [{"key": str(n), "label": f"L{n}"} for n in range(10)],
    ],
)
def test_bad_responses_are_refused(responses: list[dict[str, str]]) -> None:
    """Repeated keys or labels, keys with spaces, labels with "=", more than nine: refused."""
    with pytest.raises(ValidationError):
        alert_with_responses(responses=responses)


def test_classify_nothing_finds_nothing() -> None:
    """The fallback triage gives no category and score 0."""
    result = classify_nothing("a man with a knife")
    assert result.categories == frozenset()
    assert result.score == 0.0


@dataclass(frozen=True)
class Plate:
    text: str
    start: int


def test_entities_are_made_json_able() -> None:
    """Dataclasses, sets and tuples in a classifier's entities become plain JSON types."""
    entities = {"plates": (Plate("AB12 CDE", 3),), "tags": {"b", "a"}, "n": 1}
    assert jsonable(entities) == {
        "plates": [{"text": "AB12 CDE", "start": 3}],
        "tags": ["a", "b"],
        "n": 1,
    }


def test_a_reply_is_made_storable_without_losing_anything_else() -> None:
    """Every NUL and lone surrogate in a reply's text fields becomes U+FFFD; other fields
    and a reply without one are left exactly as they were."""
    received = datetime(2026, 12, 3, tzinfo=UTC)
    clean = Reply(ReplySource.WEB, "w1", "Smoke by the mill", received, lat=53.4, lon=-2.2)
    assert storable(clean) is clean
    dirty = Reply(
        ReplySource.MQTT, "m\x001", "Smoke\x00 by\ud800 the mill", received, sender="x\x00", lat=1.0
    )
    fixed = storable(dirty)
    assert (fixed.external_id, fixed.text, fixed.sender) == (
        "m\ufffd1",
        "Smoke\ufffd by\ufffd the mill",
        "x\ufffd",
    )
    assert (fixed.source, fixed.received_at, fixed.lat) == (ReplySource.MQTT, received, 1.0)
