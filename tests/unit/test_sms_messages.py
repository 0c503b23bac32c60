"""What the SMS channel sends per delivery: the `long_messages` policy and the public link."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from adapters.sms import alert_link, sms_messages
from alerts.models import Alert
from alerts.requests import AlertRequest
from alerts.sms import sms_cost
from broadcaster.config import SmsSettings

SENT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PUBLIC = "https://alerts.example.org"
LONG = " ".join(["Stay indoors, close windows and doors, and switch off ventilation."] * 8)


def build(**fields: object) -> Alert:
    body: dict[str, object] = {"event": "Chemical fire", "severity": "Severe", **fields}
    return AlertRequest.model_validate(body).to_alert(
        identifier="a1", sender="desk@example.org", sent=SENT
    )


def long_alert() -> Alert:
    return build(headline="Smoke over Trafford", instruction=LONG)


def settings(**fields: object) -> SmsSettings:
    return SmsSettings.model_validate({"max_segments": 1, **fields})


def test_policy_defaults_to_truncate_and_refuses_unknown_values() -> None:
    """`long_messages` is "truncate" unless set, and only "truncate" or "split" are accepted."""
    assert SmsSettings().long_messages == "truncate"
    assert settings(long_messages="split").long_messages == "split"
    with pytest.raises(ValidationError):
        settings(long_messages="thread")


def test_alert_link_is_the_public_page_or_none() -> None:
    """The link is <public_url>/alerts/<id> (a trailing slash is dropped), None without a URL."""
    assert alert_link(PUBLIC, "abc") == f"{PUBLIC}/alerts/abc"
    assert alert_link(PUBLIC + "/", "abc") == f"{PUBLIC}/alerts/abc"
    assert alert_link(None, "abc") is None


def test_truncated_message_ends_with_the_alert_link() -> None:
    """With a public URL, "truncate" gives one message within the limit ending "... <link>"."""
    (message,) = sms_messages(
        long_alert(), "abc", language=None, settings=settings(), public_url=PUBLIC
    )
    assert message.endswith(f"... {PUBLIC}/alerts/abc")
    assert sms_cost(message) == 1


def test_truncated_message_without_public_url_has_no_link() -> None:
    """Without a public URL the truncated message ends with "..." and names no page."""
    (message,) = sms_messages(
        long_alert(), "abc", language=None, settings=settings(), public_url=None
    )
    assert message.endswith("...")
    assert "/alerts/" not in message


def test_split_policy_gives_every_numbered_part_with_the_link_last() -> None:
    """ "split" gives all parts, numbered, each within the limit, the link in the last one."""
    parts = sms_messages(
        long_alert(),
        "abc",
        language=None,
        settings=settings(long_messages="split", max_segments=2),
        public_url=PUBLIC,
    )
    assert len(parts) > 1
    for k, part in enumerate(parts, start=1):
        assert part.startswith(f"({k}/{len(parts)}) ")
        assert sms_cost(part) <= 2
    # Parts are cut between words, so "More:" may end the part before the link.
    assert parts[-1].endswith(f" {PUBLIC}/alerts/abc")
    assert "switch off ventilation.\nMore:" in "".join(parts)


def test_a_short_alert_is_one_message_under_either_policy() -> None:
    """An alert that fits is sent whole and unnumbered, with "More: <link>" at the end."""
    short = build(headline="Avoid Market St")
    for policy in ("truncate", "split"):
        (message,) = sms_messages(
            short, "xyz", language=None, settings=settings(long_messages=policy), public_url=PUBLIC
        )
        assert message == f"Avoid Market St\nMore: {PUBLIC}/alerts/xyz"
