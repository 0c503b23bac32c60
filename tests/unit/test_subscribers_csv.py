"""Subscriber CSV parsing: E.164 numbers, every bad row reported by line, none dropped."""

from __future__ import annotations

from broadcaster.subscribers import parse_subscribers_csv

GOOD = """phone,lat,lon,area_code,language,groups
+447911123423,53.48,-2.24,M1,en-GB,residents;businesses
07911 123456,,,M2,cy,
+1 202-555-0143,38.9,-77.0,,es-US,
"""


def test_valid_rows_become_e164_subscribers() -> None:
    """National numbers use the region; fields and groups are kept; no errors."""
    parsed = parse_subscribers_csv(GOOD, default_region="GB")
    assert parsed.errors == []
    first, second, third = parsed.subscribers
    assert (first.phone, first.lat, first.lon, first.area_code) == (
        "+447911123423",
        53.48,
        -2.24,
        "M1",
    )
    assert first.groups == ("residents", "businesses")
    assert (second.phone, second.lat, second.language) == ("+447911123456", None, "cy")
    assert (third.phone, third.language) == ("+12025550143", "es-US")


def test_bad_rows_are_reported_with_their_line_numbers() -> None:
    """Each refused row names its line and its problem; the good rows still come through."""
    text = (
        "phone,lat,lon,language\n"
        "+447911123423,53.4,-2.2,en-GB\n"
        "not-a-number,,,\n"
        "+447911123424,95,-2.2,en\n"
        "+447911123425,53.4,,en\n"
        "+447911123426,,,english!\n"
        "+447911123423,,,en\n"
        "\n"
        "+447911123427,1,2\n"
        "+44 12,,,\n"
    )
    parsed = parse_subscribers_csv(text)
    assert [s.phone for s in parsed.subscribers] == ["+447911123423"]
    problems = {error.line: error.problem for error in parsed.errors}
    assert sorted(problems) == [3, 4, 5, 6, 7, 9, 10]
    assert "not a phone number" in problems[3]
    assert "lat 95 is outside" in problems[4]
    assert "together" in problems[5]
    assert "language" in problems[6]
    assert "already on line 2" in problems[7]
    assert "3 cells, the header has 4" in problems[9]
    assert "not a valid number" in problems[10]


def test_unknown_column_refuses_the_file() -> None:
    """A misspelt column refuses the whole file rather than silently dropping its data."""
    parsed = parse_subscribers_csv("phone,langauge\n+447911123423,en\n")
    assert parsed.subscribers == []
    assert [(e.line, "langauge" in e.problem) for e in parsed.errors] == [(1, True)]
    assert parse_subscribers_csv("").errors[0].line == 1
    assert "phone" in parse_subscribers_csv("lat,lon\n1,2\n").errors[0].problem
