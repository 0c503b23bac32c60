"""Alerts on SQLite: the intake, approval and alert reads of `SqliteStore`.

Contract:
- `insert_alert` encodes the row in the caller and queues it for the next group-commit
  batch, returning once that batch has committed; inserting it, matching the caller to its
  row and planning its deliveries run on the writer's thread (`sqlite_batch`).
- Approval and rejection are writer jobs (`approval_sql`): the decision, the planning and
  the audit row commit together, and only an alert still `pending_approval` moves.
- Every read goes through `_fetch`, so none sees a batch that has not committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from adapters.store import approval_sql, schema
from adapters.store.sqlite_base import SqliteBase
from adapters.store.sqlite_batch import PendingInsert, alert_from_row
from broadcaster.audit import AuditEntry
from broadcaster.errors import StoreError
from broadcaster.ports import (
    AlertEvent,
    AlertEventKind,
    AlertState,
    InsertResult,
    NewAlert,
    PlannedDelivery,
    StoredAlert,
)

# Composed from constant column lists only, never from input, so S608 does not apply.
_COLS = schema.ALERT_READ_COLUMNS
_ALERT_BY_ID = f"SELECT {_COLS} FROM alerts WHERE id = ?"  # noqa: S608
_ALERTS_NEWEST = f"SELECT {_COLS} FROM alerts ORDER BY seq DESC LIMIT ?"  # noqa: S608
_ALERTS_BEFORE = f"SELECT {_COLS} FROM alerts WHERE seq < ? ORDER BY seq DESC LIMIT ?"  # noqa: S608
_EVENTS_AFTER = (
    "SELECT seq, alert_id, kind, at FROM alert_events WHERE seq > ? ORDER BY seq LIMIT ?"
)
# The partial index alerts_public holds exactly the accepted non-Cancel alerts.
_PUBLIC_ALERTS = (
    f"SELECT {_COLS} FROM alerts WHERE state = 'accepted' AND msg_type <> 'Cancel' "  # noqa: S608
    "AND (expires IS NULL OR expires > ?) ORDER BY seq DESC LIMIT ?"
)


class SqliteAlerts(SqliteBase):
    """Alert intake, approval decisions and alert reads; a mixin of `SqliteStore`."""

    async def insert_alert(self, new: NewAlert) -> InsertResult:
        self._check_open()
        if self._writer_task.done():
            raise StoreError("sqlite writer has stopped")
        try:
            params = schema.alert_insert_values(new)
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"cannot encode alert {new.id}: {exc}") from exc
        # Times become UTC text here, in the caller, to keep the writer's loop lean.
        params = [schema.utc_text(v) if isinstance(v, datetime) else v for v in params]
        future: asyncio.Future[InsertResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(PendingInsert(new, params, future))
        return await future

    # --- alert reads --------------------------------------------------------------------

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        rows = await self._fetch(_ALERT_BY_ID, (alert_id,))
        return alert_from_row(rows[0]) if rows else None

    async def get_alerts(self, alert_ids: Sequence[str]) -> list[StoredAlert]:
        found: list[StoredAlert] = []
        for start in range(0, len(alert_ids), 500):  # well under SQLite's parameter limit
            chunk = list(alert_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT {_COLS} FROM alerts WHERE id IN ({marks})"  # noqa: S608
            found.extend(alert_from_row(row) for row in await self._fetch(sql, tuple(chunk)))
        return found

    async def list_alerts(self, *, limit: int, before_seq: int | None = None) -> list[StoredAlert]:
        if before_seq is None:
            rows = await self._fetch(_ALERTS_NEWEST, (limit,))
        else:
            rows = await self._fetch(_ALERTS_BEFORE, (before_seq, limit))
        return [alert_from_row(row) for row in rows]

    async def count_alerts(self) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM alerts", ())
        return int(rows[0][0])

    async def events_after(self, seq: int, limit: int) -> list[AlertEvent]:
        rows = await self._fetch(_EVENTS_AFTER, (seq, limit))
        return [
            AlertEvent(
                int(r[0]),
                str(r[1]),
                AlertEventKind(r[2]),
                schema.as_utc(datetime.fromisoformat(r[3])),
            )
            for r in rows
        ]

    async def last_event_seq(self) -> int:
        rows = await self._fetch("SELECT COALESCE(MAX(seq), 0) FROM alert_events", ())
        return int(rows[0][0])

    async def public_alerts(self, now: datetime, limit: int) -> list[StoredAlert]:
        rows = await self._fetch(_PUBLIC_ALERTS, (schema.utc_text(now), limit))
        return [alert_from_row(row) for row in rows]

    async def successor_of(self, alert_id: str) -> str | None:
        rows = await self._fetch("SELECT superseded_by FROM alerts WHERE id = ?", (alert_id,))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    async def superseded_by(self, alert_id: str) -> list[str]:
        rows = await self._fetch(
            "SELECT id FROM alerts WHERE superseded_by = ? ORDER BY seq", (alert_id,)
        )
        return [str(row[0]) for row in rows]

    async def alert_states(self, alert_ids: Sequence[str]) -> dict[str, AlertState]:
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        rows = await self._fetch(f"SELECT id, state FROM alerts WHERE id IN ({marks})", ids)  # noqa: S608
        return {str(row[0]): AlertState(row[1]) for row in rows}

    # --- approval (adapters.store.approval_sql) -----------------------------------------

    async def approve_alert(
        self,
        alert_id: str,
        deliveries: Sequence[PlannedDelivery],
        priority: int,
        *,
        by: str,
        reason: str,
        at: datetime,
        audit: AuditEntry,
    ) -> StoredAlert | None:
        planned = tuple(deliveries)
        stored: StoredAlert | None = await self._run_job(
            lambda conn: approval_sql.sqlite_approve(
                conn, alert_id, planned, priority, by, reason, at, audit
            )
        )
        return stored

    async def reject_alert(
        self,
        alert_id: str,
        state: AlertState,
        *,
        by: str,
        reason: str,
        at: datetime,
        audit: AuditEntry,
    ) -> StoredAlert | None:
        approval_sql.check_refusal(state)
        stored: StoredAlert | None = await self._run_job(
            lambda conn: approval_sql.sqlite_reject(conn, alert_id, state, by, reason, at, audit)
        )
        return stored

    async def pending_alerts(self, received_before: datetime, limit: int) -> list[StoredAlert]:
        rows = await self._fetch(
            approval_sql.SQLITE_PENDING, (schema.utc_text(received_before), limit)
        )
        return [approval_sql.sqlite_alert(row) for row in rows]
