"""Alert events and the public picture (Publication), on every store backend."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from alerts.models import Alert, MsgType, Severity, Status
from broadcaster.ports import AlertEventKind, AlertState, Store
from broadcaster.publication import Publication
from tests.integration.test_store import make_alert, make_new


def variant(
    *,
    severity: Severity = Severity.SEVERE,
    status: Status = Status.ACTUAL,
    msg_type: MsgType = MsgType.ALERT,
    references: tuple[str, ...] = (),
    expires: datetime | None = None,
) -> Alert:
    base = make_alert()
    info = base.infos[0].model_copy(update={"severity": severity, "expires": expires})
    return base.model_copy(
        update={
            "status": status,
            "msg_type": msg_type,
            "references": references,
            "infos": (info,),
        }
    )


async def test_events_follow_publication_in_order_with_kinds(store: Store) -> None:
    """Accepted alerts, updates and cancels each record one event; pending ones none."""
    first = make_new(variant())
    await store.insert_alert(first)
    await store.insert_alert(make_new(variant(), state=AlertState.PENDING_APPROVAL))
    update = make_new(variant(msg_type=MsgType.UPDATE, references=(first.alert.reference_key,)))
    await store.insert_alert(update)
    cancel = make_new(variant(msg_type=MsgType.CANCEL, references=(update.alert.reference_key,)))
    await store.insert_alert(cancel)
    events = await store.events_after(0, 10)
    assert [(e.alert_id, e.kind) for e in events] == [
        (first.id, AlertEventKind.CREATED),
        (update.id, AlertEventKind.UPDATED),
        (cancel.id, AlertEventKind.CANCELLED),
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert await store.last_event_seq() == events[-1].seq
    assert await store.events_after(events[0].seq, 1) == [events[1]]
    assert await store.successor_of(first.id) == update.id
    assert await store.successor_of(cancel.id) is None


async def test_public_alerts_are_those_in_force(store: Store) -> None:
    """In force: accepted, not replaced, not a Cancel, not expired; newest first."""
    now = datetime.now(UTC)
    live = make_new(variant())
    expired = make_new(variant(expires=now - timedelta(seconds=1)), received_at=now)
    expired = dataclasses.replace(
        expired, alert=expired.alert.model_copy(update={"sent": now - timedelta(minutes=5)})
    )
    replaced = make_new(variant())
    for new in (live, expired, replaced):
        await store.insert_alert(new)
    update = make_new(variant(msg_type=MsgType.UPDATE, references=(replaced.alert.reference_key,)))
    await store.insert_alert(update)
    cancel = make_new(variant(msg_type=MsgType.CANCEL, references=(live.alert.reference_key,)))
    pending = make_new(variant(), state=AlertState.PENDING_APPROVAL)
    await store.insert_alert(pending)
    assert [a.id for a in await store.public_alerts(now, 10)] == [update.id, live.id]
    await store.insert_alert(cancel)
    assert [a.id for a in await store.public_alerts(now, 10)] == [update.id]


async def test_publication_hands_out_events_and_caches_the_active_list(store: Store) -> None:
    """poll() yields new events once, in order; active() sorts by severity and hides
    exercises unless asked; history() links an alert with its update."""
    publication = Publication(store)
    await publication.start()
    minor = make_new(variant(severity=Severity.MINOR))
    extreme = make_new(variant(severity=Severity.EXTREME))
    drill = make_new(variant(status=Status.EXERCISE))
    for new in (minor, extreme, drill):
        await store.insert_alert(new)
    published = await publication.poll()
    assert [p.alert.id for p in published] == [minor.id, extreme.id, drill.id]
    assert await publication.poll() == []
    assert [a.id for a in await publication.active()] == [extreme.id, minor.id]
    with_drills = await publication.active(include_exercises=True)
    assert [a.id for a in with_drills] == [extreme.id, drill.id, minor.id]
    update = make_new(variant(msg_type=MsgType.UPDATE, references=(minor.alert.reference_key,)))
    await store.insert_alert(update)
    waiter = asyncio.create_task(publication.wait_beyond(publication.version))
    await publication.poll()
    await asyncio.wait_for(waiter, 1)
    assert [a.id for a in await publication.active()] == [extreme.id, update.id]
    assert [a.id for a in await publication.history(minor.id)] == [minor.id, update.id]
    assert [a.id for a in await publication.history(update.id)] == [minor.id, update.id]
    since = await publication.events_since(published[0].event.seq)
    assert [p.alert.id for p in since] == [extreme.id, drill.id, update.id]


async def test_a_restarted_publication_resumes_from_the_store(store: Store) -> None:
    """A new Publication keeps recent events for feeds and serves resumes from the store."""
    ids = []
    for _ in range(5):
        new = make_new(variant())
        ids.append(new.id)
        await store.insert_alert(new)
    publication = Publication(store, ring_size=2)
    await publication.start()
    assert [p.alert.id for p in publication.recent()] == ids[:2:-1]
    resumed = await publication.events_since(0)
    assert [p.alert.id for p in resumed] == ids


async def test_get_alerts_reads_many_at_once(store: Store) -> None:
    """get_alerts returns the stored alerts among the ids asked for and skips unknown ones."""
    news = [make_new(variant()) for _ in range(3)]
    for new in news:
        await store.insert_alert(new)
    got = await store.get_alerts([news[2].id, "missing", news[0].id])
    assert sorted(a.id for a in got) == sorted([news[0].id, news[2].id])
    assert await store.get_alerts([]) == []
