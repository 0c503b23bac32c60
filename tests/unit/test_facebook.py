"""Facebook Page posts: rendering (alerts.facebook), Graph error mapping and usage headers
(adapters.facebook), and the [channels.facebook] settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from adapters.facebook import GraphError, classify, parse_error, redact, regain_seconds
from alerts.facebook import MAX_DESCRIPTION, MAX_POST, render_post, trim_words
from alerts.models import Alert, Status
from alerts.render import STATUS_MARKERS
from alerts.requests import AlertRequest
from broadcaster.config import load_settings
from broadcaster.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError

SENT = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
LINK = "https://alerts.example.org/alerts/id1"
TOKEN = "EAAunitTestPageToken"


def build(**fields: object) -> Alert:
    base: dict[str, object] = {
        "event": "Flood Warning",
        "headline": "River Aire about to flood",
        "severity": "Severe",
    }
    return AlertRequest.model_validate({**base, **fields}).to_alert(
        identifier="id1", sender="desk@example.org", sent=SENT
    )


def words(count: int) -> str:
    return " ".join(f"word{n}" for n in range(count))


def test_post_lists_headline_event_instruction_description_area_expiry_and_link() -> None:
    """An alert renders headline, event, instruction, description, area, expiry and link."""
    alert = build(
        instruction="Move upstairs",
        description="Levels are rising.",
        areas=[{"description": "Kirkstall"}, {"description": "Armley"}],
        expires="2030-01-01T00:00:00+00:00",
    )
    assert render_post(alert, link=LINK).splitlines() == [
        "River Aire about to flood",
        "Severe — Flood Warning",
        "What to do: Move upstairs",
        "Levels are rising.",
        "Area: Kirkstall; Armley",
        "Expires: 2030-01-01T00:00:00+00:00",
        f"More info: {LINK}",
    ]


@pytest.mark.parametrize(
    ("status", "msg_type", "first_lines"),
    [
        ("Exercise", "Alert", [STATUS_MARKERS[Status.EXERCISE], "River Aire about to flood"]),
        ("Test", "Update", [STATUS_MARKERS[Status.TEST], "UPDATE: River Aire about to flood"]),
        ("Actual", "Cancel", ["CANCELLED: River Aire about to flood"]),
    ],
)
def test_marker_comes_first_then_the_prefixed_headline(
    status: str, msg_type: str, first_lines: list[str]
) -> None:
    """Non-Actual alerts start with their marker; Update/Cancel prefix the headline."""
    references = ["desk@example.org,old,2026-11-22T11:00:00+00:00"] if msg_type != "Alert" else []
    alert = build(status=status, msg_type=msg_type, references=references)
    lines = render_post(alert, link=None).splitlines()
    assert lines[: len(first_lines)] == first_lines
    assert not any(line.startswith("More info") for line in lines)


def test_long_description_is_cut_at_a_word_and_the_post_bounded() -> None:
    """A long description is cut at a word with an ellipsis; a huge instruction still leaves
    the headline and link whole and the post within MAX_POST."""
    alert = build(description=words(500))
    lines = render_post(alert, link=LINK).splitlines()
    description = lines[2]
    assert len(description) <= MAX_DESCRIPTION
    assert description.endswith("…")
    assert description[:-1] in words(500)
    assert lines[-1] == f"More info: {LINK}"

    huge = build(instruction=words(600), description=words(500))
    post = render_post(huge, link=LINK)
    assert len(post) <= MAX_POST
    assert post.startswith("River Aire about to flood\n")
    assert post.endswith(f"More info: {LINK}")


def test_trim_words() -> None:
    """trim_words keeps short text, cuts long text at a space and adds the ellipsis."""
    assert trim_words("short", 10) == "short"
    assert trim_words("alpha beta gamma", 12) == "alpha beta…"
    assert trim_words("x" * 20, 10) == "x" * 9 + "…"
    assert trim_words("anything", 0) == ""


def test_rendering_is_deterministic() -> None:
    """The same alert renders the same post."""
    assert render_post(build(), link=LINK) == render_post(build(), link=LINK)


def graph(code: int, message: str = "m", **extra: object) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": "OAuthException", "code": code, **extra}}
    ).encode()


@pytest.mark.parametrize("code", [4, 17, 32, 341, 613, 80001])
def test_rate_limit_codes_are_transient_with_a_retry_after(code: int) -> None:
    """Throttle codes are transient, waiting the default 60 s without usage headers."""
    error = classify(parse_error(400, graph(code)), {}, secret=TOKEN)
    assert isinstance(error, TransientDeliveryError)
    assert error.retry_after == 60
    assert f"Graph error {code}" in str(error)


def test_http_429_without_graph_body_is_rate_limited() -> None:
    """A bare 429 is a throttle too."""
    error = classify(parse_error(429, b"slow down"), {}, secret=TOKEN, rate_limit_retry_seconds=5)
    assert isinstance(error, TransientDeliveryError)
    assert error.retry_after == 5


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, graph(1)),
        (503, graph(2)),
        (400, graph(1, is_transient=True)),
        (502, b"<html>Bad gateway</html>"),
    ],
)
def test_server_side_errors_are_transient_without_a_hint(status: int, body: bytes) -> None:
    """Codes 1 and 2, is_transient and HTTP 5xx retry on the engine's own backoff."""
    error = classify(parse_error(status, body), {}, secret=TOKEN)
    assert isinstance(error, TransientDeliveryError)
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, graph(190, error_subcode=463), "graph_190"),
        (403, graph(200), "graph_200"),
        (403, graph(10), "graph_10"),
        (400, graph(100), "graph_100"),
        (400, graph(368), "graph_368"),
        (400, graph(506), "graph_506"),
        (404, b"not json", "http_404"),
    ],
)
def test_other_errors_are_permanent_with_the_graph_code(
    status: int, body: bytes, code: str
) -> None:
    """Token, permission, parameter, blocked and duplicate errors never retry."""
    error = classify(parse_error(status, body), {}, secret=TOKEN)
    assert isinstance(error, PermanentDeliveryError)
    assert error.code == code


def test_detail_names_code_subcode_type_trace_and_redacts_the_token() -> None:
    """The detail carries what support needs, never the token."""
    body = graph(190, f"Malformed access token {TOKEN}", error_subcode=460, fbtrace_id="AbC")
    error = classify(parse_error(400, body), {}, secret=TOKEN)
    assert str(error) == (
        "facebook answered HTTP 400: Graph error 190/460 (OAuthException): "
        "Malformed access token [redacted] [fbtrace_id AbC]"
    )
    assert len(redact("x" * 1000, TOKEN)) == 300


def test_parse_error_tolerates_junk() -> None:
    """Non-JSON, non-object and oddly typed bodies parse without raising."""
    assert parse_error(400, b"[1]") == GraphError(status=400)
    assert parse_error(400, b'{"error": "nope"}') == GraphError(status=400)
    odd = parse_error(400, b'{"error": {"code": "32", "message": 5, "is_transient": "yes"}}')
    assert (odd.code, odd.message, odd.is_transient) == (32, "", False)


def test_regain_seconds_reads_every_usage_header() -> None:
    """estimated_time_to_regain_access (minutes) from BUC, Page or App usage; the largest
    wins; zero, junk and absent give None."""
    buc = {"123": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 3}]}
    assert regain_seconds({"X-Business-Use-Case-Usage": json.dumps(buc)}) == 180
    page = {"call_count": 100, "estimated_time_to_regain_access": 5}
    both = {"X-Business-Use-Case-Usage": json.dumps(buc), "X-Page-Usage": json.dumps(page)}
    assert regain_seconds(both) == 300
    assert regain_seconds({"X-App-Usage": '{"call_count": 100}'}) is None
    assert regain_seconds({"X-Page-Usage": '{"estimated_time_to_regain_access": 0}'}) is None
    assert regain_seconds({"X-Page-Usage": "not json"}) is None
    headers = {"X-Page-Usage": json.dumps(page)}
    error = classify(parse_error(400, graph(32)), headers, secret=TOKEN)
    assert isinstance(error, TransientDeliveryError)
    assert error.retry_after == 300


def test_facebook_settings_defaults_and_validation() -> None:
    """Defaults; page_id and token together; numeric page id; versions like v21.0."""
    values = {"page_id": "123", "page_token": "EAAsecret"}
    settings = load_settings(None, channels={"facebook": values})
    facebook = settings.channels.facebook
    assert (facebook.api_base, facebook.api_version, facebook.rate_per_second) == (
        "https://graph.facebook.com",
        "v21.0",
        0.2,
    )
    assert "EAAsecret" not in repr(settings)
    assert load_settings(None).channels.facebook.page_id is None
    bad = [
        ({"page_id": "123"}, "channels.facebook"),
        ({"page_id": "my-page", "page_token": "t"}, "channels.facebook.page_id"),
        ({"page_id": "1", "page_token": "t", "api_version": "21"}, "channels.facebook.api_version"),
        (
            {"page_id": "1", "page_token": "t", "rate_per_second": 0},
            "channels.facebook.rate_per_second",
        ),
    ]
    for values, key in bad:
        with pytest.raises(ConfigError) as caught:
            load_settings(None, channels={"facebook": values})
        assert caught.value.key == key


def test_mqtt_publish_settings() -> None:
    """publish_alerts defaults to true; a publish_prefix with wildcards is refused."""
    assert load_settings(None, mqtt={"url": "mqtt://h:1883"}).mqtt.publish_alerts is True
    for prefix in ("a/+/b", "a/#", "a/", ""):
        with pytest.raises(ConfigError) as caught:
            load_settings(None, mqtt={"publish_prefix": prefix})
        assert caught.value.key == "mqtt.publish_prefix"
