"""The delivery queue (outbox) on PostgreSQL: the methods of `PostgresStore` that claim,
finish, release, lease, expire and count deliveries, and the channel leases.

Contract:
- Claims lock with `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait for each
  other nor get the same row. The background sweeps (lease reclaim, expiry) skip locked
  rows too, so they never deadlock with a Cancel or a worker; what they skip, their next
  run takes.
- Finishing is one statement for the whole batch of outcomes, the first outcome per
  delivery winning; in that same statement a delivery just sent whose alert was stopped
  while it was in flight gets the correction queued.
- Only a delivery still `sending` is finished, released or has its lease extended; a
  receipt moves only one that went out.
Rows enter the queue with their alert (`postgres_alerts` plans them in the alert's
transaction); this module only works the rows already there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from adapters.store import schema
from adapters.store.postgres_base import PostgresBase, row_count, translated, utc_or_none
from broadcaster.ports import (
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryState,
    OutboxDepth,
)

# Literal states are DeliveryState values. Composed from constant column lists only, never
# from input, so S608 does not apply.

# $1 channel, $2 now, $3 limit, $4 lease_until. Served by deliveries_due.
_CLAIM = (
    "WITH due AS (SELECT id AS due_id FROM deliveries WHERE channel = $1 "  # noqa: S608
    "AND state = 'pending' AND next_attempt_at <= $2 "
    "AND (expires_at IS NULL OR expires_at > $2) "
    "ORDER BY priority, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries d SET state = 'sending', attempts = d.attempts + 1, "
    "lease_until = $4, updated_at = $2 FROM due WHERE d.id = due.due_id "
    f"RETURNING {schema.CLAIMED_DELIVERY_COLUMNS}"
)
_FINISH = (
    "UPDATE deliveries d SET state = o.state, updated_at = o.at, "
    "provider_ref = COALESCE(o.provider_ref, d.provider_ref), "
    "last_error = COALESCE(o.error, d.last_error), "
    "next_attempt_at = COALESCE(o.next_attempt_at, d.next_attempt_at), lease_until = NULL "
    "FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], "
    "$6::timestamptz[]) AS o (id, state, at, provider_ref, error, next_attempt_at) "
    "WHERE d.id = o.id AND d.state = 'sending'"
)
# The same, and in the same statement: deliveries just sent whose alert was stopped while
# they were in flight get the correction, since their recipient got the original.
_FINISH_AND_CORRECT = (
    f"WITH done AS ({_FINISH} "  # noqa: S608
    "RETURNING d.id, d.alert_id, d.channel, d.recipient, d.priority, d.state, d.updated_at) "
    f"INSERT INTO deliveries ({schema.DELIVERY_INSERT_COLUMNS}) "
    "SELECT a.superseded_by, done.channel, done.recipient, 'pending', done.priority, 0, "
    "done.updated_at, CASE WHEN n.msg_type = 'Cancel' THEN NULL ELSE n.expires END, "
    "done.updated_at, done.updated_at "
    "FROM done JOIN alerts a ON a.id = done.alert_id JOIN alerts n ON n.id = a.superseded_by "
    "WHERE done.state = 'sent' ON CONFLICT DO NOTHING"
)
_RELEASE = (
    "UPDATE deliveries SET state = 'pending', attempts = GREATEST(attempts - 1, 0), "
    "lease_until = NULL, next_attempt_at = $2, updated_at = $2 "
    "WHERE id = ANY($1::bigint[]) AND state = 'sending'"
)
# A receipt moves only a delivery that went out: a late "delivered" never undoes a failure.
_RECEIPT = (
    "UPDATE deliveries SET state = $2, last_error = COALESCE($3, last_error), updated_at = $4 "
    "WHERE provider_ref = $1 AND state IN ('sent', 'delivered')"
)
_EXTEND = (
    "UPDATE deliveries SET lease_until = $2 WHERE id = ANY($1::bigint[]) AND state = 'sending'"
)
_RECLAIM = (
    "WITH stale AS (SELECT id FROM deliveries WHERE state = 'sending' AND lease_until < $1 "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries d SET state = 'pending', next_attempt_at = $1, lease_until = NULL, "
    "updated_at = $1 FROM stale WHERE d.id = stale.id"
)
_EXPIRE = (
    "WITH gone AS (SELECT id FROM deliveries WHERE state = 'pending' AND expires_at <= $1 "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries d SET state = 'expired', last_error = $2, updated_at = $1 "
    "FROM gone WHERE d.id = gone.id"
)
# Channel leases, on the database's clock. The conflict branch runs on the locked, newest row
# version, so of two processes racing for a free lease exactly one gets it. $1 channels,
# $2 holder, $3 seconds.
_ACQUIRE_LEASES = (
    "INSERT INTO channel_leases (channel, holder, lease_until) "
    "SELECT c, $2, now() + make_interval(secs => $3) FROM unnest($1::text[]) AS c "
    "ON CONFLICT (channel) DO UPDATE SET holder = EXCLUDED.holder, "
    "lease_until = EXCLUDED.lease_until "
    "WHERE channel_leases.holder = EXCLUDED.holder OR channel_leases.lease_until < now() "
    "RETURNING channel"
)
_RELEASE_LEASES = (
    "UPDATE channel_leases SET holder = '', lease_until = now() + make_interval(secs => $3) "
    "WHERE channel = ANY($1::text[]) AND holder = $2"
)
_COUNT_OPEN = "SELECT COUNT(*) FROM deliveries WHERE state = ANY($1::text[])"
_COUNT_OPEN_ON = (
    "SELECT COUNT(*) FROM deliveries WHERE state = ANY($1::text[]) AND channel = ANY($2::text[])"
)
_OUTBOX_DEPTH = (
    "SELECT channel, state, COUNT(*), MIN(created_at) FROM deliveries "
    "WHERE state = ANY($1::text[]) GROUP BY channel, state"
)
# $1 alert ids. Served by the unique (alert_id, channel, recipient) index.
_DELIVERY_COUNTS_FOR = (
    "SELECT alert_id, channel, state, COUNT(*) FROM deliveries "
    "WHERE alert_id = ANY($1::text[]) GROUP BY alert_id, channel, state ORDER BY channel, state"
)
_LIST_DELIVERIES = (
    f"SELECT {schema.DELIVERY_RECORD_COLUMNS} FROM deliveries "  # noqa: S608
    "WHERE alert_id = $1 AND id > $2 ORDER BY id LIMIT $3"
)


class PostgresDeliveries(PostgresBase):
    """The delivery queue and channel leases; a mixin of `PostgresStore`."""

    async def claim_deliveries(
        self, channel: str, *, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        self._check_open()
        if limit <= 0:
            return []
        with translated("claim_deliveries"):
            rows = await self._pool.fetch(
                _CLAIM, channel, schema.as_utc(now), limit, schema.as_utc(lease_until)
            )
        claimed = [
            ClaimedDelivery(
                id=int(row[0]),
                alert_id=row[1],
                channel=row[2],
                recipient=row[3],
                priority=int(row[4]),
                attempts=int(row[5]),
                created_at=row[6],
                expires_at=row[7],
            )
            for row in rows
        ]
        claimed.sort(key=lambda d: (d.priority, d.id))
        return claimed

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        self._check_open()
        unique = schema.first_outcome_per_delivery(outcomes)
        if not unique:
            return
        with translated("finish_deliveries"):
            await self._pool.execute(
                _FINISH_AND_CORRECT,
                [o.delivery_id for o in unique],
                [DeliveryState(o.state).value for o in unique],
                [schema.as_utc(o.at) for o in unique],
                [o.provider_ref for o in unique],
                [o.error for o in unique],
                [utc_or_none(o.next_attempt_at) for o in unique],
            )

    async def release_deliveries(self, delivery_ids: Sequence[int], now: datetime) -> None:
        self._check_open()
        if not delivery_ids:
            return
        with translated("release_deliveries"):
            await self._pool.execute(_RELEASE, list(delivery_ids), schema.as_utc(now))

    async def extend_leases(self, delivery_ids: Sequence[int], lease_until: datetime) -> None:
        self._check_open()
        if not delivery_ids:
            return
        with translated("extend_leases"):
            await self._pool.execute(_EXTEND, list(delivery_ids), schema.as_utc(lease_until))

    async def record_receipt(
        self, provider_ref: str, state: DeliveryState, error: str | None, at: datetime
    ) -> bool:
        self._check_open()
        with translated("record_receipt"):
            status = await self._pool.execute(
                _RECEIPT, provider_ref, DeliveryState(state).value, error, schema.as_utc(at)
            )
        return row_count(status) > 0

    async def reclaim_expired_leases(self, now: datetime) -> int:
        self._check_open()
        with translated("reclaim_expired_leases"):
            status = await self._pool.execute(_RECLAIM, schema.as_utc(now))
        return row_count(status)

    async def expire_deliveries(self, now: datetime) -> int:
        self._check_open()
        with translated("expire_deliveries"):
            status = await self._pool.execute(
                _EXPIRE, schema.as_utc(now), schema.DELIVERY_EXPIRED_ERROR
            )
        return row_count(status)

    async def acquire_channel_leases(
        self, channels: Sequence[str], holder: str, seconds: float
    ) -> set[str]:
        self._check_open()
        if not channels:
            return set()
        with translated("acquire_channel_leases"):
            rows = await self._pool.fetch(
                _ACQUIRE_LEASES, sorted(set(channels)), holder, float(seconds)
            )
        return {row[0] for row in rows}

    async def release_channel_leases(
        self, channels: Sequence[str], holder: str, cooldown_seconds: float
    ) -> None:
        self._check_open()
        if channels:
            with translated("release_channel_leases"):
                await self._pool.execute(
                    _RELEASE_LEASES, list(channels), holder, float(cooldown_seconds)
                )

    async def count_open_deliveries(self, channels: Sequence[str] | None = None) -> int:
        self._check_open()
        with translated("count_open_deliveries"):
            if channels is None:
                count = await self._pool.fetchval(_COUNT_OPEN, list(schema.OPEN_STATE_VALUES))
            else:
                count = await self._pool.fetchval(
                    _COUNT_OPEN_ON, list(schema.OPEN_STATE_VALUES), list(channels)
                )
        return int(count)

    async def outbox_depth(self) -> list[OutboxDepth]:
        self._check_open()
        with translated("outbox_depth"):
            rows = await self._pool.fetch(_OUTBOX_DEPTH, list(schema.OPEN_STATE_VALUES))
        return [OutboxDepth(r[0], r[1], int(r[2]), r[3]) for r in rows]

    async def delivery_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        return (await self.delivery_counts_for((alert_id,))).get(alert_id, {})

    async def delivery_counts_for(
        self, alert_ids: Sequence[str]
    ) -> dict[str, dict[str, dict[str, int]]]:
        self._check_open()
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            return {}
        with translated("delivery_counts_for"):
            rows = await self._pool.fetch(_DELIVERY_COUNTS_FOR, ids)
        counts: dict[str, dict[str, dict[str, int]]] = {}
        for alert_id, channel, state, count in rows:
            counts.setdefault(alert_id, {}).setdefault(channel, {})[state] = int(count)
        return counts

    async def list_deliveries(
        self, alert_id: str, *, limit: int, after_id: int | None = None
    ) -> list[DeliveryRecord]:
        self._check_open()
        if limit <= 0:
            return []
        with translated("list_deliveries"):
            rows = await self._pool.fetch(
                _LIST_DELIVERIES, alert_id, 0 if after_id is None else after_id, limit
            )
        return [
            DeliveryRecord(
                id=int(row[0]),
                alert_id=row[1],
                channel=row[2],
                recipient=row[3],
                state=DeliveryState(row[4]),
                priority=int(row[5]),
                attempts=int(row[6]),
                next_attempt_at=row[7],
                last_error=row[8],
                provider_ref=row[9],
                created_at=row[10],
                updated_at=row[11],
            )
            for row in rows
        ]
