"""Publication hands events out in seq order across a gap, and gives up on a gap in time; its
polling loop ends when cancelled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import cast

from alerts.models import Severity
from alerts.requests import AlertRequest
from broadcaster.event_follower import EventFollower
from broadcaster.ports import AlertEvent, AlertEventKind, AlertState, Store, StoredAlert
from broadcaster.publication import Publication

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class EventsOnly:
    """Just enough of a store: events, and any alert id is 'found'."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def add(self, seq: int) -> None:
        self.events.append(AlertEvent(seq, f"a{seq}", AlertEventKind.CREATED, AT))
        self.events.sort(key=lambda e: e.seq)

    async def events_after(self, seq: int, limit: int) -> list[AlertEvent]:
        return [e for e in self.events if e.seq > seq][:limit]

    async def last_event_seq(self) -> int:
        return max((e.seq for e in self.events), default=0)

    async def get_alerts(self, alert_ids: list[str]) -> list[StoredAlert]:
        return [await self.get_alert(alert_id) for alert_id in alert_ids]

    async def get_alert(self, alert_id: str) -> StoredAlert:
        alert = AlertRequest(event="Gas leak", headline="Avoid", severity=Severity.SEVERE)
        return StoredAlert(
            seq=1,
            id=alert_id,
            alert=alert.to_alert(identifier=alert_id, sender="desk@example.org", sent=AT),
            channels=(),
            source="rest",
            state=AlertState.ACCEPTED,
            created_by=None,
            idempotency_key=None,
            body_hash="0" * 64,
            cap_xml=None,
            received_at=AT,
        )


def publication(store: EventsOnly, gap_timeout: float) -> Publication:
    return Publication(cast(Store, store), gap_timeout=gap_timeout)


async def test_events_after_a_gap_wait_for_it_to_fill() -> None:
    """Seq 3 committed before seq 2: 3 is held back until 2 arrives, then both in order."""
    store = EventsOnly()
    store.add(1)
    pub = publication(store, gap_timeout=60)
    await pub.start()
    store.add(3)
    assert await pub.poll() == []
    assert pub.version == 1
    store.add(2)
    assert [p.event.seq for p in await pub.poll()] == [2, 3]


async def test_a_gap_that_never_fills_is_given_up_after_the_timeout() -> None:
    """A rolled-back seq leaves a hole for good: after gap_timeout the later events flow."""
    store = EventsOnly()
    pub = publication(store, gap_timeout=0.05)
    await pub.start()
    store.add(2)
    assert await pub.poll() == []
    await asyncio.sleep(0.06)
    assert [p.event.seq for p in await pub.poll()] == [2]
    store.add(3)
    assert [p.event.seq for p in await pub.poll()] == [3]


async def test_a_cancel_that_coincides_with_a_wake_still_ends_run() -> None:
    """A cancel in the same loop step as a wake() (a commit at shutdown) ends `run()`:
    Python 3.11's wait_for returned the wake and dropped such a cancel, hanging shutdown."""

    class Follower(EventFollower):
        async def start(self) -> None:
            self._started = True

        async def poll(self) -> list[object]:
            return []

    follower = Follower(poll_seconds=30.0, gap_timeout=1.0)
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(0.01)  # run() is now waiting for a wake or its poll interval
    follower.wake()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5.0)
    assert task in done
    assert task.cancelled()
