"""The outbox: the deliveries table as the dispatcher sees it (claim, finish, lease).

`Store` extends this Protocol; the dispatcher and its workers need only this part.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from broadcaster.ports.alerts import AlertState, ClaimedDelivery, DeliveryOutcome, OutboxDepth


class Outbox(Protocol):
    """The deliveries table as the dispatcher sees it. Every write has committed on return."""

    async def claim_deliveries(
        self, channel: str, *, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries of `channel`: state pending, next_attempt_at <=
        now, not expired (expires_at null or > now); most urgent first (priority, then id).
        They become `sending` with `lease_until`, attempts + 1. Returned in claim order.
        Concurrent claimers (threads, processes) never receive the same delivery."""
        ...

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Record outcomes of deliveries this worker holds (state `sending`); an outcome for
        a delivery no longer `sending` is ignored. Sets state, updated_at=at, provider_ref
        (when given), last_error (when given), next_attempt_at (retries), lease_until=null.
        A delivery that turns SENT after its alert was superseded or cancelled (it was in
        flight then) gets the correction planned to the same recipient, in the same
        transaction. Concurrent callers may share one commit."""
        ...

    async def release_deliveries(self, delivery_ids: Sequence[int], now: datetime) -> None:
        """Give back leased deliveries that were never attempted (shutdown): `sending` ->
        `pending`, attempts - 1, lease cleared, due at once."""
        ...

    async def extend_leases(self, delivery_ids: Sequence[int], lease_until: datetime) -> None:
        """Keep holding these `sending` deliveries (a worker waiting on a rate limit or an
        open circuit is alive): their lease now ends at `lease_until`."""
        ...

    async def reclaim_expired_leases(self, now: datetime) -> int:
        """`sending` deliveries whose lease ended before `now` (their process died) become
        `pending` and due at once; returns how many."""
        ...

    async def expire_deliveries(self, now: datetime) -> int:
        """`pending` deliveries whose expires_at <= now become `expired`; returns how many."""
        ...

    async def acquire_channel_leases(
        self, channels: Sequence[str], holder: str, seconds: float
    ) -> set[str]:
        """Take or renew, for `holder`, the lease of each channel in `channels` whose lease is
        free, ran out, or is already `holder`'s: it now ends `seconds` from the database's
        clock. Returns the channels `holder` holds. Atomic per channel: two processes never
        both get one. A one-process store (SQLite) returns every channel."""
        ...

    async def release_channel_leases(
        self, channels: Sequence[str], holder: str, cooldown_seconds: float
    ) -> None:
        """Give up `holder`'s leases of `channels`: anyone may take them `cooldown_seconds`
        from now (so sends of the last second and those of the next holder never share a
        rolling second)."""
        ...

    async def alert_states(self, alert_ids: Sequence[str]) -> dict[str, AlertState]:
        """The current state of each of these alerts (unknown ids are left out)."""
        ...

    async def count_open_deliveries(self, channels: Sequence[str] | None = None) -> int:
        """Deliveries still `pending` or `sending`, on `channels` when given (`drain` runs
        until this is 0 for the channels it can send on)."""
        ...

    async def outbox_depth(self) -> list[OutboxDepth]:
        """Per channel and open state (`pending`, `sending`): how many deliveries, and the
        oldest one's created_at. One grouped query; the metrics refresh calls it every few
        seconds, never per scrape."""
        ...
