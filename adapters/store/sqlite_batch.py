"""One group-commit batch of `SqliteStore`, on the writer's thread: what waits in the write
queue, and the code that writes a whole batch in one transaction.

Contract:
- The queue holds three kinds of item, each with the future its caller awaits:
  `PendingInsert` (an alert insert), `PendingFinish` (delivery outcomes) and `PendingJob`
  (any other write, a function of the writer connection).
- `write_batch_sync(conn, batch)` writes a whole batch in one BEGIN IMMEDIATE ... COMMIT
  and returns one outcome per item, in order (see its docstring). A row sqlite rejects, or
  a job whose statement fails, fails only its own caller; any other error (BEGIN, COMMIT,
  I/O) rolls back and fails the whole batch.
- The alert insert path lives here, with `alert_from_row` (shared with `sqlite_alerts`):
  an insert is matched to its row, or to the alert it conflicted with, inside the batch.
It is separate from the store because none of it touches the event loop: it is the
synchronous half of group commit, run once per batch on aiosqlite's thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.store import schema, sqlite_outbox
from adapters.store.responders_sql import sqlite_append_audits
from alerts.models import format_cap_time
from broadcaster.audit import AuditEntry
from broadcaster.errors import StoreError
from broadcaster.ports import InsertResult, NewAlert, StoredAlert

# Composed from constant column lists only, never from input, so S608 does not apply.
_INSERT_ALERT = (
    f"INSERT INTO alerts ({schema.ALERT_INSERT_COLUMNS}) "  # noqa: S608
    f"VALUES ({', '.join('?' * schema.ALERT_INSERT_COUNT)}) ON CONFLICT DO NOTHING"
)
_ALERT_BY_KEY = f"SELECT {schema.ALERT_READ_COLUMNS} FROM alerts WHERE idempotency_key = ?"  # noqa: S608
_ALERT_BY_CAP = (
    f"SELECT {schema.ALERT_READ_COLUMNS} FROM alerts "  # noqa: S608
    "WHERE sender = ? AND identifier = ? AND sent_text = ?"
)
# Errors that belong to one row (constraint, bad value), as opposed to the database
# (I/O, lock, corruption) which fail the whole batch.
# ProgrammingError covers a value of a type sqlite cannot bind.
_ROW_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
)


@dataclass(slots=True)
class PendingInsert:
    """An alert insert waiting for the writer."""

    new: NewAlert
    params: list[object]
    future: asyncio.Future[InsertResult]


@dataclass(slots=True)
class PendingJob:
    """Any other write waiting for the writer: `work` runs on the writer's thread inside the
    batch transaction, under a savepoint of its own, so a failing job fails only itself."""

    work: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class PendingFinish:
    """Delivery outcomes waiting for the writer. Every worker records its own outcome, so
    these are the most frequent writes: a batch runs all of them as one executemany, with no
    savepoint each (they fail only with the database, and then fail the batch)."""

    rows: list[tuple[Any, ...]]
    future: asyncio.Future[Any]


def write_batch_sync(
    conn: sqlite3.Connection, batch: list[PendingInsert | PendingJob | PendingFinish]
) -> list[Any]:
    """On the writer's thread: BEGIN IMMEDIATE, insert the batch's alerts (matching each
    caller to its row) and plan their deliveries, run the other jobs, COMMIT (ROLLBACK on any
    error, which then fails the whole batch). Returns one outcome per item, in order: a
    result, or the StoreError that fails only that item."""
    alerts = [item for item in batch if isinstance(item, PendingInsert)]
    conn.execute("BEGIN IMMEDIATE")
    try:
        by_alert = iter(_insert_rows(conn, alerts) if alerts else [])
        finished = [row for item in batch if isinstance(item, PendingFinish) for row in item.rows]
        if finished:
            sqlite_outbox.finish(conn, finished)
        outcomes: list[Any] = []
        # The created alerts' audit rows, appended together (one hash read, one insert
        # statement) before any job that may append its own, so the log keeps batch order.
        audits: list[AuditEntry] = []
        for item in batch:
            if isinstance(item, PendingInsert):
                outcome = next(by_alert)
                if isinstance(outcome, InsertResult) and outcome.created:
                    sqlite_outbox.plan(conn, item.new)
                    audits.extend(item.new.audit)
                outcomes.append(outcome)
            elif isinstance(item, PendingFinish):
                outcomes.append(None)
            else:
                sqlite_append_audits(conn, audits)
                audits.clear()
                outcomes.append(_run_job_sync(conn, item))
        sqlite_append_audits(conn, audits)
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT leaves the transaction open; SQLite may also have rolled back.
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _run_job_sync(conn: sqlite3.Connection, job: PendingJob) -> Any:
    conn.execute("SAVEPOINT job")
    try:
        result = job.work(conn)
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK TO job")
        result = StoreError(f"sqlite write failed: {exc}")
    conn.execute("RELEASE job")
    return result


def _insert_rows(
    conn: sqlite3.Connection, batch: list[PendingInsert]
) -> list[InsertResult | StoreError]:
    """Inside the batch transaction: insert, then match each caller to its row.

    Rows inserted by this transaction are exactly those with seq above the maximum at
    its start (seq only grows, and BEGIN IMMEDIATE keeps other writers out)."""
    before = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0])
    failed: dict[int, StoreError] = {}
    conn.execute("SAVEPOINT batch")
    try:
        conn.executemany(_INSERT_ALERT, [p.params for p in batch])
    except _ROW_ERRORS:
        # Some row is bad: redo them one by one so only that caller fails.
        conn.execute("ROLLBACK TO batch")
        failed = _insert_one_by_one(conn, batch)
    conn.execute("RELEASE batch")
    rows = conn.execute("SELECT id, seq FROM alerts WHERE seq > ?", (before,)).fetchall()
    created = {str(row[0]): int(row[1]) for row in rows}
    claimed: set[str] = set()
    outcomes: list[InsertResult | StoreError] = []
    for index, pending in enumerate(batch):
        new = pending.new
        if index in failed:
            outcomes.append(failed[index])
        elif new.id in created and new.id not in claimed:
            claimed.add(new.id)
            outcomes.append(InsertResult(schema.stored_alert_from_new(created[new.id], new), True))
        else:
            outcomes.append(_existing(conn, new))
    return outcomes


def _insert_one_by_one(
    conn: sqlite3.Connection, batch: list[PendingInsert]
) -> dict[int, StoreError]:
    failed: dict[int, StoreError] = {}
    for index, pending in enumerate(batch):
        conn.execute("SAVEPOINT one")
        try:
            conn.execute(_INSERT_ALERT, pending.params)
        except _ROW_ERRORS as exc:
            conn.execute("ROLLBACK TO one")
            failed[index] = StoreError(f"sqlite rejected alert {pending.new.id}: {exc}")
        conn.execute("RELEASE one")
    return failed


def _existing(conn: sqlite3.Connection, new: NewAlert) -> InsertResult | StoreError:
    """The stored alert `new` conflicted with: same idempotency key first (the
    client's explicit intent), else same CAP sender+identifier+sent."""
    rows: list[Any] = []
    if new.idempotency_key is not None:
        rows = conn.execute(_ALERT_BY_KEY, (new.idempotency_key,)).fetchall()
    if not rows:
        cap_key = (new.alert.sender, new.alert.identifier, format_cap_time(new.alert.sent))
        rows = conn.execute(_ALERT_BY_CAP, cap_key).fetchall()
    if not rows:
        return StoreError(f"alert id {new.id} is already used by a different alert")
    return InsertResult(alert_from_row(rows[0]), False)


def alert_from_row(row: Sequence[Any]) -> StoredAlert:
    """A row of `schema.ALERT_READ_COLUMNS`; SQLite keeps `received_at` as ISO text."""
    return schema.stored_alert_from_row(row, datetime.fromisoformat(row[10]))
