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
        return tuple(f.name for f in fields(self) if getattr(self, f.name))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: only non-empty fields; coordinates as `[lat, lon]` pairs."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                out[f.name] = [list(v) for v in value] if f.name == "coordinates" else list(value)
        return out


def extract(text: str) -> Entities:
    """Every entity kind found in `text` (see the module docstring for the contract)."""
    urls = _unique(m.group(0).rstrip(".,;:!?)") for m in p.URL.finditer(text))
    # Links hold letters and digits that look like plates and times: match the rest only.
    bare = p.URL.sub(" ", text) if urls else text
    stems = {word[:4] for word in _WORD.findall(bare.lower())}
    mixed = p.LETTER_DIGIT.search(bare) is not None
    return Entities(
        plates=_plates(bare) if mixed else (),
        vehicles=_unique(_tidy(m.group(0)) for m in p.VEHICLE.finditer(bare))
        if stems & p.VEHICLE_GATE
        else (),
        persons=_unique(_tidy(m.group(0)) for m in p.PERSON.finditer(bare))
        if mixed or stems & p.PERSON_GATE
        else (),
        places=_places(bare, mixed) if mixed or stems & p.PLACE_GATE else (),
        coordinates=_coordinates(bare),
        times=_unique(_tidy(m.group(0)) for m in p.TIME.finditer(bare)),
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
        found.append((m.start(1), m.group(1)))
    found.sort()
    return _unique(_plate_key(plate) for _, plate in found)


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


def _places(text: str, mixed: bool) -> tuple[str, ...]:
    spans: list[tuple[int, str]] = []
    for pattern in (p.STREET, p.UK_POSTCODE, p.NEAR) if mixed else (p.STREET, p.NEAR):
        spans.extend((m.start(), _tidy(m.group(0))) for m in pattern.finditer(text))
    spans.sort()
    return _unique(span for _, span in spans)


def _coordinates(text: str) -> tuple[tuple[float, float], ...]:
    out: list[tuple[float, float]] = []
    for m in p.COORDINATES.finditer(text):
        lat, lon = float(m.group(1)), float(m.group(2))
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
