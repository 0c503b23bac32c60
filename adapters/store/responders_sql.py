"""The responder side of replies and the audit log, on both stores: statements and the
writer-thread functions of SQLite.

Contract:
- The audit log is appended by reading the last row's hash and inserting the next row in
  the caller's transaction: on SQLite inside a writer batch (one writer, BEGIN IMMEDIATE
  across processes), on PostgreSQL after `pg_advisory_xact_lock(AUDIT_LOCK_KEY)`, so
  concurrent appenders queue and the chain never forks. `detail` is kept as the canonical
  JSON text the hash covers (text, not jsonb, on PostgreSQL too).
- A state change and its audit row, and a purge and its audit row, share one transaction.
- Reply events are written by the v9 triggers, never here; a purge deletes the purged
  replies' events and the poll votes they cast.
- Every fragment is a constant of this module: only values travel as parameters.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from adapters.store import replies_sql, schema
from broadcaster.audit import AuditEntry, AuditRecord, chain_hash
from broadcaster.ports import ReplyEvent, ReplyEventKind, ReplyState, StoredReply

# Any constant will do, as long as every broadcaster process uses the same one.
AUDIT_LOCK_KEY = 0x62636173745F6175  # "bcast_au"

_AUDIT_COLUMNS = "seq, at, actor, action, detail, prev_hash, hash"
_LAST_HASH = "SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1"
_COLS = replies_sql.COLUMNS

# --- SQLite ------------------------------------------------------------------------------

_SQLITE_AUDIT_INSERT = (
    "INSERT INTO audit_log (at, actor, action, detail, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?) RETURNING seq"
)
_SQLITE_AUDIT_INSERT_MANY = _SQLITE_AUDIT_INSERT.removesuffix(" RETURNING seq")
SQLITE_AUDIT_AFTER = f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"  # noqa: S608
SQLITE_EVENTS_AFTER = (
    "SELECT seq, reply_id, kind, at FROM reply_events WHERE seq > ? ORDER BY seq LIMIT ?"
)
SQLITE_LAST_EVENT = "SELECT COALESCE(MAX(seq), 0) FROM reply_events"
_SQLITE_SET_STATE = "UPDATE replies SET state = ?, state_by = ?, state_at = ? WHERE id = ?"
_SQLITE_SET_CLUSTER = "UPDATE replies SET cluster_id = ? WHERE id = ?"
_SQLITE_OLD = "SELECT id FROM replies WHERE received_at < ?"
_SQLITE_PURGE = (
    f"DELETE FROM poll_votes WHERE reply_id IN ({_SQLITE_OLD})",  # noqa: S608
    f"DELETE FROM reply_events WHERE reply_id IN ({_SQLITE_OLD})",  # noqa: S608
)
_SQLITE_PURGE_REPLIES = "DELETE FROM replies WHERE received_at < ?"

# --- PostgreSQL --------------------------------------------------------------------------

POSTGRES_LOCK = "SELECT pg_advisory_xact_lock($1)"
POSTGRES_LAST_HASH = _LAST_HASH
POSTGRES_AUDIT_INSERT = (
    "INSERT INTO audit_log (at, actor, action, detail, prev_hash, hash) "
    "VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq"
)
POSTGRES_AUDIT_AFTER = (
    f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"  # noqa: S608
)
POSTGRES_EVENTS_AFTER = (
    "SELECT seq, reply_id, kind, at FROM reply_events WHERE seq > $1 ORDER BY seq LIMIT $2"
)
POSTGRES_LAST_EVENT = "SELECT COALESCE(MAX(seq), 0) FROM reply_events"
POSTGRES_SET_STATE = (
    "UPDATE replies SET state = $1, state_by = $2, state_at = $3 WHERE id = $4 "  # noqa: S608
    f"RETURNING {_COLS}"
)
POSTGRES_SET_CLUSTER = "UPDATE replies SET cluster_id = $1 WHERE id = $2"
POSTGRES_CLUSTER_COUNTS = (
    "SELECT cluster_id, COUNT(*) FROM replies WHERE cluster_id = ANY($1::bigint[]) "
    "GROUP BY cluster_id"
)
_POSTGRES_OLD = "SELECT id FROM replies WHERE received_at < $1"
POSTGRES_PURGE = (
    f"DELETE FROM poll_votes WHERE reply_id IN ({_POSTGRES_OLD})",  # noqa: S608
    f"DELETE FROM reply_events WHERE reply_id IN ({_POSTGRES_OLD})",  # noqa: S608
)
POSTGRES_PURGE_REPLIES = "DELETE FROM replies WHERE received_at < $1"


# --- Shared ------------------------------------------------------------------------------


def audit_values(entry: AuditEntry, prev_hash: str | None) -> tuple[str, list[Any]]:
    """(hash, insert parameters without the time encoding): at, actor, action, detail,
    prev_hash, hash."""
    digest = chain_hash(prev_hash, entry)
    at = schema.as_utc(entry.at)
    return digest, [at, entry.actor, entry.action, entry.detail_json(), prev_hash, digest]


def audit_record(seq: int, entry: AuditEntry, prev_hash: str | None, digest: str) -> AuditRecord:
    return AuditRecord(
        seq=seq,
        at=schema.as_utc(entry.at),
        actor=entry.actor,
        action=entry.action,
        detail=json.loads(entry.detail_json()),
        prev_hash=prev_hash,
        hash=digest,
    )


def audit_from_row(row: Any, at: datetime) -> AuditRecord:
    return AuditRecord(
        seq=int(row[0]),
        at=schema.as_utc(at),
        actor=str(row[2]),
        action=str(row[3]),
        detail=json.loads(row[4]),
        prev_hash=None if row[5] is None else str(row[5]),
        hash=str(row[6]),
    )


def event_from_row(row: Any, at: datetime) -> ReplyEvent:
    return ReplyEvent(int(row[0]), int(row[1]), ReplyEventKind(row[2]), schema.as_utc(at))


def cluster_counts(rows: Sequence[Any]) -> dict[int, int]:
    return {int(r[0]): int(r[1]) for r in rows}


def cluster_ids(ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in ids})


# --- SQLite writes (writer thread, inside a batch transaction) -------------------------------


def sqlite_append_audit(conn: sqlite3.Connection, entry: AuditEntry) -> AuditRecord:
    row = conn.execute(_LAST_HASH).fetchone()
    prev_hash = None if row is None else str(row[0])
    digest, values = audit_values(entry, prev_hash)
    values[0] = schema.utc_text(values[0])
    seq = int(conn.execute(_SQLITE_AUDIT_INSERT, values).fetchone()[0])
    return audit_record(seq, entry, prev_hash, digest)


def sqlite_append_audits(conn: sqlite3.Connection, entries: Sequence[AuditEntry]) -> None:
    """Append `entries` in order, chained as `sqlite_append_audit` would one by one, with one
    read of the last hash and one `executemany`: the intake batch's `alert.create` rows,
    whose records nobody reads back."""
    if not entries:
        return
    row = conn.execute(_LAST_HASH).fetchone()
    prev_hash = None if row is None else str(row[0])
    rows = []
    for entry in entries:
        digest, values = audit_values(entry, prev_hash)
        values[0] = schema.utc_text(values[0])
        rows.append(values)
        prev_hash = digest
    conn.executemany(_SQLITE_AUDIT_INSERT_MANY, rows)


def sqlite_set_state(
    conn: sqlite3.Connection,
    reply_id: int,
    state: ReplyState,
    by: str,
    at: datetime,
    audit: AuditEntry,
) -> StoredReply | None:
    values = (ReplyState(state).value, by, schema.utc_text(at), reply_id)
    if conn.execute(_SQLITE_SET_STATE, values).rowcount == 0:
        return None
    sqlite_append_audit(conn, audit)
    return replies_sql.sqlite_reply(conn.execute(replies_sql.SQLITE_BY_ID, (reply_id,)).fetchone())


def sqlite_set_cluster(conn: sqlite3.Connection, reply_id: int, cluster_id: int) -> None:
    conn.execute(_SQLITE_SET_CLUSTER, (cluster_id, reply_id))


def sqlite_purge(
    conn: sqlite3.Connection, before: datetime, audit: Callable[[int], AuditEntry | None]
) -> int:
    cutoff = schema.utc_text(before)
    for statement in _SQLITE_PURGE:
        conn.execute(statement, (cutoff,))
    count = conn.execute(_SQLITE_PURGE_REPLIES, (cutoff,)).rowcount
    entry = audit(count)
    if entry is not None:
        sqlite_append_audit(conn, entry)
    return count


def sqlite_cluster_counts_query(count: int) -> str:
    marks = ", ".join("?" * count)
    return (
        "SELECT cluster_id, COUNT(*) FROM replies "  # noqa: S608 - marks only
        f"WHERE cluster_id IN ({marks}) GROUP BY cluster_id"
    )
