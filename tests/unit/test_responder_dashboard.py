"""The dashboard's entity highlighting and signed values (sessions, tickets, CSRF)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from adapters.http.dashboard import Segment, _back, entity_groups, highlight
from adapters.http.reply_rows import alert_title, answered, row
from adapters.http.signing import Signer
from broadcaster.ports import ReplySource, StoredReply
from tests.unit.test_mqtt_out import stored


def sms_reply(text: str, **fields: Any) -> StoredReply:
    """A stored SMS reply from +447700900123 (any field replaced by `fields`)."""
    values: dict[str, Any] = {
        "id": 1,
        "source": ReplySource.SMS,
        "external_id": "SM1",
        "text": text,
        "received_at": datetime(2026, 12, 3, tzinfo=UTC),
        "sender": "+447700900123",
        "alert_id": None,
        "lat": None,
        "lon": None,
        "media_url": None,
        "in_reply_to": None,
        "categories": (),
        "score": None,
        "entities": {},
    }
    return StoredReply(**{**values, **fields})


def test_entities_are_marked_in_the_text() -> None:
    """Each entity's first occurrence is marked with its kind, case-insensitively; the rest
    stays plain, in order, and nothing is lost."""
    text = "Silver van ab12 cde near Market St at 10pm with a knife"
    entities = {
        "plates": ["AB12 CDE"],
        "places": ["Market St"],
        "times": ["10pm"],
        "weapons": ["knife"],
        "coordinates": [[53.4, -2.2]],
        "words": ["ignored"],
    }
    segments = highlight(text, entities)
    assert "".join(s.text for s in segments) == text
    assert [s for s in segments if s.kind] == [
        Segment("ab12 cde", "plates"),
        Segment("Market St", "places"),
        Segment("10pm", "times"),
        Segment("knife", "weapons"),
    ]
    assert highlight("plain", None) == (Segment("plain"),)


def test_entity_groups_list_non_empty_kinds() -> None:
    """Empty kinds are left out; coordinates read as "lat, lon"."""
    groups = entity_groups({"plates": ["AB12 CDE"], "persons": [], "coordinates": [[53.4, -2.2]]})
    assert [(g.name, g.values) for g in groups] == [
        ("Plates", ("AB12 CDE",)),
        ("Coordinates", ("53.4, -2.2",)),
    ]
    assert entity_groups(["not", "a", "dict"]) == ()


def test_signed_values_expire_and_keep_to_their_purpose() -> None:
    """A signed value verifies for its purpose until it expires; another purpose, another
    secret or a changed byte does not; CSRF tokens belong to one session."""
    now = [1000.0]
    signer = Signer(b"k" * 32, clock=lambda: now[0])
    ticket = signer.sign("stream-ticket", "abc123", 60)
    assert signer.verify("stream-ticket", ticket) == "abc123"
    assert signer.verify("session", ticket) is None
    assert Signer(b"x" * 32, clock=lambda: now[0]).verify("stream-ticket", ticket) is None
    assert signer.verify("stream-ticket", ticket.replace("abc123", "abc124")) is None
    now[0] += 61
    assert signer.verify("stream-ticket", ticket) is None
    assert signer.csrf_valid("session-a", signer.csrf("session-a"))
    assert not signer.csrf_valid("session-b", signer.csrf("session-a"))
    assert not signer.csrf_valid("session-a", None)


def test_actions_only_return_to_the_dashboard() -> None:
    """An action's `back` stays on /responders (with its filters); anything else, or a value
    that could split a header, goes to /responders."""
    assert _back("/responders?category=hazard&state=new") == "/responders?category=hazard&state=new"
    assert _back("/responders#reply-3") == "/responders"
    for bad in (
        "https://evil.example/",
        "//evil.example",
        "/responders?x=1\r\nSet-Cookie: a=b",
        "",
    ):
        assert _back(bad) == "/responders"


def test_characters_html_cannot_carry_show_as_replacement_characters() -> None:
    """A reply's control characters (and U+FFFE/FFFF) reach the page as U+FFFD, in its text
    and sender, while tabs, newlines and other text stay as sent."""
    reply = sms_reply(
        "Smoke\x01 near\tthe \x7fmarket\ufffe\nfire 🔥",
        source=ReplySource.WEB,
        sender="tipster\x00",
        alert_id=None,
        categories=("hazard",),
        score=0.9,
        entities={"places": ["market"]},
    )
    shown = row(reply, 1)
    assert (
        "".join(s.text for s in shown.segments)
        == "Smoke\ufffd near\tthe \ufffdmarket\ufffd\nfire 🔥"
    )
    assert Segment("market", "places") in shown.segments
    assert shown.sender == "tipster\ufffd"


def test_a_reply_names_the_alert_it_answers_by_its_headline() -> None:
    """The desk calls an answered alert by its headline, else its event; a row carries it."""
    with_headline = stored("a1", 1)
    without = stored("a2", 2)
    info = without.alert.infos[0].model_copy(update={"headline": None})
    without = dataclasses.replace(
        without, alert=without.alert.model_copy(update={"infos": (info,)})
    )
    assert alert_title(with_headline) == "Avoid Market St"
    assert alert_title(without) == "Gas leak"
    reply = sms_reply("Smell of gas", alert_id="a1")
    assert row(reply, 1, alert_title(with_headline)).alert_title == "Avoid Market St"
    assert row(reply, 1).alert_title is None


def test_a_counted_poll_answer_shows_the_option_it_chose() -> None:
    """An SMS or X reply equal to a poll option's key or label shows "key label"; a web tip
    (never counted) and other text show no vote; an unknown alert shows neither."""
    poll = stored(
        "p1", 1, responses=[{"key": "1", "label": "SAFE"}, {"key": "2", "label": "NEED HELP"}]
    )
    alerts = {"p1": poll}

    def reply(text: str, source: ReplySource = ReplySource.SMS, alert: str = "p1") -> StoredReply:
        return sms_reply(text, source=source, alert_id=alert)

    assert answered(reply("1"), alerts) == ("Avoid Market St", "1 SAFE")
    assert answered(reply("need help!", ReplySource.X), alerts) == (
        "Avoid Market St",
        "2 NEED HELP",
    )
    assert answered(reply("1", ReplySource.WEB), alerts) == ("Avoid Market St", None)
    assert answered(reply("Smoke on King St"), alerts) == ("Avoid Market St", None)
    assert answered(reply("1", alert="gone"), alerts) == (None, None)
    assert row(reply("1"), 1, *answered(reply("1"), alerts)).vote == "1 SAFE"
