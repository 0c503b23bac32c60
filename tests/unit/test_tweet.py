"""X rendering (alerts.tweet): twitter-text v3 weighted length, truncation, posts and threads."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from alerts.models import Alert, Status
from alerts.render import STATUS_MARKERS
from alerts.requests import AlertRequest
from alerts.tweet import fits, render_posts, truncate_to, weighted_length

SENT = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
REF = "desk@example.org,old1,2026-11-22T11:00:00+00:00"
LINK = "https://alerts.example.org/a/id1"
COUNTER = re.compile(r" \((\d+)/(\d+)\)$")
EXERCISE_MARKER = STATUS_MARKERS[Status.EXERCISE]


def build(**fields: object) -> Alert:
    base: dict[str, object] = {
        "event": "Tornado Warning",
        "headline": "Tornado approaching Springfield",
        "severity": "Extreme",
    }
    return AlertRequest.model_validate({**base, **fields}).to_alert(
        identifier="id1", sender="desk@example.org", sent=SENT
    )


def long_description(chars: int = 1000) -> str:
    words: list[str] = []
    while len(" ".join(words)) < chars:
        words.append(f"word{len(words)}")
    return " ".join(words)


def strip_counter(post: str) -> str:
    return COUNTER.sub("", post)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a" * 280, 280, id="ascii-280"),
        pytest.param("a" * 281, 281, id="ascii-281"),
        pytest.param("https://example.org/" + "p" * 80, 23, id="url-100-chars"),
        pytest.param("www.example.org/some/long/path/here", 23, id="www-url"),
        pytest.param("see https://example.org/a.", 4 + 23 + 1, id="url-trailing-dot"),
        pytest.param("日本語", 6, id="cjk"),
        pytest.param("😀", 2, id="emoji"),
        pytest.param("👨\u200d👩\u200d👧\u200d👦", 2, id="zwj-family"),
        pytest.param("🇬🇧", 2, id="flag"),
        pytest.param("👍🏽", 2, id="skin-tone"),
        pytest.param("1\ufe0f\u20e3", 2, id="keycap"),
        pytest.param("❤\ufe0f", 2, id="vs16"),
        pytest.param(
            "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", 2, id="tags"
        ),
        pytest.param("caf\u00e9 r\u00e9sum\u00e9", 11, id="latin-accents"),
        pytest.param("e\u0301", 1, id="nfc"),
        pytest.param("Extreme — Tornado", 17, id="em-dash-light"),
        pytest.param("…", 2, id="ellipsis-heavy"),
        pytest.param("ready.gov", 23, id="bare-generic-domain"),
        pytest.param("bbc.co", 6, id="bare-short-cctld-not-a-url"),
        pytest.param("help@example.org", 16, id="email-not-a-url"),
        pytest.param("", 0, id="empty"),
    ],
)
def test_weighted_length(text: str, expected: int) -> None:
    """weighted_length follows twitter-text v3: URLs 23, heavy code points 2, emoji 2."""
    assert weighted_length(text) == expected


def test_fits_at_and_over_the_limit() -> None:
    """fits accepts 280 weighted characters and refuses 281; a custom limit is honoured."""
    assert fits("a" * 280)
    assert not fits("a" * 281)
    assert fits("日本", limit=4)
    assert not fits("日本", limit=3)


def test_truncate_to_keeps_fitting_text_and_cuts_long_text() -> None:
    """truncate_to leaves fitting text alone and cuts longer text to fit with the ellipsis."""
    assert truncate_to("short", 10) == "short"
    cut = truncate_to("Tornado approaching Springfield from the south west", 30)
    assert cut.endswith("…")
    assert weighted_length(cut) <= 30
    assert cut == "Tornado approaching…"


def test_truncate_to_never_splits_an_emoji_or_url() -> None:
    """truncate_to cuts between whole emoji sequences and never inside a URL."""
    family = "👨\u200d👩\u200d👧\u200d👦"
    cut = truncate_to(family * 10, 7)
    assert cut == family * 2 + "…"
    url = "https://example.org/" + "x" * 50
    text = "ab " + url + " more text here"
    assert truncate_to(text, 27) == "ab…"
    assert truncate_to(text, 28) == "ab " + url + "…"


def test_truncate_to_edge_limits() -> None:
    """truncate_to returns "" when not even the ellipsis fits and rejects a negative limit."""
    assert truncate_to("日本語", 1) == ""
    with pytest.raises(ValueError, match="negative"):
        truncate_to("x", -1)


def test_short_alert_is_one_post() -> None:
    """An alert that fits is one post holding every part, the link last."""
    alert = build(description="Take cover.", areas=[{"description": "Springfield"}])
    posts = render_posts(alert, link=LINK)
    assert posts == [
        "Tornado approaching Springfield\nExtreme — Tornado Warning\nTake cover.\n"
        f"Area: Springfield\n{LINK}"
    ]


def test_long_alert_becomes_numbered_thread() -> None:
    """A 1,000-character alert becomes a thread: each post fits, numbered 1/N..N/N, link last."""
    description = long_description()
    alert = build(description=description, instruction="Go to a basement now.")
    posts = render_posts(alert, link=LINK)
    total = len(posts)
    assert total > 1
    for number, post in enumerate(posts, start=1):
        assert weighted_length(post) <= 280, post
        match = COUNTER.search(post)
        assert match is not None
        assert (int(match.group(1)), int(match.group(2))) == (number, total)
    assert LINK in posts[-1]
    assert all(LINK not in post for post in posts[:-1])
    joined = " ".join(strip_counter(post) for post in posts).split()
    expected = (
        f"Tornado approaching Springfield\nExtreme — Tornado Warning\n{description}\n"
        f"What to do: Go to a basement now.\n{LINK}"
    ).split()
    assert joined == expected


def test_thread_keeps_line_breaks_and_is_deterministic() -> None:
    """A thread keeps the text's line breaks and renders the same every time."""
    alert = build(description=long_description())
    posts = render_posts(alert, link=LINK)
    assert posts[0].startswith("Tornado approaching Springfield\nExtreme — Tornado Warning\n")
    assert render_posts(alert, link=LINK) == posts


def test_link_mode_is_one_post_with_link() -> None:
    """Mode "link" gives one post within 280 holding the headline, event line and link."""
    alert = build(description=long_description())
    posts = render_posts(alert, link=LINK, mode="link")
    assert posts == [f"Tornado approaching Springfield\nExtreme — Tornado Warning\n{LINK}"]


def test_link_mode_truncates_a_heavy_headline() -> None:
    """Mode "link" truncates a headline too heavy to fit and keeps the marker and link."""
    alert = build(headline="竜巻" * 100, description=long_description(), status="Exercise")
    [post] = render_posts(alert, link=LINK, mode="link")
    assert weighted_length(post) <= 280
    assert post.startswith(EXERCISE_MARKER + "\n竜巻")
    assert post.endswith("…\n" + LINK)


def test_link_mode_without_link_falls_back_to_thread() -> None:
    """Mode "link" without a link renders a thread so no text is silently dropped."""
    alert = build(description=long_description())
    posts = render_posts(alert, link=None, mode="link")
    assert posts == render_posts(alert, link=None, mode="thread")
    assert len(posts) > 1


def test_exercise_marker_starts_every_post() -> None:
    """Every post of an Exercise alert's thread starts with the exercise marker."""
    alert = build(status="Exercise", description=long_description())
    posts = render_posts(alert, link=LINK)
    assert len(posts) > 1
    assert all(post.startswith(EXERCISE_MARKER + "\n") for post in posts)
    assert all(weighted_length(post) <= 280 for post in posts)


def test_single_test_post_is_marked() -> None:
    """A short Test alert's single post starts with the test marker."""
    [post] = render_posts(build(status="Test"), link=None)
    assert post.startswith("TEST — NOT A REAL ALERT\n")


def test_cancel_and_update_lead_with_their_prefix() -> None:
    """A Cancel starts with "CANCELLED: " and an Update with "UPDATE: ", in every mode."""
    cancel = build(msg_type="Cancel", references=[REF], description=long_description())
    assert render_posts(cancel, link=LINK)[0].startswith("CANCELLED: Tornado approaching")
    assert render_posts(cancel, link=LINK, mode="link")[0].startswith("CANCELLED: ")
    update = build(msg_type="Update", references=[REF])
    assert render_posts(update, link=None)[0].startswith("UPDATE: Tornado approaching")


def test_unspaced_text_is_cut_between_graphemes() -> None:
    """Text without spaces (Japanese) is cut between characters, every post within 280."""
    description = "地震が発生しました。" * 60 + "😀" * 50
    alert = build(description=description)
    posts = render_posts(alert, link=LINK)
    assert all(weighted_length(post) <= 280 for post in posts)
    bodies = "".join(strip_counter(post).replace("\n", "").replace(" ", "") for post in posts)
    assert description in bodies
    assert LINK in posts[-1]


def test_thread_never_splits_urls_or_emoji_sequences() -> None:
    """Long URLs and ZWJ emoji in a thread stay whole inside one post."""
    url = "https://example.org/" + "x" * 300
    family = "👨\u200d👩\u200d👧\u200d👦"
    description = " ".join([long_description(600), url, family * 3, long_description(400)])
    posts = render_posts(build(description=description), link=LINK)
    assert sum(url in post for post in posts) == 1
    assert sum(family * 3 in post for post in posts) == 1
    assert all(weighted_length(post) <= 280 for post in posts)


def test_ten_or_more_posts_widen_the_counter() -> None:
    """A thread of 10+ posts keeps every post, with its two-digit counter, within 280."""
    posts = render_posts(build(description=long_description(4000)), link=LINK)
    assert len(posts) >= 10
    assert posts[-1].endswith(f" ({len(posts)}/{len(posts)})")
    assert all(weighted_length(post) <= 280 for post in posts)
