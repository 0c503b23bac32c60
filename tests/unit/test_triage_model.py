"""The lexicon's hashtag-only terms and the shipped model on plain reports of the kind a
police account gets as replies (GUIDELINE.md's categories, decided by the text alone)."""

from __future__ import annotations

import pytest

from broadcaster.triage import classify
from broadcaster.triage.lexicon import Lexicon, packaged_lexicon
from broadcaster.triage.text import tokens_of


def groups(lexicon: Lexicon, text: str) -> set[str]:
    tokens, hashtags = tokens_of(text)
    return set(lexicon.match(tokens, hashtags))


def test_a_hashtag_only_term_matches_only_a_hashtag_ending() -> None:
    """The term "#strong" is found in #BostonStrong, #calgarystrong and #strong, never in prose."""
    lexicon = Lexicon.from_mapping({"support": ["#strong"], "leak": ["smell of gas"]})
    assert groups(lexicon, "Stay with us #BostonStrong") == {"support"}
    assert groups(lexicon, "#calgarystrong #abflood") == {"support"}
    assert groups(lexicon, "we are #strong") == {"support"}
    assert groups(lexicon, "a strong smell of gas") == {"leak"}
    assert groups(lexicon, "#strongbow on offer") == set()


def test_the_packaged_lexicon_reads_a_strong_smell_as_a_leak_not_as_sympathy() -> None:
    """A "strong smell of gas" is a leak report; "#ManchesterStrong" is sympathy."""
    lexicon = packaged_lexicon()
    assert groups(lexicon, "Strong smell of gas by the station") == {"hz_leak"}
    assert "neg_sympathy" in groups(lexicon, "Thinking of you all #ManchesterStrong")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Strong smell of gas by the Arndale entrance on Market St, people coughing", {"hazard"}),
        ("Smoke pouring out of the first floor of 12 Oldham St, still people inside", {"hazard"}),
        ("Road flooded outside Piccadilly station, a car is stuck in the water", {"hazard"}),
        (
            "Man in a black hoodie and grey joggers running towards Deansgate, white male 30s",
            {"suspect"},
        ),
        ("Guy in a red jacket with a knife ran off towards Piccadilly Gardens", {"suspect"}),
        ("Thank you for letting us know", set()),
        ("Praying for all the families", set()),
        ("Is the tram still running to Bury?", set()),
    ],
)
def test_the_shipped_model_on_plain_reports(text: str, expected: set[str]) -> None:
    """Clear reports reach their feed; thanks, prayers and travel questions reach none."""
    assert set(classify(text).categories) == expected
