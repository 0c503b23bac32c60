"""Retention: replies (personal data: phone numbers, handles, what people saw) are kept for
`[replies] retention_days`, then deleted with their reply events and the poll votes they cast.

Contract:
- `purge_once(store, days)` deletes what was received more than `days` days ago and appends
  `replies.purge` to the audit log with the count and the cut-off, in the same transaction.
  The background loop records only purges that deleted something (an idle hour is not an
  event); the CLI records every run, so an operator's purge is always on file.
- `run_retention` purges at start and then every `interval_seconds`; a store error is logged
  and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from broadcaster.audit import AuditEntry, utc_iso
from broadcaster.errors import StoreError
from broadcaster.ports import Store

log = logging.getLogger(__name__)

ACTION = "replies.purge"


async def purge_once(
    store: Store,
    retention_days: float,
    *,
    actor: str = "system",
    now: datetime | None = None,
    audit_empty: bool = True,
) -> tuple[int, datetime]:
    """Delete replies older than `retention_days`; returns (count, cut-off)."""
    at = now or datetime.now(UTC)
    cutoff = at - timedelta(days=retention_days)

    def audit(count: int) -> AuditEntry | None:
        if count == 0 and not audit_empty:
            return None
        detail = {"count": count, "cutoff": utc_iso(cutoff), "retention_days": retention_days}
        return AuditEntry(at=at, actor=actor, action=ACTION, detail=detail)

    count = await store.purge_replies(cutoff, audit)
    if count:
        log.info("retention: purged %d replies received before %s", count, utc_iso(cutoff))
    return count, cutoff


async def run_retention(store: Store, retention_days: float, interval_seconds: float) -> None:
    """Purge now and then every `interval_seconds`, until cancelled."""
    while True:
        try:
            await purge_once(store, retention_days, audit_empty=False)
        except StoreError as exc:
            log.warning("retention: purge failed, retried in %.0f s: %s", interval_seconds, exc)
        await asyncio.sleep(interval_seconds)
