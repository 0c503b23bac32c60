"""Entity extraction: a table of positive and negative examples per entity kind."""

from __future__ import annotations

import time

import pytest

from broadcaster.triage import Entities, extract
from broadcaster.triage.entities import MAX_TEXT

# (text, field, expected value that must be present; None = the field must be empty)
CASES: list[tuple[str, str, object]] = [
    # plates: UK current, UK prefix/suffix, US, after a plate word
    ("silver car AB12 CDE seen", "plates", "AB12 CDE"),
    ("reg ab12cde, heading north", "plates", "AB12 CDE"),
    ("old Escort A123 BCD", "plates", "A123 BCD"),
    ("Mini ABC 123D parked", "plates", "ABC 123D"),
    ("plate ABC-1234 Texas", "plates", "ABC-1234"),
    ("California plate 7ABC123", "plates", "7ABC123"),
    ("It happened in MAY 2015", "plates", None),
    ("Flight 4U9525 was an A320", "plates", None),
    ("armed with an AK47 and COVID-19 rules", "plates", None),
    ("the M25 is closed both ways", "plates", None),
    # vehicles
    ("a silver Ford Focus sped off", "vehicles", "silver Ford Focus"),
    ("white van outside", "vehicles", "white van"),
    ("dark blue hatchback", "vehicles", "dark blue hatchback"),
    ("black flag in the window", "vehicles", None),
    ("statement from the White House", "vehicles", None),
    ("give to the Red Cross", "vehicles", None),
    # persons
    ("a man in his 20s", "persons", "in his 20s"),
    ("aged 30, about 6ft", "persons", "aged 30"),
    ("wearing a black hoodie and jeans", "persons", "wearing a black hoodie"),
    ("slim build, with a beard", "persons", "slim build"),
    ("a 25-year-old woman", "persons", "25-year-old"),
    ("this happened 30 years ago", "persons", None),
    ("aged care homes", "persons", None),
    # places
    ("heading down Wellington Road now", "places", "Wellington Road"),
    ("gas leak on Market St", "places", "Market St"),
    ("postcode M1 1AE", "places", "M1 1AE"),
    ("outside the station", "places", "outside the station"),
    ("near Martin Place", "places", "near Martin Place"),
    ("incendio en Calle de Alcalá", "places", "Calle de Alcalá"),
    ("in the near future", "places", None),
    ("think outside the box", "places", None),
    ("Greater St. Mark Church", "places", None),
    # coordinates
    ("I am at 51.5074, -0.1278 help", "coordinates", (51.5074, -0.1278)),
    ("version 1.2, 3.4", "coordinates", None),
    ("95.1234, 10.1234", "coordinates", None),
    # times
    ("shots at 14:30", "times", "at 14:30"),
    ("10 minutes ago", "times", "10 minutes ago"),
    ("around 3pm", "times", "3pm"),
    ("hace 5 minutos", "times", "hace 5 minutos"),
    ("the year 2013", "times", None),
    ("9/11 memorial", "times", None),
    # weapons
    ("he had a knife", "weapons", "knife"),
    ("carrying a machete", "weapons", "machete"),
    ("AR-15 rifle", "weapons", "ar-15"),
    ("tenía un cuchillo", "weapons", "cuchillo"),
    ("the gunman fled", "weapons", None),
    ("a bombshell report", "weapons", None),
    # media and links
    ("photo http://pic.twitter.com/abc123", "media", "http://pic.twitter.com/abc123"),
    ("video https://youtu.be/xyz", "media", "https://youtu.be/xyz"),
    ("story http://t.co/AbC12", "links", "http://t.co/AbC12"),
    ("story http://t.co/AbC12", "media", None),
    ("photo pic.twitter.com/aB3dE5fGh1", "media", "pic.twitter.com/aB3dE5fGh1"),
    # found by a battery of realistic posts (see test_plate_words_never_invent_a_plate too)
    ("Partial plate starts with KX63", "plates", "KX63"),
    ("Irish reg 161-D-12345", "plates", "161-D-12345"),
    ("registration P 123 ABC", "plates", "P 123 ABC"),
    ("maps https://maps.google.com/?q=29.7604,-95.3698", "coordinates", (29.7604, -95.3698)),
    ("spotted at 53.48N 2.24W", "coordinates", (53.48, -2.24)),
    ("lat 45.4215 lon -75.6972", "coordinates", (45.4215, -75.6972)),
    ("the 5N 3W bus. Thanks", "coordinates", None),
    ("Suspect is a white male, 30s, black hoodie, jeans", "persons", "white male, 30s"),
    ("Suspect is a white male, 30s, black hoodie, jeans", "persons", "black hoodie"),
    ("older man, grey hair, glasses", "persons", "grey hair"),
    ("Missing girl aged 7", "persons", "aged 7"),
    ("Thoughts with everyone, top work by police", "persons", None),
    ("Shots fired on Deansgate", "places", "Deansgate"),
    ("Manhunt in Watertown", "places", "Watertown"),
    ("crash on the M1 junction 24", "places", "M1 junction 24"),
    ("Gunman at Manchester Piccadilly station", "places", "Manchester Piccadilly station"),
    ("down old kent rd rn", "places", "old kent rd"),
    ("221 Baker Street", "places", "221 Baker Street"),
    ("O'Connell Street", "places", "O'Connell Street"),
    ("I saw it on Twitter on Monday", "places", None),
    ("an update from Sarah", "places", None),
    ("Suspect was all in black", "persons", "all in black"),
    ("the A1 service was great", "places", None),
    ("white transit van", "vehicles", "white transit van"),
    ("threw acid at two lads", "weapons", "acid"),
    ("Gun control now", "weapons", None),
    ("bomb squad on scene", "weapons", None),
    ("ten minutes ago", "times", "ten minutes ago"),
]


@pytest.mark.parametrize(("text", "kind", "expected"), CASES)
def test_entity_table(text: str, kind: str, expected: object) -> None:
    """Each example finds (or, for negatives, does not find) its entity kind."""
    found = getattr(extract(text), kind)
    if expected is None:
        assert found == (), f"{kind} wrongly found in {text!r}: {found}"
    else:
        assert expected in found, f"{expected!r} not in {found} for {text!r}"


@pytest.mark.parametrize(
    ("text", "plates"),
    [
        ("blk suv no plates parked outside the embassy 4 hrs", ()),
        ("reg started with", ()),
        ("Texas plate 7ABC123 on a red pickup", ("7ABC123",)),
        ("plate # GHJ 4821 heading north", ("GHJ 4821",)),
        ("plate starts with KX63", ("KX63",)),
        ("reg AB12 is a silver Ford", ("AB12",)),
        ("partial plate KX63 and the rest", ("KX63",)),
        ("plate starts with KX63 on a blue van", ("KX63",)),
        ("plate: AB12 the car", ("AB12",)),
        ("plate is 4 the end", ()),
        ("reg ab12 is a", ("AB12",)),
        ("reg ab12 cde seen", ("AB12 CDE",)),
        ("plate #AB12CDE", ("AB12 CDE",)),
    ],
)
def test_plate_words_never_invent_a_plate(text: str, plates: tuple[str, ...]) -> None:
    """After "plate"/"reg", only a registration counts: never the words that follow it."""
    assert extract(text).plates == plates


def test_links_are_not_mined_for_plates_or_times() -> None:
    """Letters and digits inside a URL never become plates or times."""
    entities = extract("see https://example.com/AB12CDE/12:30")
    assert entities.plates == ()
    assert entities.times == ()


def test_as_dict_keeps_only_found_kinds() -> None:
    """The JSON form lists only non-empty kinds, coordinates as [lat, lon]."""
    entities = extract("knife seen at 51.5, near 40.1234, -3.5678")
    assert entities.as_dict() == {"coordinates": [[40.1234, -3.5678]], "weapons": ["knife"]}
    assert Entities().as_dict() == {}
    assert Entities().kinds() == ()


@pytest.mark.parametrize(
    "text",
    [
        "1.5" + " " * 20_000 + "x",
        "station " + "A-" * 10_000 + "A x",
        "Station " + "A'" * 10_000 + " Road",
        "a1 plate" + " #" * 10_000 + "!",
        " ".join(["in Xxxx"] * 3_000),
    ],
)
def test_long_hostile_posts_are_read_only_to_the_cap(text: str) -> None:
    """Triage runs on the event loop: a post is read only to MAX_TEXT characters, and these
    shapes, which once made the expressions quadratic (seconds at 20 KB), stay far under a
    second (they take a few ms)."""
    started = time.perf_counter()
    assert extract(text) == extract(text[:MAX_TEXT])
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("text", ["", " ", "\x00", "🔥" * 500, "AB12 CDE" * 1000])
def test_extract_is_total(text: str) -> None:
    """Any string gives an Entities, never an exception."""
    assert isinstance(extract(text), Entities)


def test_leading_handles_and_retweet_authors_are_never_entities() -> None:
    """A reply "@EmergencyDev Road flooded" names a road, not a place "EmergencyDev Road";
    a leading handle shaped like a plate is no plate, nor a retweet's author; elsewhere "@"
    means "at" and what follows it is read."""
    found = extract("@EmergencyDev Road flooded outside Piccadilly station")
    assert found.places == ("outside Piccadilly station",)
    assert extract("@GMPolice @AB12CDE saw it on Market St").plates == ()
    assert extract("RT @AB12CDE: smoke on Market St").plates == ()
    assert extract("mail john@example.com about reg AB12 CDE").plates == ("AB12 CDE",)
    assert "10:30" in extract("fire @10:30 on Oldham St").times[0]
    assert extract("crash @ M60 junction 12").places
