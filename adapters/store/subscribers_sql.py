"""The subscribers table on both stores: statements, parameter encoding and row decoding.

Contract:
- An upsert takes each phone once: when a list repeats a phone, its last record wins (in the
  position of its first), and `(created, updated)` counts distinct phones. PostgreSQL would
  otherwise refuse the whole statement ("cannot affect row a second time").
- A new row takes the record's `opted_out_at`, `flagged` and `flagged_at`; an update replaces
  lat, lon, area_code, language and groups only, never opted_out_at, the flag or created_at
  (an import must not re-subscribe someone who said STOP, nor re-text a number the provider
  refused each time the same list is imported again).
- `flagged` (the provider's reason, e.g. "21614 not a mobile number") and `flagged_at` are
  set and cleared together by the flag statements, which leave opted_out_at alone. Clearing
  is the admin API's business: its update of one subscriber is the admin saying the record
  is fixed (see adapters.http.subscribers).
- `groups` is stored as a JSON array (text on SQLite, jsonb on PostgreSQL, which hands it
  back as text in the same spelling `json.dumps` writes) and read back as a tuple.
- `active_subscribers` (neither opted out nor flagged) reads only what the audience index
  needs: its records carry `opted_out_at=None` and `flagged=None` (true of every one) and
  `created_at=None` (not read). Decoding is
  cheap: one tuple per distinct groups text, shared by every row that has it.
- The SQLite functions taking a connection run on the store's writer thread inside the
  transaction of a group-commit batch, and never commit (as in `sqlite_outbox`).
"""

from __future__ import annotations

import gc
import itertools
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from adapters.store import schema
from broadcaster.ports import Subscriber

# Every column, in the order `subscriber_from_row` expects.
COLUMNS = (
    "id, phone, lat, lon, area_code, language, groups, opted_out_at, created_at, flagged, "
    "flagged_at"
)
# Subscribers decoded per collector pause (see `active_from_rows`).
DECODE_CHUNK = 20_000
# What the audience index needs, in the order `active_from_rows` expects.
ACTIVE_COLUMNS = "id, phone, lat, lon, area_code, language, groups"
_UPDATE_SET = (
    "lat = excluded.lat, lon = excluded.lon, area_code = excluded.area_code, "
    "language = excluded.language, groups = excluded.groups"
)
_INSERT_COLUMNS = (
    "phone, lat, lon, area_code, language, groups, opted_out_at, flagged, flagged_at, created_at"
)

# --- SQLite ------------------------------------------------------------------------------

# Composed from the constant column lists only, never from input, so S608 does not apply.
SQLITE_UPSERT = (
    f"INSERT INTO subscribers ({_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
    f"ON CONFLICT (phone) DO UPDATE SET {_UPDATE_SET}"
)
SQLITE_BY_PHONE = f"SELECT {COLUMNS} FROM subscribers WHERE phone = ?"  # noqa: S608
SQLITE_PAGE = f"SELECT {COLUMNS} FROM subscribers WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608
SQLITE_ACTIVE = (
    f"SELECT {ACTIVE_COLUMNS} FROM subscribers "  # noqa: S608
    "WHERE opted_out_at IS NULL AND flagged IS NULL ORDER BY id"
)
_SQLITE_DELETE = "DELETE FROM subscribers WHERE phone = ?"
_SQLITE_SET_OPTED_OUT = "UPDATE subscribers SET opted_out_at = ? WHERE phone = ?"
_SQLITE_FLAG = "UPDATE subscribers SET flagged = ?, flagged_at = ? WHERE phone = ?"

# Both backends: schema step 12's counter of subscriber writes (kept by triggers).
VERSION = "SELECT version FROM subscriber_changes WHERE id = 1"

# --- PostgreSQL --------------------------------------------------------------------------

# $1..$9 one array per column, $10 created_at. One statement for the whole list; ordinality
# keeps new ids in input order. `xmax = 0` holds exactly for rows this statement inserted
# (an updated row carries our transaction id in xmax), so the counts need no second look.
POSTGRES_UPSERT = (
    f"WITH up AS (INSERT INTO subscribers ({_INSERT_COLUMNS}) "  # noqa: S608
    "SELECT s.phone, s.lat, s.lon, s.area_code, s.language, s.groups::jsonb, s.opted_out_at, "
    "s.flagged, s.flagged_at, $10::timestamptz "
    "FROM unnest($1::text[], $2::float8[], $3::float8[], $4::text[], $5::text[], $6::text[], "
    "$7::timestamptz[], $8::text[], $9::timestamptz[]) WITH ORDINALITY "
    "AS s (phone, lat, lon, area_code, language, groups, opted_out_at, flagged, flagged_at, n) "
    f"ORDER BY s.n ON CONFLICT (phone) DO UPDATE SET {_UPDATE_SET} "
    "RETURNING (xmax = 0) AS inserted) "
    "SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FILTER (WHERE NOT inserted) FROM up"
)
POSTGRES_BY_PHONE = f"SELECT {COLUMNS} FROM subscribers WHERE phone = $1"  # noqa: S608
POSTGRES_PAGE = f"SELECT {COLUMNS} FROM subscribers WHERE id > $1 ORDER BY id LIMIT $2"  # noqa: S608
POSTGRES_ACTIVE = (
    f"SELECT {ACTIVE_COLUMNS} FROM subscribers "  # noqa: S608
    "WHERE opted_out_at IS NULL AND flagged IS NULL ORDER BY id"
)
POSTGRES_DELETE = "DELETE FROM subscribers WHERE phone = $1"
POSTGRES_SET_OPTED_OUT = "UPDATE subscribers SET opted_out_at = $2 WHERE phone = $1"
POSTGRES_FLAG = "UPDATE subscribers SET flagged = $2, flagged_at = $3 WHERE phone = $1"


# --- Encoding ------------------------------------------------------------------------------


def unique_by_phone(subscribers: Iterable[Subscriber]) -> list[Subscriber]:
    """One record per phone: the last given, in the position of the first."""
    by_phone: dict[str, Subscriber] = {}
    for subscriber in subscribers:
        by_phone[subscriber.phone] = subscriber
    return list(by_phone.values())


def encode_groups(groups: Iterable[str]) -> str:
    return json.dumps(list(groups))


def sqlite_upsert_rows(subscribers: Sequence[Subscriber], now: datetime) -> list[tuple[Any, ...]]:
    """SQLITE_UPSERT parameters, encoded in the caller's thread (the writer stays lean)."""
    created_at = schema.utc_text(now)
    return [
        (
            s.phone,
            s.lat,
            s.lon,
            s.area_code,
            s.language,
            encode_groups(s.groups),
            schema.utc_text(s.opted_out_at),
            s.flagged,
            schema.utc_text(s.flagged_at),
            created_at,
        )
        for s in subscribers
    ]


def postgres_upsert_args(subscribers: Sequence[Subscriber], now: datetime) -> list[Any]:
    """POSTGRES_UPSERT's ten arguments: nine column arrays and created_at."""
    return [
        [s.phone for s in subscribers],
        [None if s.lat is None else float(s.lat) for s in subscribers],
        [None if s.lon is None else float(s.lon) for s in subscribers],
        [s.area_code for s in subscribers],
        [s.language for s in subscribers],
        [encode_groups(s.groups) for s in subscribers],
        [None if s.opted_out_at is None else schema.as_utc(s.opted_out_at) for s in subscribers],
        [s.flagged for s in subscribers],
        [None if s.flagged_at is None else schema.as_utc(s.flagged_at) for s in subscribers],
        schema.as_utc(now),
    ]


# --- SQLite writes (writer thread) ----------------------------------------------------------


def sqlite_upsert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
    """Upsert `rows` (one per distinct phone); returns (created, updated). New rows are
    exactly those with an id above the maximum before: AUTOINCREMENT ids only grow, an
    update keeps its row's id, and the batch transaction keeps other writers out."""
    before = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM subscribers").fetchone()[0])
    conn.executemany(SQLITE_UPSERT, rows)
    created = int(
        conn.execute("SELECT COUNT(*) FROM subscribers WHERE id > ?", (before,)).fetchone()[0]
    )
    return created, len(rows) - created


def sqlite_delete(conn: sqlite3.Connection, phone: str) -> bool:
    return conn.execute(_SQLITE_DELETE, (phone,)).rowcount > 0


def sqlite_set_opted_out(conn: sqlite3.Connection, phone: str, at_text: str | None) -> bool:
    return conn.execute(_SQLITE_SET_OPTED_OUT, (at_text, phone)).rowcount > 0


def flag_values(reason: str | None, at: datetime | None) -> tuple[str | None, datetime | None]:
    """(flagged, flagged_at) to write: both set, or both cleared when `reason` is None."""
    return (None, None) if reason is None else (reason, None if at is None else schema.as_utc(at))


def sqlite_flag(
    conn: sqlite3.Connection, phone: str, reason: str | None, at_text: str | None
) -> bool:
    return conn.execute(_SQLITE_FLAG, (reason, at_text, phone)).rowcount > 0


# --- Decoding (both backends) ----------------------------------------------------------------


def groups_decoder() -> Callable[[str], tuple[str, ...]]:
    """JSON groups text -> tuple, parsing each distinct text once (per decoder)."""
    cache: dict[str, tuple[str, ...]] = {}

    def decode(text: str) -> tuple[str, ...]:
        groups = cache.get(text)
        if groups is None:
            groups = cache[text] = tuple(json.loads(text))
        return groups

    return decode


def subscriber_from_row(
    row: Any,
    opted_out_at: datetime | None,
    created_at: datetime | None,
    flagged_at: datetime | None,
    decode_groups: Callable[[str], tuple[str, ...]] | None = None,
) -> Subscriber:
    """Decode a row selected with COLUMNS; the caller decodes the three times, whose encoding
    differs per backend."""
    groups = (decode_groups or groups_decoder())(row[6])
    return Subscriber(
        phone=row[1],
        lat=row[2],
        lon=row[3],
        area_code=row[4],
        language=row[5],
        groups=groups,
        opted_out_at=opted_out_at,
        id=int(row[0]),
        created_at=created_at,
        flagged=row[9],
        flagged_at=flagged_at,
    )


def active_from_rows(rows: Iterable[Any]) -> list[Subscriber]:
    """Decode rows selected with ACTIVE_COLUMNS (same shape on both backends; driver rows
    are untyped: sqlite3 tuples, asyncpg Records).

    The records live as long as the index built from them, so they are moved out of the
    collector's reach (`gc.freeze`), `DECODE_CHUNK` at a time: decoded with the collector
    paused (a million new records would otherwise trigger repeated full collections over an
    ever larger heap), then one young collection, then the freeze. The young collection
    walks only that chunk and whatever else was allocated meanwhile (a few ms), and frees
    the cycles the event loop dropped meanwhile: the stores call this in a worker thread,
    so the loop runs on, and a freeze without it would keep those cycles for good. Freezing
    all at the end instead would make the first collection after the pause walk every
    record at once, holding the GIL for a few hundred ms."""
    decode = groups_decoder()
    remaining = iter(rows)
    decoded: list[Subscriber] = []
    was_enabled = gc.isenabled()
    try:
        while True:
            gc.disable()
            chunk = [
                Subscriber(
                    phone=row[1],
                    lat=row[2],
                    lon=row[3],
                    area_code=row[4],
                    language=row[5],
                    groups=decode(row[6]),
                    id=row[0],
                )
                for row in itertools.islice(remaining, DECODE_CHUNK)
            ]
            decoded += chunk
            # Walks this chunk and what else is young (a few ms), freeing the cycles the
            # loop dropped meanwhile; what survives is frozen.
            gc.collect(0)
            gc.freeze()
            if was_enabled:
                gc.enable()
            if len(chunk) < DECODE_CHUNK:
                return decoded
    finally:
        if was_enabled:
            gc.enable()


def active_from_owned_rows(owned: list[list[Any]]) -> list[Subscriber]:
    """`active_from_rows` of the one list of rows in `owned`, taking it out. The stores call
    it in a worker thread with `owned` holding the only reference to the rows, so both the
    decoding (seconds of CPU for a million rows) and the freeing of the driver rows (a few
    hundred ms) happen off the event loop, which serves on while the SMS directory reloads."""
    return active_from_rows(owned.pop())
