"""The delivery queue (outbox) on SQLite: the methods of `SqliteStore` that claim, finish,
release, lease, expire and count deliveries, and the channel leases.

Contract:
- The statements are in `sqlite_outbox`. Every write is a writer job, committed with the
  next batch, except finishing: outcomes are the most frequent write, so they queue as a
  `PendingFinish` and a batch records all of its outcomes in one executemany.
- One process per SQLite database: it holds every channel's lease, so acquiring grants
  every channel asked for and releasing does nothing.
Rows enter the queue with their alert (planned in the batch that inserts it, or in an
approval's job); this module only works the rows already there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.store import schema, sqlite_outbox
from adapters.store.sqlite_base import SqliteBase
from adapters.store.sqlite_batch import PendingFinish
from broadcaster.errors import StoreError
from broadcaster.ports import (
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryState,
    OutboxDepth,
)

_IDS_PER_QUERY = 500  # well under SQLite's parameter limit (32766 by default)


class SqliteDeliveries(SqliteBase):
    """The delivery queue and channel leases; a mixin of `SqliteStore`."""

    async def claim_deliveries(
        self, channel: str, *, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        now_text, lease_text = schema.utc_text(now), schema.utc_text(lease_until)
        result: list[ClaimedDelivery] = await self._run_job(
            lambda conn: sqlite_outbox.claim(conn, channel, limit, now_text, lease_text)
        )
        return result

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        if not outcomes:
            return
        self._check_open()
        if self._writer_task.done():
            raise StoreError("sqlite writer has stopped")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(PendingFinish(sqlite_outbox.finish_params(outcomes), future))
        await future

    async def release_deliveries(self, delivery_ids: Sequence[int], now: datetime) -> None:
        if delivery_ids:
            ids, now_text = list(delivery_ids), schema.utc_text(now)
            await self._run_job(lambda conn: sqlite_outbox.release(conn, ids, now_text))

    async def extend_leases(self, delivery_ids: Sequence[int], lease_until: datetime) -> None:
        if delivery_ids:
            ids, lease_text = list(delivery_ids), schema.utc_text(lease_until)
            await self._run_job(lambda conn: sqlite_outbox.extend(conn, ids, lease_text))

    async def record_receipt(
        self, provider_ref: str, state: DeliveryState, error: str | None, at: datetime
    ) -> bool:
        values = (DeliveryState(state).value, error, schema.utc_text(at))
        applied: bool = await self._run_job(
            lambda conn: sqlite_outbox.receipt(conn, provider_ref, *values)
        )
        return applied

    async def reclaim_expired_leases(self, now: datetime) -> int:
        now_text = schema.utc_text(now)
        count: int = await self._run_job(lambda conn: sqlite_outbox.reclaim(conn, now_text))
        return count

    async def expire_deliveries(self, now: datetime) -> int:
        now_text = schema.utc_text(now)
        count: int = await self._run_job(lambda conn: sqlite_outbox.expire(conn, now_text))
        return count

    async def acquire_channel_leases(
        self, channels: Sequence[str], holder: str, seconds: float
    ) -> set[str]:
        # One process per SQLite database: it holds every channel's lease.
        return set(channels)

    async def release_channel_leases(
        self, channels: Sequence[str], holder: str, cooldown_seconds: float
    ) -> None:
        return None

    async def count_open_deliveries(self, channels: Sequence[str] | None = None) -> int:
        if channels is None:
            rows = await self._fetch(sqlite_outbox.COUNT_OPEN, ())
        else:
            names = list(channels)
            if not names:
                return 0
            marks = ", ".join("?" * len(names))
            sql = f"{sqlite_outbox.COUNT_OPEN} AND channel IN ({marks})"
            rows = await self._fetch(sql, names)
        return int(rows[0][0])

    async def outbox_depth(self) -> list[OutboxDepth]:
        rows = await self._fetch(sqlite_outbox.OUTBOX_DEPTH, ())
        return [
            OutboxDepth(str(channel), str(state), int(count), schema.parse_utc_text(oldest))
            for channel, state, count, oldest in rows
        ]

    async def delivery_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        return (await self.delivery_counts_for((alert_id,))).get(alert_id, {})

    async def delivery_counts_for(
        self, alert_ids: Sequence[str]
    ) -> dict[str, dict[str, dict[str, int]]]:
        ids = list(dict.fromkeys(alert_ids))
        counts: dict[str, dict[str, dict[str, int]]] = {}
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            rows = await self._fetch(sqlite_outbox.COUNTS_BY_ALERTS.format(marks=marks), chunk)
            for alert_id, channel, state, count in rows:
                by_channel = counts.setdefault(str(alert_id), {})
                by_channel.setdefault(str(channel), {})[str(state)] = int(count)
        return counts

    async def list_deliveries(
        self, alert_id: str, *, limit: int, after_id: int | None = None
    ) -> list[DeliveryRecord]:
        rows = await self._fetch(sqlite_outbox.LIST_BY_ALERT, (alert_id, after_id or 0, limit))
        return [sqlite_outbox.record(row) for row in rows]
