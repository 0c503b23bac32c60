"""What a responder acts on, pulled out of a post: plates, vehicles, people, places, times ...

Contract: `extract(text)` is pure and total — any string gives an `Entities` (empty fields when
nothing is found), never an exception. Each field keeps the spans as written (plates
upper-cased with single spaces, so "ab12cde" after "plate" and "AB12 CDE" are one plate), in
order of first appearance, without repeats. The patterns and why they are shaped as they are
live in `patterns.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from broadcaster.triage import patterns as p

_WORD = re.compile(r"[^\W\d_]+")
_DIGIT = re.compile(r"[0-9]")


@dataclass(frozen=True, slots=True)
class Entities:
    """Entities found in one post; every field is empty when none was found."""

    plates: tuple[str, ...] = ()
    vehicles: tuple[str, ...] = ()
    persons: tuple[str, ...] = ()
    places: tuple[str, ...] = ()
    coordinates: tuple[tuple[float, float], ...] = ()
    times: tuple[str, ...] = ()
    weapons: tuple[str, ...] = ()
    media: tuple[str, ...] = ()
    links: tuple[str, ...] = ()

    def kinds(self) -> tuple[str, ...]:
        """Names of the non-empty fields, in field order (model features use these)."""
        return tuple(name for name in _KINDS if getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: only non-empty fields; coordinates as `[lat, lon]` pairs."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                out[f.name] = [list(v) for v in value] if f.name == "coordinates" else list(value)
        return out


_KINDS = tuple(f.name for f in fields(Entities))
_HANDLES = re.compile(r"^\s*(?:@\w+[\s:,]*)+|\bRT\s*@\w+:?", re.IGNORECASE)
MAX_TEXT = 4000


def extract(text: str) -> Entities:
    """Every entity kind found in `text` (see the module docstring for the contract)."""
    # Triage runs on the event loop: a post longer than any reply we take (web tips 2,000
    # characters, SMS 1,600, MQTT replies 4,000) is read only this far.
    text = text[:MAX_TEXT]
    urls = _unique(m.group(0).rstrip(".,;:!?)") for m in p.URL.finditer(text))
    # Links hold letters and digits that look like plates and times: match the rest only.
    bare = p.URL.sub(" ", text) if urls else text
    # An X reply opens with handles ("@EmergencyDev Road flooded" is about a road), and a
    # retweet names its author ("RT @GMPolice:"): neither is a place or a plate. Elsewhere
    # "@" often means "at" ("fire @10:30", "crash @M60 junction 12"), so it is kept.
    if "@" in bare:
        bare = _HANDLES.sub(lambda m: " " * len(m.group(0)), bare)
    stems = {word[:4] for word in _WORD.findall(bare.lower())}
    mixed = p.LETTER_DIGIT.search(bare) is not None
    digits = mixed or _DIGIT.search(bare) is not None
    return Entities(
        plates=_plates(bare) if mixed else (),
        vehicles=_unique(_tidy(m.group(0)) for m in p.VEHICLE.finditer(bare))
        if stems & p.VEHICLE_GATE
        else (),
        persons=_persons(bare, stems, mixed),
        places=_places(bare, stems, mixed) if mixed or stems & p.PLACE_GATE else (),
        coordinates=_coordinates(bare, urls) if digits or urls else (),
        times=_unique(_tidy(m.group(0)) for m in p.TIME.finditer(bare))
        if digits or stems & p.TIME_GATE
        else (),
        weapons=_unique(m.group(0).lower() for m in p.WEAPON.finditer(bare))
        if stems & p.WEAPON_GATE
        else (),
        media=tuple(u for u in urls if p.MEDIA_URL.search(u)),
        links=tuple(u for u in urls if not p.MEDIA_URL.search(u)),
    )


def _plates(text: str) -> tuple[str, ...]:
    found: list[tuple[int, str]] = []
    for pattern in (p.UK_CURRENT_PLATE, p.UK_PREFIX_PLATE, p.UK_SUFFIX_PLATE, p.US_PLATE):
        for m in pattern.finditer(text):
            if not _looks_like_word_and_number(m.group(0)):
                found.append((m.start(), m.group(0)))
    for m in p.PLATE_AFTER_WORD.finditer(text):
        registration = _registration(m.group(1))
        if registration:
            found.append((m.start(1), registration))
    found.sort()
    return _unique(_plate_key(plate) for _, plate in found)


def _persons(text: str, stems: set[str], mixed: bool) -> tuple[str, ...]:
    spans: list[tuple[int, str]] = []
    for gate, on_digits, pattern in p.PERSON_PARTS:
        if (on_digits and mixed) or stems & gate:
            spans.extend((m.start(), _tidy(m.group(0))) for m in pattern.finditer(text))
    spans.sort()
    return _unique(span for _, span in spans)


def _registration(groups: str) -> str | None:
    """The registration at the start of `groups` (the one to three groups after a plate
    word, as written), or None. Hyphens join groups ("161-D-12345", "CX-45-YZ"). A space
    joins the next group only when the joined whole has a plate's shape and the group is
    written as a registration is: in capitals or digits after a capitalised start ("AB12
    CDE", "GHJ 4821", "P 123 ABC"); after a lower-case start only the two-group "ab12 cde"
    and "abc 1234" forms. So the words after a registration ("AB12 is a ...", "7ABC123 on")
    never join it. It must mix letters and digits: "starts with" is no registration."""
    parts = re.split(r"( |-)", groups)
    lower_start = parts[0].lower() == parts[0] and any(c.isalpha() for c in parts[0])
    best: str | None = None
    for end in range(1, len(parts) + 1, 2):
        span = "".join(parts[:end])
        compact = span.replace(" ", "").replace("-", "").upper()
        if len(compact) > 9:
            break
        if end > 1 and parts[end - 2] == " ":
            joined = parts[end - 1]
            if lower_start:
                if end != 3 or not p.LOWER_CASE_PLATE.fullmatch(compact):
                    break
            elif any(c.islower() for c in joined):
                break
            if not p.PLATE_SHAPE.fullmatch(compact):
                continue
        if any(c.isdigit() for c in compact) and any(c.isalpha() for c in compact):
            best = span
    return best


def _looks_like_word_and_number(span: str) -> bool:
    """ "MAY 2015", "FOR 1000": an upper-case word then a number is a headline, not a plate."""
    letters = span[:3]
    return letters in p.MONTHS or bool(re.fullmatch(r"[A-Z]{3} (?:19|20)[0-9]{2}", span))


def _plate_key(plate: str) -> str:
    """One spelling per plate: upper case, UK plates with the space where the DVLA puts it."""
    compact = re.sub(r"[\s-]", "", plate.upper())
    if re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z]{3}", compact):
        return compact[:4] + " " + compact[4:]
    return " ".join(plate.upper().split())


def _places(text: str, stems: set[str], mixed: bool) -> tuple[str, ...]:
    spans: list[tuple[int, int, str]] = []  # (start, end, as shown)
    patterns = (
        (p.STREET, mixed or stems & p.STREET_GATE),  # "5th Ave" starts with a digit
        (p.UK_POSTCODE, mixed),
        (p.NEAR, stems & p.NEAR_GATE),
        (p.NAMED_PLACE, stems & p.NAMED_PLACE_GATE),
    )
    for pattern, wanted in patterns:
        if wanted:
            spans.extend((m.start(), m.end(), _tidy(m.group(0))) for m in pattern.finditer(text))
    if mixed:
        for m in p.ROAD.finditer(text):
            group = next(g for g in (1, 2, 3) if m.group(g))
            spans.append((m.start(group), m.end(group), _tidy(m.group(group))))
    for m in p.ON_PLACE.finditer(text) if stems & p.ON_PLACE_GATE else ():
        if m.group(1):
            words = m.group(1).split()
            while words and words[0] in p.NOT_A_PLACE:
                words.pop(0)
            if words and words[-1] not in p.NOT_A_PLACE:
                spans.append((m.end(1) - len(" ".join(words)), m.end(1), " ".join(words)))
        else:
            spans.append((m.start(2), m.end(2), _tidy(m.group(2))))
    # A place found whole by one pattern and in part by another ("near Martin Place" and
    # "Martin Place"): the span that covers the other stands. Sorted by start, longest
    # first, one sweep drops every span inside the one before it.
    spans.sort(key=lambda span: (span[0], -span[1]))
    kept: list[str] = []
    reach = -1
    for _start, end, shown in spans:
        if end <= reach:
            continue
        kept.append(shown)
        reach = max(reach, end)
    return _unique(kept)


def _coordinates(text: str, urls: tuple[str, ...]) -> tuple[tuple[float, float], ...]:
    """Decimal pairs ("53.4808, -2.2426"), hemisphere forms ("53.48N 2.24W"), degrees
    minutes seconds, "lat .. lon ..", and the position in a maps link; in order of kind."""
    found: list[tuple[float, float]] = []
    if "." in text:
        found += [(float(m[1]), float(m[2])) for m in p.COORDINATES.finditer(text)]
        found += [(float(m[1]), float(m[2])) for m in p.COORDINATES_NAMED.finditer(text)]
        for m in p.COORDINATES_NSEW.finditer(text):
            lat, lon = float(m[1]), float(m[3])
            found.append((-lat if m[2] == "S" else lat, -lon if m[4] == "W" else lon))
    if "°" in text:
        for m in p.COORDINATES_DMS.finditer(text):
            lat = int(m[1]) + int(m[2]) / 60 + float(m[3] or 0) / 3600
            lon = int(m[5]) + int(m[6]) / 60 + float(m[7] or 0) / 3600
            found.append(
                (round(-lat if m[4] == "S" else lat, 6), round(-lon if m[8] == "W" else lon, 6))
            )
    for url in urls:
        found += [(float(m[1]), float(m[2])) for m in p.COORDINATES_IN_URL.finditer(url)]
    out: list[tuple[float, float]] = []
    for lat, lon in found:
        if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and (lat, lon) not in out:
            out.append((lat, lon))
    return tuple(out)


def _tidy(span: str) -> str:
    return " ".join(span.split()).rstrip(".,;:")


def _unique(spans: Any) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for span in spans:
        if span and span not in seen:
            seen[span] = None
    return tuple(seen)
