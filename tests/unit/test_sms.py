"""SMS rendering (alerts.sms): GSM-7/UCS-2 encoding, segment counts, truncate/split policies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.models import Alert, MsgType, Scope, Status
from alerts.render import MSG_TYPE_PREFIXES, STATUS_MARKERS
from alerts.requests import AlertRequest
from alerts.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SMS_STATUS_MARKERS,
    SegmentInfo,
    encoding_of,
    render_sms,
    segment_info,
    septets,
    sms_cost,
    split_segments,
    utf16_units,
)

SENT = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
REF = "desk@example.org,old1,2026-11-22T11:00:00+00:00"
LINK = "https://alerts.example.org/a/1"
EMOJI = "\N{GRINNING FACE}"  # outside the BMP: a surrogate pair in UTF-16
HAN = "\u4e2d"  # a BMP character that is not GSM-7
LONG_INSTRUCTION = " ".join(f"step{n} go to the basement and stay there" for n in range(40))


def build(**fields: object) -> Alert:
    base: dict[str, object] = {
        "event": "Tornado Warning",
        "headline": "Tornado approaching Springfield",
        "severity": "Extreme",
    }
    return AlertRequest.model_validate({**base, **fields}).to_alert(
        identifier="id1", sender="desk@example.org", sent=SENT
    )


def words(text: str) -> list[str]:
    return text.split()


def test_tables_have_the_gsm_03_38_sizes() -> None:
    """The basic table has 127 characters (128 less ESC) and the extension table 10."""
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_latin_text_with_accents_and_greek_capitals_is_gsm7() -> None:
    """Characters from the GSM basic table (accents, £, Greek capitals) keep text GSM-7."""
    assert encoding_of("Café à Zürich £5 \u0394\u03a9 @home_now!") == "GSM-7"


def test_one_emoji_forces_ucs2() -> None:
    """One emoji in otherwise-GSM text makes the whole text UCS-2, counted in UTF-16 units."""
    text = "Tornado warning " + EMOJI
    assert encoding_of(text) == "UCS-2"
    assert segment_info(text) == SegmentInfo("UCS-2", 16 + 2, 1, 70)


@pytest.mark.parametrize("char", ["\t", "\u00a0", "\u2014", "\u2026", "\x1b", "\u201c"])
def test_common_non_gsm_characters_force_ucs2(char: str) -> None:
    """Tab, no-break space, em dash, ellipsis, lone ESC and curly quotes are not GSM-7."""
    assert encoding_of(f"abc{char}def") == "UCS-2"


def test_extension_characters_count_two_septets() -> None:
    """Each extension character, form feed and the euro sign cost 2 septets."""
    assert septets("€") == 2
    assert septets("\f") == 2
    assert septets("^{}\\[~]|") == 16
    assert septets("a€b") == 4


def test_septets_refuses_non_gsm_text() -> None:
    """septets() raises for text that GSM-7 cannot carry instead of miscounting it."""
    with pytest.raises(ValueError, match="not GSM-7"):
        septets("caf" + HAN)


def test_utf16_units_count_surrogate_pairs_twice() -> None:
    """A character outside the BMP is two UTF-16 units; BMP characters are one."""
    assert utf16_units(HAN * 3) == 3
    assert utf16_units(EMOJI) == 2
    assert utf16_units(EMOJI) == len(EMOJI.encode("utf-16-le")) // 2


def test_empty_text_is_one_segment() -> None:
    """An empty body is billed as one GSM-7 segment, and splits into one empty part."""
    assert segment_info("") == SegmentInfo("GSM-7", 0, 1, 160)
    assert split_segments("") == [""]


@pytest.mark.parametrize(
    ("length", "segments", "per_segment"),
    [(1, 1, 160), (160, 1, 160), (161, 2, 153), (306, 2, 153), (307, 3, 153), (459, 3, 153)],
)
def test_gsm7_segment_boundaries(length: int, segments: int, per_segment: int) -> None:
    """GSM-7: up to 160 septets is 1 segment, beyond that 153 per segment."""
    info = segment_info("a" * length)
    assert info == SegmentInfo("GSM-7", length, segments, per_segment)
    assert sms_cost("a" * length) == segments


@pytest.mark.parametrize(
    ("length", "segments", "per_segment"),
    [(70, 1, 70), (71, 2, 67), (134, 2, 67), (135, 3, 67), (201, 3, 67)],
)
def test_ucs2_segment_boundaries(length: int, segments: int, per_segment: int) -> None:
    """UCS-2: up to 70 units is 1 segment, beyond that 67 per segment."""
    info = segment_info(HAN * length)
    assert info == SegmentInfo("UCS-2", length, segments, per_segment)


def test_euro_signs_fill_a_segment_at_80() -> None:
    """80 euro signs are 160 septets (1 segment); 81 are 162 septets (2 segments)."""
    assert segment_info("€" * 80) == SegmentInfo("GSM-7", 160, 1, 160)
    assert segment_info("€" * 81) == SegmentInfo("GSM-7", 162, 2, 153)
    # 76 euro signs (152 septets) fill a 153-septet part, since the 77th would straddle it.
    assert [len(part) for part in split_segments("€" * 81)] == [76, 5]


def test_extension_character_is_not_split_across_segments() -> None:
    """An extension character at septet 153 moves whole to the next segment."""
    text = "a" * 152 + "€" + "a" * 10
    parts = split_segments(text)
    assert parts == ["a" * 152, "€" + "a" * 10]
    assert segment_info(text).segments == 2


def test_extension_character_at_boundary_can_cost_an_extra_segment() -> None:
    """306 septets need 3 segments when a euro sign cannot be split at the first boundary."""
    text = "a" * 152 + "€" + "a" * 152
    assert segment_info(text) == SegmentInfo("GSM-7", 306, 3, 153)
    assert [septets(part) for part in split_segments(text)] == [152, 153, 1]


def test_surrogate_pair_is_not_split_across_segments() -> None:
    """An emoji that would straddle unit 67 moves whole to the next segment."""
    text = HAN * 66 + EMOJI + HAN * 10
    parts = split_segments(text)
    assert parts == [HAN * 66, EMOJI + HAN * 10]
    for part in parts:
        part.encode("utf-16-le")  # a lone surrogate would raise here


def test_surrogate_pair_at_boundary_can_cost_an_extra_segment() -> None:
    """134 units need 3 segments when an emoji cannot be split at the first boundary."""
    text = HAN * 66 + EMOJI + HAN * 66
    assert segment_info(text) == SegmentInfo("UCS-2", 134, 3, 67)
    assert [utf16_units(part) for part in split_segments(text)] == [66, 67, 1]


@pytest.mark.parametrize(
    "text",
    ["a" * 500, "€a" * 200, HAN * 300, (EMOJI + "ab") * 90, "x" * 160, ("{" + "b" * 7) * 40],
)
def test_split_segments_round_trips_and_matches_segment_info(text: str) -> None:
    """The parts join back to the text, match the segment count and each fits its limit."""
    info = segment_info(text)
    parts = split_segments(text)
    assert "".join(parts) == text
    assert len(parts) == info.segments
    count = septets if info.encoding == "GSM-7" else utf16_units
    assert all(count(part) <= info.per_segment for part in parts)


def test_short_alert_renders_whole_and_unnumbered() -> None:
    """An alert that fits is one unnumbered message with headline, instruction, area, link."""
    alert = build(instruction="Go to a basement.", areas=[{"description": "Springfield"}])
    messages = render_sms(alert, language=None, max_segments=1, link=LINK)
    assert messages == [
        f"Tornado approaching Springfield\nGo to a basement.\nArea: Springfield\nMore: {LINK}"
    ]


def test_language_choice_picks_the_matching_info_block() -> None:
    """The subscriber's language picks its info block; an unknown one gets the first block."""
    alert = build(
        instruction="Go to a basement.",
        translations=[
            {
                "language": "es-US",
                "headline": "Tornado se acerca",
                "instruction": "Vaya al sotano.",
            },
            {"language": "fr-CA", "headline": "Tornade en approche"},
        ],
    )
    spanish = render_sms(alert, language="es-MX", max_segments=1, link=None)
    assert spanish == ["Tornado se acerca\nVaya al sotano."]
    french = render_sms(alert, language="fr-CA", max_segments=1, link=None)
    assert french == ["Tornade en approche"]
    fallback = render_sms(alert, language="de", max_segments=1, link=None)
    assert fallback == ["Tornado approaching Springfield\nGo to a basement."]


def test_msg_type_prefix_leads_the_headline() -> None:
    """Update and Cancel alerts carry their prefix before the headline."""
    update = build(msg_type="Update", references=[REF])
    cancel = build(msg_type="Cancel", references=[REF])
    assert render_sms(update, language=None, max_segments=1, link=None)[0].startswith(
        "UPDATE: Tornado"
    )
    assert render_sms(cancel, language=None, max_segments=1, link=None)[0].startswith(
        "CANCELLED: Tornado"
    )


def test_whitespace_is_squashed_so_tabs_do_not_force_ucs2() -> None:
    """Tabs, no-break spaces and blank lines in sender text become single spaces."""
    alert = build(instruction="Go\tto a\u00a0basement.\n\n  Stay there.")
    (message,) = render_sms(alert, language=None, max_segments=1, link=None)
    assert message.endswith("\nGo to a basement. Stay there.")
    assert encoding_of(message) == "GSM-7"


def test_truncate_keeps_within_limit_and_ends_with_link() -> None:
    """Truncation gives one message within max_segments, cut at a word end, ending in the link."""
    alert = build(instruction=LONG_INSTRUCTION)
    for max_segments in (1, 2, 3):
        (message,) = render_sms(alert, language=None, max_segments=max_segments, link=LINK)
        assert sms_cost(message) <= max_segments
        assert message.endswith(f"... {LINK}")
        assert encoding_of(message) == "GSM-7"
        kept = message.removesuffix(f"... {LINK}")
        # Whole words only: the kept text is a word-for-word prefix of the full text.
        full = words("Tornado approaching Springfield\n" + LONG_INSTRUCTION)
        assert words(kept) == full[: len(words(kept))]
        assert len(words(kept)) > 1


def test_truncate_uses_the_room_it_has() -> None:
    """Truncation fills the limit: one more word would not fit."""
    alert = build(instruction=LONG_INSTRUCTION)
    (message,) = render_sms(alert, language=None, max_segments=2, link=LINK)
    kept = message.removesuffix(f"... {LINK}")
    full = words("Tornado approaching Springfield\n" + LONG_INSTRUCTION)
    longer = kept + " " + full[len(words(kept))] + f"... {LINK}"
    assert sms_cost(longer) > 2


def test_truncate_without_link_ends_with_dots() -> None:
    """Without a link the truncated message ends with "..." and stays within the limit."""
    alert = build(instruction=LONG_INSTRUCTION)
    (message,) = render_sms(alert, language=None, max_segments=1, link=None)
    assert message.endswith("...")
    assert sms_cost(message) == 1


def test_truncate_in_ucs2_text_uses_the_ellipsis_character() -> None:
    """UCS-2 text is cut with "…" (1 unit), which costs nothing extra in UCS-2."""
    alert = build(headline="Tornado " + EMOJI, instruction=LONG_INSTRUCTION)
    (message,) = render_sms(alert, language=None, max_segments=2, link=LINK)
    assert message.endswith(f"\u2026 {LINK}")
    assert segment_info(message).encoding == "UCS-2"
    assert sms_cost(message) <= 2


def test_truncate_cuts_inside_a_word_only_when_no_word_end_fits() -> None:
    """A first word longer than the limit is cut mid-word rather than dropped."""
    alert = build(headline="x" * 190)
    (message,) = render_sms(alert, language=None, max_segments=1, link=LINK)
    assert sms_cost(message) == 1
    assert message.startswith("xxxx")
    assert message.endswith(f"... {LINK}")


def test_truncate_drops_a_link_too_long_for_the_limit() -> None:
    """A link that cannot fit even with an empty body is left out; the alert text stays."""
    alert = build(status="Exercise", instruction=LONG_INSTRUCTION)
    link = "https://example.org/" + "p" * 200
    (message,) = render_sms(alert, language=None, max_segments=1, link=link)
    assert sms_cost(message) == 1
    assert link not in message
    assert message.startswith("EXERCISE - NOT A REAL ALERT\nTornado approaching")


def test_split_gives_numbered_messages_each_within_limit() -> None:
    """Split gives "(k/n)" messages, each within max_segments, losing no words, link last."""
    alert = build(instruction=LONG_INSTRUCTION)
    messages = render_sms(alert, language=None, max_segments=2, link=LINK, policy="split")
    total = len(messages)
    assert total > 1
    body_words: list[str] = []
    for k, message in enumerate(messages, start=1):
        assert message.startswith(f"({k}/{total}) ")
        assert sms_cost(message) <= 2
        body_words += words(message.removeprefix(f"({k}/{total}) "))
    full = words(f"Tornado approaching Springfield\n{LONG_INSTRUCTION}\nMore: {LINK}")
    assert body_words == full
    assert messages[-1].endswith(f"More: {LINK}")


def test_split_numbers_past_nine_messages() -> None:
    """With many messages the two-digit numbering still keeps each within the limit."""
    alert = build(status="Test", instruction=LONG_INSTRUCTION)
    messages = render_sms(alert, language=None, max_segments=1, link=LINK, policy="split")
    total = len(messages)
    assert total >= 10
    for k, message in enumerate(messages, start=1):
        assert message.startswith(f"({k}/{total}) TEST - NOT A REAL ALERT\n")
        assert sms_cost(message) == 1


@pytest.mark.parametrize("policy", ["truncate", "split"])
def test_exercise_marker_is_in_every_message(policy: str) -> None:
    """Every message of an Exercise alert carries the marker, under both policies."""
    alert = build(status="Exercise", instruction=LONG_INSTRUCTION)
    messages = render_sms(
        alert,
        language=None,
        max_segments=1,
        link=LINK,
        policy="split" if policy == "split" else "truncate",
    )
    assert messages
    for message in messages:
        assert "EXERCISE - NOT A REAL ALERT\n" in message
        assert sms_cost(message) == 1


def test_actual_alert_has_no_marker() -> None:
    """Live alerts carry no status marker."""
    (message,) = render_sms(build(), language=None, max_segments=1, link=None)
    assert message == "Tornado approaching Springfield"


def test_sms_markers_cover_every_non_actual_status_in_gsm7() -> None:
    """Each status render marks has an SMS marker, and our fixed text is all GSM-7."""
    assert set(SMS_STATUS_MARKERS) == set(STATUS_MARKERS)
    fixed = [*SMS_STATUS_MARKERS.values(), *MSG_TYPE_PREFIXES.values(), "More: ", "Area: ", "..."]
    assert all(encoding_of(text) == "GSM-7" for text in fixed)


@pytest.mark.parametrize("status", ["Actual", "Exercise", "Test", "System", "Draft"])
@pytest.mark.parametrize("msg_type", ["Alert", "Update", "Cancel"])
@pytest.mark.parametrize("policy", ["truncate", "split"])
def test_all_latin_alert_renders_gsm7_only(status: str, msg_type: str, policy: str) -> None:
    """An all-Latin alert stays GSM-7 whatever its status, type, policy or truncation."""
    references = [REF] if msg_type != "Alert" else []
    alert = build(
        status=status,
        msg_type=msg_type,
        references=references,
        instruction=LONG_INSTRUCTION,
        areas=[{"description": "Springfield"}, {"description": "Shelbyville"}],
    )
    assert alert.status is Status(status)
    assert alert.msg_type is MsgType(msg_type)
    messages = render_sms(
        alert,
        language="en",
        max_segments=2,
        link=LINK,
        policy="split" if policy == "split" else "truncate",
    )
    assert all(encoding_of(message) == "GSM-7" for message in messages)


def test_alert_without_info_renders_identifier_and_note() -> None:
    """An alert with no info blocks still names itself, with its prefix and marker."""
    alert = Alert(
        identifier="id9",
        sender="desk@example.org",
        sent=SENT,
        status=Status.TEST,
        msg_type=MsgType.CANCEL,
        scope=Scope.PUBLIC,
        references=(REF,),
        note="Withdrawn.",
    )
    assert render_sms(alert, language=None, max_segments=1, link=None) == [
        "TEST - NOT A REAL ALERT\nCANCELLED: Alert id9 from desk@example.org\nWithdrawn."
    ]


def test_render_is_deterministic() -> None:
    """The same alert and arguments always give the same messages."""
    alert = build(instruction=LONG_INSTRUCTION)
    first = render_sms(alert, language="en", max_segments=2, link=LINK, policy="split")
    assert render_sms(alert, language="en", max_segments=2, link=LINK, policy="split") == first


def test_max_segments_below_one_is_refused() -> None:
    """A limit of zero segments is a configuration error, not an empty message."""
    with pytest.raises(ValueError, match="max_segments"):
        render_sms(build(), language=None, max_segments=0, link=None)
