"""Replies, poll votes and cursors on both stores: statements, parameter encoding, decoding.

Contract:
- A reply is unique on (source, external_id): an insert that meets an earlier one changes
  nothing and hands the earlier one back (`ON CONFLICT DO NOTHING RETURNING` the new row in
  one statement; only a conflict costs a second read).
- `LOOKUP`: the reply stored under a key and the newest SMS alert sent to a number, in one
  statement (an inbound SMS needs both before it is triaged), decoded by `lookup_result`.
- `categories` is a JSON array of strings and `entities` any JSON value (text on SQLite,
  jsonb on PostgreSQL, which asyncpg hands back as text); both decode with `json.loads`.
- `list_query` builds the one filtered listing both backends run; placeholders are `?` on
  SQLite and `$n` on PostgreSQL. Every fragment is a constant of this module: only values
  travel as parameters.
- Poll votes: one row per (alert, voter); a later vote replaces an earlier one, never the
  other way round (a redelivered old reply cannot undo a newer vote).
- The SQLite functions taking a connection run on the store's writer thread inside a
  group-commit batch and never commit (as in `sqlite_outbox`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from adapters.store import schema
from broadcaster.ports import NewReply, ReplySource, ReplyState, StoredReply

Dialect = Literal["sqlite", "postgres"]

# The order `reply_from_row` expects.
COLUMNS = (
    "id, source, external_id, text, received_at, sender, alert_id, lat, lon, media_url, "
    "in_reply_to, categories, score, entities, state, state_by, state_at, cluster_id"
)
_R_COLUMNS = ", ".join(f"r.{c.strip()}" for c in COLUMNS.split(","))
_INSERT_COLUMNS = (
    "source, external_id, alert_id, sender, text, received_at, categories, score, entities, "
    "lat, lon, media_url, in_reply_to, cluster_id"
)

# --- SQLite ------------------------------------------------------------------------------

# Composed from the constant column lists only, never from input, so S608 does not apply.
_SQLITE_INSERT = (
    f"INSERT INTO replies ({_INSERT_COLUMNS}) VALUES ({', '.join('?' * 14)}) "  # noqa: S608
    f"ON CONFLICT (source, external_id) DO NOTHING RETURNING {COLUMNS}"
)
SQLITE_BY_ID = f"SELECT {COLUMNS} FROM replies WHERE id = ?"  # noqa: S608
# One constant statement for any number of ids (prepared once, cached by sqlite3).
SQLITE_BY_IDS = f"SELECT {COLUMNS} FROM replies WHERE id IN (SELECT value FROM json_each(?))"  # noqa: S608
SQLITE_BY_KEY = f"SELECT {COLUMNS} FROM replies WHERE source = ? AND external_id = ?"  # noqa: S608
SQLITE_LAST_SMS_ALERT = (
    "SELECT alert_id FROM deliveries WHERE channel = 'sms' AND recipient = ? "
    "AND state IN ('sent', 'delivered') ORDER BY id DESC LIMIT 1"
)
# The one-row LEFT JOIN always yields a row: the alert (index deliveries_sms_recipient; a NULL
# phone matches nothing), then the reply's COLUMNS, all NULL when there is none.
SQLITE_LOOKUP = (
    f"SELECT ({SQLITE_LAST_SMS_ALERT}), {_R_COLUMNS} FROM (SELECT 1) AS one "  # noqa: S608
    "LEFT JOIN replies AS r ON r.source = ? AND r.external_id = ?"
)
SQLITE_CURSOR = "SELECT value FROM cursors WHERE name = ?"
_SQLITE_SET_CURSOR = (
    "INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
_SQLITE_VOTE = (
    "INSERT INTO poll_votes (alert_id, voter, option_key, reply_id, voted_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (alert_id, voter) DO UPDATE SET "
    "option_key = excluded.option_key, reply_id = excluded.reply_id, "
    "voted_at = excluded.voted_at WHERE excluded.voted_at >= poll_votes.voted_at"
)
SQLITE_TALLY = "SELECT option_key, COUNT(*) FROM poll_votes WHERE alert_id = ? GROUP BY option_key"

# --- PostgreSQL --------------------------------------------------------------------------

POSTGRES_INSERT = (
    f"INSERT INTO replies ({_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, "  # noqa: S608
    "$7::jsonb, $8, $9::jsonb, $10, $11, $12, $13, $14) "
    f"ON CONFLICT (source, external_id) DO NOTHING RETURNING {COLUMNS}"
)
POSTGRES_BY_ID = f"SELECT {COLUMNS} FROM replies WHERE id = $1"  # noqa: S608
POSTGRES_BY_KEY = f"SELECT {COLUMNS} FROM replies WHERE source = $1 AND external_id = $2"  # noqa: S608
POSTGRES_LAST_SMS_ALERT = (
    "SELECT alert_id FROM deliveries WHERE channel = 'sms' AND recipient = $1 "
    "AND state IN ('sent', 'delivered') ORDER BY id DESC LIMIT 1"
)
POSTGRES_LOOKUP = (
    f"SELECT ({POSTGRES_LAST_SMS_ALERT}), {_R_COLUMNS} FROM (SELECT 1) AS one "  # noqa: S608
    "LEFT JOIN replies AS r ON r.source = $2 AND r.external_id = $3"
)
POSTGRES_BY_IDS = f"SELECT {COLUMNS} FROM replies WHERE id = ANY($1::bigint[])"  # noqa: S608
POSTGRES_X_POSTS = (
    "SELECT provider_ref, alert_id FROM deliveries "
    "WHERE channel = 'x' AND provider_ref = ANY($1::text[])"
)
POSTGRES_CURSOR = "SELECT value FROM cursors WHERE name = $1"
POSTGRES_SET_CURSOR = (
    "INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
POSTGRES_VOTE = (
    "INSERT INTO poll_votes AS v (alert_id, voter, option_key, reply_id, voted_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (alert_id, voter) DO UPDATE SET "
    "option_key = excluded.option_key, reply_id = excluded.reply_id, "
    "voted_at = excluded.voted_at WHERE excluded.voted_at >= v.voted_at"
)
POSTGRES_TALLY = (
    "SELECT option_key, COUNT(*) FROM poll_votes WHERE alert_id = $1 GROUP BY option_key"
)


# --- Encoding ------------------------------------------------------------------------------


# Exact types that are already JSON (subclasses such as StrEnum take the general path).
_PLAIN = frozenset({type(None), bool, int, float, str})


def jsonable(value: object) -> Any:
    """`value` as plain JSON types: mappings, sequences, sets (sorted), dataclasses and
    pydantic models are walked; anything else becomes its text."""
    # Exact-type checks first: every stored reply's entities pass through here, and a chain
    # of isinstance checks (one against the Mapping ABC) per nested value is most of its cost.
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, list | tuple):  # never a Mapping or a set: checked first, same result
        return [v if type(v) in _PLAIN else jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str):  # subclasses, e.g. StrEnum
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Field by field rather than through `asdict`, which deep-copies the whole value only
        # for it to be walked again here; the result is the same.
        return {f.name: jsonable(getattr(value, f.name)) for f in _fields(type(value))}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return jsonable(dump(mode="json"))
    return str(value)


@functools.cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


def insert_values(new: NewReply) -> list[Any]:
    """The insert parameters in `_INSERT_COLUMNS` order; received_at as aware UTC."""
    reply = new.reply
    return [
        ReplySource(reply.source).value,
        reply.external_id,
        reply.alert_id,
        reply.sender,
        reply.text,
        schema.as_utc(reply.received_at),
        json.dumps(list(new.categories)),
        None if new.score is None else float(new.score),
        json.dumps(jsonable(new.entities)),
        reply.lat,
        reply.lon,
        reply.media_url,
        reply.in_reply_to,
        new.cluster_id,
    ]


def list_query(
    dialect: Dialect,
    *,
    limit: int,
    category: str | None,
    since: datetime | None,
    state: ReplyState | None,
    after_id: int | None,
    before_id: int | None,
    cluster: int | None = None,
    alert: str | None = None,
) -> tuple[str, list[Any]]:
    """The filtered listing: (sql, params). Oldest first after `after_id`, else newest first."""
    params: list[Any] = []

    def mark(value: Any) -> str:
        params.append(value)
        return "?" if dialect == "sqlite" else f"${len(params)}"

    where: list[str] = []
    if category is not None:
        if dialect == "sqlite":
            where.append(
                f"EXISTS (SELECT 1 FROM json_each(categories) WHERE value = {mark(category)})"  # noqa: S608
            )
        else:
            where.append(f"categories @> jsonb_build_array({mark(category)}::text)")
    if since is not None:
        value = schema.utc_text(since) if dialect == "sqlite" else schema.as_utc(since)
        where.append(f"received_at >= {mark(value)}")
    if state is not None:
        where.append(f"state = {mark(ReplyState(state).value)}")
    if cluster is not None:
        where.append(f"cluster_id = {mark(cluster)}")  # the partial index replies_cluster
    if alert is not None:
        where.append(f"alert_id = {mark(alert)}")  # the index replies_alert_id
    if after_id is not None:
        where.append(f"id > {mark(after_id)}")
        order = "id"
    else:
        if before_id is not None:
            where.append(f"id < {mark(before_id)}")
        order = "id DESC"
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {COLUMNS} FROM replies{clause} ORDER BY {order} LIMIT {mark(limit)}"  # noqa: S608
    return sql, params


# --- SQLite writes (writer thread) ----------------------------------------------------------


def sqlite_insert(conn: sqlite3.Connection, params: list[Any]) -> tuple[StoredReply, bool]:
    encoded = [schema.utc_text(v) if isinstance(v, datetime) else v for v in params]
    row = conn.execute(_SQLITE_INSERT, encoded).fetchone()
    if row is not None:
        return sqlite_reply(row), True
    existing = conn.execute(SQLITE_BY_KEY, (encoded[0], encoded[1])).fetchone()
    return sqlite_reply(existing), False


def sqlite_set_cursor(conn: sqlite3.Connection, name: str, value: str, at: str | None) -> None:
    conn.execute(_SQLITE_SET_CURSOR, (name, value, at))


def sqlite_vote(conn: sqlite3.Connection, values: tuple[Any, ...]) -> bool:
    return conn.execute(_SQLITE_VOTE, values).rowcount > 0


# --- Decoding (both backends) ----------------------------------------------------------------


_SOURCES = {s.value: s for s in ReplySource}
_STATES = {s.value: s for s in ReplyState}
_loads = json.JSONDecoder().decode


def reply_from_row(row: Any, parse_time: Callable[[Any], datetime | None]) -> StoredReply:
    """Decode a row selected with COLUMNS; `parse_time` decodes the backend's times."""
    received_at = parse_time(row[4])
    assert received_at is not None  # NOT NULL column
    # Every stored reply is decoded at least twice (insert, feed): plain dict lookups for the
    # enums, the decoder's method for the JSON columns.
    return StoredReply(
        id=int(row[0]),
        source=_SOURCES[row[1]],
        external_id=row[2],
        text=row[3],
        received_at=received_at,
        sender=row[5],
        alert_id=row[6],
        lat=row[7],
        lon=row[8],
        media_url=row[9],
        in_reply_to=row[10],
        categories=tuple(_loads(row[11])),
        score=None if row[12] is None else float(row[12]),
        entities=_loads(row[13]),
        state=_STATES[row[14]],
        state_by=row[15],
        state_at=parse_time(row[16]),
        cluster_id=None if row[17] is None else int(row[17]),
    )


def _sqlite_time(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    # utc_text wrote it with +00:00, which parses as UTC already: nothing to convert.
    return parsed if parsed.tzinfo is UTC else schema.as_utc(parsed)


def _postgres_time(value: Any) -> datetime | None:
    return None if value is None else schema.as_utc(value)


def sqlite_reply(row: Any) -> StoredReply:
    return reply_from_row(row, _sqlite_time)


def postgres_reply(row: Any) -> StoredReply:
    return reply_from_row(row, _postgres_time)


def lookup_result(
    row: Any, decode: Callable[[Any], StoredReply]
) -> tuple[StoredReply | None, str | None]:
    """A LOOKUP row: (the stored reply or None, the SMS alert or None)."""
    alert = None if row[0] is None else str(row[0])
    return (None if row[1] is None else decode(tuple(row)[1:])), alert


def first_match(post_ids: Sequence[str], rows: Sequence[Any]) -> str | None:
    """The alert of the first of `post_ids` that some row (provider_ref, alert_id) names."""
    by_post = {str(r[0]): str(r[1]) for r in rows}
    return next((by_post[p] for p in post_ids if p in by_post), None)


def tally(rows: Sequence[Any]) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in rows}
