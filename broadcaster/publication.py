"""What the public sees: alerts in force, their histories, and the stream of alert events.

Pages, feeds and the SSE stream read through one `Publication`, so they agree with each other
and the database is asked once per change, not once per request.

Contract:
- Events come from the store's `alert_events` (written by triggers in the same transaction
  that makes an alert public). `run()` polls for new ones every `poll_seconds`; `wake()` (the
  intake calls it after a local commit) makes the next poll immediate. Alerts committed by
  another process are seen within `poll_seconds`.
- Only public alerts are handed out (`is_public`: published, not a draft, CAP scope Public);
  the others' events advance `version` and are skipped.
- Events are handed out strictly in seq order, each once. A seq can be missing for a moment
  (PostgreSQL hands out identities before commit, so a later seq may commit first); events
  after such a gap are held back until it fills or `gap_timeout` passes (a rolled-back insert
  never fills it). So an SSE client that resumes from the last id it saw misses nothing.
- `version` is the seq of the last event handed out; it changes whenever the public picture
  may have changed. `active()` is cached per version and until the earliest expiry among the
  alerts it returned, so a busy page costs no database work.
- `events_since(seq)` returns what followed `seq` (from memory for the recent `ring_size`
  events, else from the store); `wait_beyond(seq)` sleeps until there is more.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from alerts.models import SEVERITY_RANK, Scope, Status
from broadcaster.event_follower import EventFollower
from broadcaster.ports import AlertEvent, AlertState, Store, StoredAlert

log = logging.getLogger(__name__)

# Alerts shown on the public list at most; a city rarely has more than a handful in force.
ACTIVE_LIMIT = 500
# Statuses the public sees by default; Exercise and Test only when asked for.
LIVE_STATUSES = frozenset({Status.ACTUAL, Status.SYSTEM})
HIDDEN_STATUSES = frozenset({Status.DRAFT})
# Alerts that never became public: held for approval, refused, or never approved.
UNPUBLISHED_STATES = frozenset(
    {AlertState.PENDING_APPROVAL, AlertState.REJECTED, AlertState.EXPIRED_UNAPPROVED}
)


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """An alert event with the alert it is about."""

    event: AlertEvent
    alert: StoredAlert


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Publication(EventFollower):
    events_name = "alert events"

    def __init__(
        self,
        store: Store,
        *,
        poll_seconds: float = 0.25,
        gap_timeout: float = 2.0,
        ring_size: int = 1000,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__(poll_seconds=poll_seconds, gap_timeout=gap_timeout)
        self._store = store
        self._now = now
        self._ring: deque[PublishedEvent] = deque(maxlen=ring_size)
        self._active: list[StoredAlert] | None = None
        self._active_version = -1
        self._active_until: datetime | None = None

    async def start(self) -> None:
        """Begin after the events already stored, keeping the newest in memory for feeds."""
        last = await self._store.last_event_seq()
        recent = await self._store.events_after(max(0, last - (self._ring.maxlen or 0)), 10_000)
        alerts = await self._alerts_of(recent)
        for event in recent:
            stored = alerts.get(event.alert_id)
            if stored is not None and is_public(stored):
                self._ring.append(PublishedEvent(event, stored))
        self._version = recent[-1].seq if recent else last
        self._started = True

    async def poll(self) -> list[PublishedEvent]:
        """Hand out the events that follow `version`, in order; returns them."""
        events = await self._store.events_after(self._version, 1000)
        # One read for all their alerts: at intake rates a read per event would double the
        # database work of every alert.
        alerts = await self._alerts_of(events)
        ready = events[: self._ready_count([e.seq for e in events])]
        published = [
            PublishedEvent(event, alerts[event.alert_id])
            for event in ready
            # else deleted since, a draft or restricted: skipped, but `version` moves past it
            if event.alert_id in alerts and is_public(alerts[event.alert_id])
        ]
        self._ring.extend(published)
        self._advance(ready[-1].seq if ready else None, events[-1].seq if events else None)
        return published

    async def _alerts_of(self, events: list[AlertEvent]) -> dict[str, StoredAlert]:
        if not events:
            return {}
        ids = list(dict.fromkeys(e.alert_id for e in events))
        return {a.id: a for a in await self._store.get_alerts(ids)}

    async def events_since(self, seq: int, limit: int = 1000) -> list[PublishedEvent]:
        """Events after `seq` up to `version`, oldest first."""
        if seq >= self._version:
            return []
        if self._ring and self._ring[0].event.seq <= seq + 1:
            return [p for p in self._ring if seq < p.event.seq][:limit]
        events = [e for e in await self._store.events_after(seq, limit) if e.seq <= self._version]
        alerts = await self._alerts_of(events)
        out: list[PublishedEvent] = []
        for event in events:
            stored = alerts.get(event.alert_id)
            if stored is not None and is_public(stored):
                out.append(PublishedEvent(event, stored))
        return out

    def recent(self, limit: int = 50) -> list[PublishedEvent]:
        """The newest events in memory, newest first (feeds)."""
        return list(reversed(self._ring))[:limit]

    async def active(self, *, include_exercises: bool = False) -> list[StoredAlert]:
        """Alerts in force, most severe first, then newest. Drafts never; Exercise and
        Test only when asked for."""
        now = self._now()
        stale = self._active is None or self._active_version != self._version
        if stale or (self._active_until is not None and now >= self._active_until):
            version = self._version
            alerts = [a for a in await self._store.public_alerts(now, ACTIVE_LIMIT) if is_public(a)]
            alerts.sort(key=lambda a: (SEVERITY_RANK[a.alert.severity], -a.seq))
            expiries = [a.alert.expires for a in alerts if a.alert.expires is not None]
            self._active, self._active_version = alerts, version
            self._active_until = min(expiries) if expiries else None
            return _shown(alerts, include_exercises)
        return _shown(self._active or [], include_exercises)

    async def alert(self, alert_id: str) -> StoredAlert | None:
        """One public alert (accepted at some point, not a draft); None otherwise."""
        stored = await self._store.get_alert(alert_id)
        if stored is None or not is_public(stored):
            return None
        return stored

    async def history(self, alert_id: str) -> list[StoredAlert]:
        """The alert with the alerts it replaced and those that replaced it, oldest first."""
        chain: dict[str, StoredAlert] = {}
        frontier = [alert_id]
        while frontier and len(chain) < 100:
            current = frontier.pop()
            if current in chain:
                continue
            stored = await self._store.get_alert(current)
            if stored is None or not is_public(stored):
                continue
            chain[current] = stored
            frontier.extend(await self._store.superseded_by(current))
            successor = await self._store.successor_of(current)
            if successor is not None:
                frontier.append(successor)
        return sorted(chain.values(), key=lambda a: a.seq)


def _shown(alerts: list[StoredAlert], include_exercises: bool) -> list[StoredAlert]:
    allowed = LIVE_STATUSES | ({Status.EXERCISE, Status.TEST} if include_exercises else set())
    return [a for a in alerts if a.alert.status in allowed]


def is_public(stored: StoredAlert) -> bool:
    """Whether the public may see this alert at all: it was published (not waiting for
    approval, rejected or left unapproved), is not a draft, and its CAP scope is Public
    (Restricted and Private alerts are for named recipients only)."""
    return (
        stored.state not in UNPUBLISHED_STATES
        and stored.alert.status not in HIDDEN_STATUSES
        and stored.alert.scope is Scope.PUBLIC
    )
