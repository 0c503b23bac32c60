"""Subscriber lists from CSV: validation that reports every bad row by line, drops none silently.

Contract of `parse_subscribers_csv(text, default_region=None)`:
- The first line is a header naming the columns: `phone` (required), and any of `lat`, `lon`,
  `area_code`, `language`, `groups` (separated by `;`). Unknown columns refuse the whole file
  (a misspelt `langauge` column must not silently drop every language).
- `phone` is parsed with phonenumbers (the `default_region`, e.g. "GB", allows national
  numbers) and must be a valid number; it is stored in E.164. `lat`/`lon` come together and
  in range; `language` is a language tag; an empty cell is "not given".
- A phone given twice refuses the later row, naming the first line.
- Returns the valid subscribers and one `RowError(line, problem)` per refused row (line
  numbers as an editor shows them, the header being line 1).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import phonenumbers

from broadcaster.ports import Subscriber

COLUMNS = ("phone", "lat", "lon", "area_code", "language", "groups")
_LANGUAGE = re.compile(r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
_MAX_ROWS = 5_000_000  # a sanity bound: far above any city, far below memory trouble


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


@dataclass(frozen=True, slots=True)
class ParsedSubscribers:
    subscribers: list[Subscriber]
    errors: list[RowError]


class RowProblem(ValueError):
    """One cell is wrong; the message says which and why."""


def parse_subscribers_csv(text: str, *, default_region: str | None = None) -> ParsedSubscribers:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return ParsedSubscribers([], [RowError(1, "the file is empty: expected a header row")])
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or "phone" not in names or len(set(names)) != len(names):
        problem = (
            f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(COLUMNS)}"
            if unknown
            else "the header must name a `phone` column, and each column once"
        )
        return ParsedSubscribers([], [RowError(1, problem)])
    subscribers: list[Subscriber] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if line > _MAX_ROWS:
            errors.append(RowError(line, f"more than {_MAX_ROWS} rows; the rest is not read"))
            break
        if not any(cell.strip() for cell in row):
            continue  # blank lines are layout, not data
        if len(row) != len(names):
            errors.append(RowError(line, f"{len(row)} cells, the header has {len(names)}"))
            continue
        cells = {name: cell.strip() for name, cell in zip(names, row, strict=True)}
        try:
            subscriber = _subscriber(cells, default_region)
        except RowProblem as exc:
            errors.append(RowError(line, str(exc)))
            continue
        if subscriber.phone in first_line:
            errors.append(
                RowError(
                    line, f"{subscriber.phone} is already on line {first_line[subscriber.phone]}"
                )
            )
            continue
        first_line[subscriber.phone] = line
        subscribers.append(subscriber)
    return ParsedSubscribers(subscribers, errors)


def normalise_phone(raw: str, default_region: str | None = None) -> str:
    """`raw` as E.164, or RowProblem saying why it is not a valid number."""
    if not raw:
        raise RowProblem("phone is empty")
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if raw.startswith("+") or default_region else " (use +country format)"
        raise RowProblem(f"phone {raw!r} is not a phone number{hint}: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise RowProblem(f"phone {raw!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _subscriber(cells: dict[str, str], default_region: str | None) -> Subscriber:
    phone = normalise_phone(cells["phone"], default_region)
    lat = _coordinate(cells.get("lat", ""), "lat", 90.0)
    lon = _coordinate(cells.get("lon", ""), "lon", 180.0)
    if (lat is None) != (lon is None):
        raise RowProblem("lat and lon must be given together")
    language = cells.get("language", "") or "en-US"
    if not _LANGUAGE.match(language):
        raise RowProblem(f"language {language!r} is not a language tag such as en-GB")
    groups = tuple(g.strip() for g in cells.get("groups", "").split(";") if g.strip())
    return Subscriber(
        phone=phone,
        lat=lat,
        lon=lon,
        area_code=cells.get("area_code") or None,
        language=language,
        groups=groups,
    )


def _coordinate(raw: str, name: str, bound: float) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise RowProblem(f"{name} {raw!r} is not a number") from None
    if not -bound <= value <= bound:
        raise RowProblem(f"{name} {raw} is outside -{bound:g}..{bound:g}")
    return value
