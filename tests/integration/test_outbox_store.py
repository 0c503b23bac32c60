"""The delivery side of the Store port (the Outbox, planning and Update/Cancel supersession),
checked on every backend (see conftest.store_factory).

Times are fixed (T0 and offsets from it) and passed explicitly as `now`, so the tests never
depend on the wall clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from alerts.models import Alert, Info, MsgType
from broadcaster.errors import StoreError
from broadcaster.ports import (
    AlertState,
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryState,
    NewAlert,
    PlannedDelivery,
    Store,
)
from tests.integration.conftest import StoreFactory

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
LEASE = T0 + timedelta(seconds=60)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def make_alert(
    *,
    msg_type: MsgType = MsgType.ALERT,
    references: Sequence[str] = (),
    expires: datetime | None = None,
    sent: datetime = T0,
) -> Alert:
    return Alert(
        identifier=f"id-{uuid4().hex}",
        sender="test@example.org",
        sent=sent,
        status="Actual",
        msg_type=msg_type,
        scope="Public",
        references=tuple(references),
        infos=(
            Info(
                categories=("Safety",),
                event="Gas leak",
                urgency="Immediate",
                severity="Severe",
                certainty="Observed",
                headline="Avoid Market St",
                expires=expires,
            ),
        ),
    )


def make_new(
    alert: Alert | None = None,
    *,
    deliveries: Sequence[PlannedDelivery] = (),
    priority: int = 0,
    state: AlertState = AlertState.ACCEPTED,
    key: str | None = None,
    received_at: datetime = T0,
    **changes: object,
) -> NewAlert:
    alert = alert or make_alert()
    new = NewAlert(
        id=f"a-{uuid4().hex}",
        alert=alert,
        channels=tuple(sorted({d.channel for d in deliveries})),
        source="rest",
        state=state,
        created_by="issuer-1",
        idempotency_key=key,
        body_hash=hashlib.sha256(alert.model_dump_json().encode()).hexdigest(),
        cap_xml=None,
        received_at=received_at,
        deliveries=tuple(deliveries),
        priority=priority,
    )
    return dataclasses.replace(new, **changes)  # type: ignore[arg-type]


def plan(channel: str, *recipients: str) -> tuple[PlannedDelivery, ...]:
    return tuple(PlannedDelivery(channel, r) for r in recipients)


def cancel_of(*originals: NewAlert, **kwargs: object) -> NewAlert:
    refs = [o.alert.reference_key for o in originals]
    return make_new(make_alert(msg_type=MsgType.CANCEL, references=refs), **kwargs)  # type: ignore[arg-type]


async def claim(
    store: Store, channel: str = "sms", *, limit: int = 100, now: datetime = T0
) -> list[ClaimedDelivery]:
    return await store.claim_deliveries(channel, limit=limit, now=now, lease_until=LEASE)


async def records(store: Store, alert_id: str) -> dict[str, DeliveryRecord]:
    """An alert's deliveries by recipient (recipients are unique per test alert)."""
    return {r.recipient: r for r in await store.list_deliveries(alert_id, limit=1000)}


def outcome(delivery: ClaimedDelivery, state: DeliveryState, **kwargs: object) -> DeliveryOutcome:
    at = kwargs.pop("at", T0 + 5 * SECOND)
    return DeliveryOutcome(delivery.id, state, at, **kwargs)  # type: ignore[arg-type]


# --- Planning -------------------------------------------------------------------------


async def test_deliveries_are_written_with_the_alert_only_when_created(store: Store) -> None:
    """An accepted alert's deliveries are stored with it (pending, due at once, its priority);
    repeats within the plan and a duplicate insert of the alert add nothing."""
    new = make_new(
        key="k1", deliveries=plan("sms", "+1", "+2", "+1") + plan("web", "feed"), priority=3
    )
    assert (await store.insert_alert(new)).created
    rows = await store.list_deliveries(new.id, limit=10)
    assert [(r.channel, r.recipient) for r in rows] == [
        ("sms", "+1"),
        ("sms", "+2"),
        ("web", "feed"),
    ]
    for row in rows:
        assert row.alert_id == new.id
        assert row.state is DeliveryState.PENDING
        assert (row.priority, row.attempts) == (3, 0)
        assert row.next_attempt_at == row.created_at == row.updated_at == T0
        assert (row.last_error, row.provider_ref) == (None, None)

    same_key = make_new(key="k1", deliveries=plan("sms", "+1", "+9"))
    same_cap = make_new(new.alert, deliveries=plan("sms", "+8"))
    for duplicate in (same_key, same_cap):
        again = await store.insert_alert(duplicate)
        assert not again.created
        assert again.alert.id == new.id
        assert await store.list_deliveries(duplicate.id, limit=10) == []
    assert await store.list_deliveries(new.id, limit=10) == rows
    assert await store.count_open_deliveries() == 3


async def test_alert_pending_approval_plans_no_deliveries(store: Store) -> None:
    """An alert stored pending approval gets no deliveries (it plans when approved)."""
    new = make_new(state=AlertState.PENDING_APPROVAL, deliveries=plan("sms", "+1", "+2"))
    assert (await store.insert_alert(new)).created
    assert await store.list_deliveries(new.id, limit=10) == []
    assert await store.count_open_deliveries() == 0
    assert await claim(store) == []


async def test_alert_and_deliveries_commit_together(store: Store) -> None:
    """A delivery row the schema rejects fails the whole insert: no alert is stored either."""
    bad = make_new(deliveries=(PlannedDelivery("sms", "+1"), PlannedDelivery("sms", None)))  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.insert_alert(bad)
    assert await store.get_alert(bad.id) is None
    assert await store.count_alerts() == 0
    assert await store.count_open_deliveries() == 0
    good = make_new(bad.alert, deliveries=plan("sms", "+1"))
    assert (await store.insert_alert(good)).created
    assert await store.count_open_deliveries() == 1


async def test_concurrent_duplicates_plan_once(store: Store) -> None:
    """Racing inserts of one alert with deliveries: one is created, the others get it back,
    and its deliveries are planned once."""
    news = [make_new(key="same", deliveries=plan("sms", "+1", "+2")) for _ in range(20)]
    results = await asyncio.gather(*(store.insert_alert(n) for n in news))
    assert sum(r.created for r in results) == 1
    assert len({r.alert.id for r in results}) == 1
    assert await store.count_alerts() == 1
    assert await store.count_open_deliveries() == 2


# --- Claiming -------------------------------------------------------------------------


async def test_claim_order_is_priority_then_fifo(store: Store) -> None:
    """Claims take the lowest priority first, then the oldest (id), across alerts; claimed
    deliveries are `sending` with attempts 1 and are not claimed again."""
    a = make_new(priority=2, deliveries=plan("sms", "a1", "a2"))
    b = make_new(priority=0, deliveries=plan("sms", "b1"))
    c = make_new(priority=1, deliveries=plan("sms", "c1", "c2"))
    d = make_new(priority=0, deliveries=plan("sms", "d1"))
    for new in (a, b, c, d):
        await store.insert_alert(new)
    claimed = await claim(store, limit=10)
    assert [x.recipient for x in claimed] == ["b1", "d1", "c1", "c2", "a1", "a2"]
    assert [x.alert_id for x in claimed] == [b.id, d.id, c.id, c.id, a.id, a.id]
    assert [x.priority for x in claimed] == [0, 0, 1, 1, 2, 2]
    assert all(x.attempts == 1 and x.channel == "sms" for x in claimed)
    assert all(x.created_at == T0 and x.expires_at is None for x in claimed)
    for new in (a, b, c, d):
        for row in await store.list_deliveries(new.id, limit=10):
            assert (row.state, row.attempts, row.updated_at) == (DeliveryState.SENDING, 1, T0)
    assert await claim(store, limit=10) == []


async def test_claim_honours_limit_channel_due_time_and_expiry(store: Store) -> None:
    """A claim takes at most `limit` of its own channel, nothing before it is due, and
    nothing at or past the alert's expiry."""
    expires = T0 + 60 * MINUTE
    soon = make_new(make_alert(expires=expires), deliveries=plan("sms", "s1") + plan("x", "x1"))
    forever = make_new(deliveries=plan("sms", "n1", "n2", "n3"))
    await store.insert_alert(soon)
    await store.insert_alert(forever)

    assert await claim(store, now=T0 - SECOND) == []  # not yet due
    first = await claim(store, limit=2)
    assert [x.recipient for x in first] == ["s1", "n1"]
    assert [x.expires_at for x in first] == [expires, None]
    assert await claim(store, "x", now=expires) == []  # expires_at must be > now
    assert [x.recipient for x in await claim(store, "x", now=expires - SECOND)] == ["x1"]
    assert await claim(store, "web") == []
    assert [x.recipient for x in await claim(store, limit=10)] == ["n2", "n3"]
    assert await claim(store, limit=0) == []


async def test_concurrent_claimers_never_share_a_delivery(store_factory: StoreFactory) -> None:
    """Claimers on two stores of one database, racing, never get the same delivery and
    together get all of them (each is claimed exactly once: attempts 1)."""
    first = await store_factory.open()
    second = await store_factory.open()
    total = 1200
    news = [
        make_new(priority=i % 3, deliveries=plan("sms", *(f"+{i}-{j}" for j in range(300))))
        for i in range(total // 300)
    ]
    for new in news:
        await first.insert_alert(new)

    async def drain(store: Store) -> list[int]:
        got: list[int] = []
        while batch := await claim(store, limit=25):
            got.extend(d.id for d in batch)
        return got

    results = await asyncio.gather(drain(first), drain(second), drain(first), drain(second))
    every = [i for ids in results for i in ids]
    assert len(every) == len(set(every)) == total
    assert await claim(first) == []
    for new in news:
        rows = await second.list_deliveries(new.id, limit=1000)
        assert {(r.state, r.attempts) for r in rows} == {(DeliveryState.SENDING, 1)}


# --- Finishing, releasing, reclaiming, expiring ------------------------------------------


async def test_finish_records_sent_retry_and_failure(store: Store) -> None:
    """Outcomes set state, provider_ref, last_error and the retry time; a retry is claimable
    again only once due, with attempts 2; an outcome for a delivery that is not `sending` is
    ignored, and of two outcomes for one delivery in one call the first counts."""
    new = make_new(deliveries=plan("sms", "ok", "retry", "bad", "twice"))
    await store.insert_alert(new)
    c = {d.recipient: d for d in await claim(store)}
    t1 = T0 + 5 * SECOND
    retry_at = T0 + 5 * MINUTE
    await store.finish_deliveries(
        [
            outcome(c["ok"], DeliveryState.SENT, provider_ref="SM1"),
            outcome(c["retry"], DeliveryState.PENDING, error="timeout", next_attempt_at=retry_at),
            outcome(c["bad"], DeliveryState.FAILED, error="invalid number"),
            outcome(c["twice"], DeliveryState.SENT, provider_ref="first"),
            outcome(c["twice"], DeliveryState.FAILED, error="second"),
        ]
    )
    r = await records(store, new.id)
    assert (r["ok"].state, r["ok"].provider_ref, r["ok"].last_error) == ("sent", "SM1", None)
    assert r["ok"].updated_at == t1
    assert (r["retry"].state, r["retry"].last_error) == ("pending", "timeout")
    assert (r["retry"].next_attempt_at, r["retry"].attempts) == (retry_at, 1)
    assert (r["bad"].state, r["bad"].last_error, r["bad"].provider_ref) == (
        "failed",
        "invalid number",
        None,
    )
    assert (r["twice"].state, r["twice"].provider_ref, r["twice"].last_error) == (
        "sent",
        "first",
        None,
    )

    assert await claim(store, now=retry_at - SECOND) == []
    again = await claim(store, now=retry_at)
    assert [(d.recipient, d.attempts) for d in again] == [("retry", 2)]
    # Sent after a retry: the earlier error is kept (only a given error overwrites it).
    await store.finish_deliveries([outcome(again[0], DeliveryState.SENT, provider_ref="SM2")])

    t2 = T0 + 10 * MINUTE
    await store.finish_deliveries(
        [
            outcome(c["ok"], DeliveryState.FAILED, at=t2, error="late"),
            outcome(c["bad"], DeliveryState.SENT, at=t2, provider_ref="late"),
        ]
    )
    await store.finish_deliveries([])
    after = await records(store, new.id)
    assert after["ok"] == r["ok"]
    assert after["bad"] == r["bad"]
    assert (after["retry"].state, after["retry"].provider_ref) == ("sent", "SM2")
    assert (after["retry"].last_error, after["retry"].attempts) == ("timeout", 2)
    assert await store.count_open_deliveries() == 0


async def test_release_gives_back_the_lease_and_the_attempt(store: Store) -> None:
    """Released deliveries are pending again, due at `now`, attempts as before the claim;
    a delivery that is not `sending` is left alone."""
    new = make_new(deliveries=plan("sms", "r1", "r2", "r3"))
    await store.insert_alert(new)
    held = await claim(store, limit=2)
    await store.finish_deliveries([outcome(held[1], DeliveryState.SENT)])
    now = T0 + 10 * SECOND
    await store.release_deliveries([held[0].id, held[1].id], now)
    await store.release_deliveries([], now)
    r = await records(store, new.id)
    assert (r["r1"].state, r["r1"].attempts) == ("pending", 0)
    assert r["r1"].next_attempt_at == r["r1"].updated_at == now
    assert (r["r2"].state, r["r2"].attempts) == ("sent", 1)
    again = await claim(store, now=now)
    assert [(d.recipient, d.attempts) for d in again] == [("r1", 1), ("r3", 1)]


async def test_reclaim_expired_leases_only_touches_expired_leases(store: Store) -> None:
    """Only `sending` deliveries whose lease ended before `now` go back to pending (attempts
    kept); the late outcome of their old worker is then ignored."""
    new = make_new(deliveries=plan("sms", "a", "b", "c"))
    await store.insert_alert(new)
    (a,) = await store.claim_deliveries("sms", limit=1, now=T0, lease_until=T0 + 30 * SECOND)
    await store.claim_deliveries("sms", limit=1, now=T0, lease_until=T0 + 90 * SECOND)  # b
    assert await store.reclaim_expired_leases(T0 + 30 * SECOND) == 0  # lease_until < now
    now = T0 + 60 * SECOND
    assert await store.reclaim_expired_leases(now) == 1
    assert await store.reclaim_expired_leases(now) == 0
    r = await records(store, new.id)
    assert (r["a"].state, r["a"].attempts, r["a"].next_attempt_at) == ("pending", 1, now)
    assert (r["b"].state, r["c"].state) == ("sending", "pending")
    await store.finish_deliveries([outcome(a, DeliveryState.SENT, at=now)])
    assert (await records(store, new.id))["a"].state is DeliveryState.PENDING
    again = await claim(store, now=now)
    assert [(d.recipient, d.attempts) for d in again] == [("a", 2), ("c", 1)]


async def test_expire_deliveries_only_expires_pending_past_expiry(store: Store) -> None:
    """Pending deliveries whose expires_at <= now become expired with a reason; sending
    ones and alerts that never expire are untouched."""
    expires = T0 + 10 * MINUTE
    short = make_new(make_alert(expires=expires), deliveries=plan("sms", "s1", "p1", "p2"))
    forever = make_new(deliveries=plan("sms", "f1"))
    await store.insert_alert(short)
    await store.insert_alert(forever)
    assert [d.recipient for d in await claim(store, limit=1)] == ["s1"]
    assert await store.expire_deliveries(expires - SECOND) == 0
    assert await store.expire_deliveries(expires) == 2
    assert await store.expire_deliveries(expires) == 0
    r = await records(store, short.id)
    for name in ("p1", "p2"):
        assert r[name].state is DeliveryState.EXPIRED
        assert r[name].last_error == "alert expired before it was sent"
        assert r[name].updated_at == expires
    assert r["s1"].state is DeliveryState.SENDING
    assert (await records(store, forever.id))["f1"].state is DeliveryState.PENDING
    assert await store.count_open_deliveries() == 2


# --- Update and Cancel ----------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["offset", "zulu"])
async def test_cancel_stops_pending_and_reaches_those_already_reached(
    store: Store, spelling: str
) -> None:
    """A Cancel (referenced as `+00:00` or `Z`) cancels the original alert and its pending
    deliveries, leaves sending/sent/failed ones alone, and is planned exactly to the
    recipients whose delivery was sending or sent."""
    original = make_new(
        deliveries=plan("sms", "r1", "r2", "r3", "r4", "r5") + plan("x", "@feed"), priority=4
    )
    await store.insert_alert(original)
    c = {d.recipient: d for d in await claim(store, limit=3)}
    (feed,) = await claim(store, "x")
    await store.finish_deliveries(
        [
            outcome(c["r1"], DeliveryState.SENT, provider_ref="SM1"),
            outcome(c["r3"], DeliveryState.FAILED, error="invalid number"),
            outcome(feed, DeliveryState.SENT),
        ]
    )
    reference = original.alert.reference_key
    assert reference.endswith("+00:00")
    if spelling == "zulu":
        reference = reference.removesuffix("+00:00") + "Z"
    at = T0 + MINUTE
    cancel = make_new(
        make_alert(msg_type=MsgType.CANCEL, references=(reference,)), received_at=at, priority=1
    )
    assert (await store.insert_alert(cancel)).created

    r = await records(store, original.id)
    assert {k: v.state.value for k, v in r.items()} == {
        "r1": "sent",
        "r2": "sending",
        "r3": "failed",
        "r4": "cancelled",
        "r5": "cancelled",
        "@feed": "sent",
    }
    assert r["r4"].updated_at == r["r5"].updated_at == at
    assert r["r2"].updated_at == T0
    states = await store.alert_states([original.id, cancel.id])
    assert states == {original.id: AlertState.CANCELLED, cancel.id: AlertState.ACCEPTED}
    stored = await store.get_alert(original.id)
    assert stored is not None
    assert stored.state is AlertState.CANCELLED

    planned = await store.list_deliveries(cancel.id, limit=10)
    assert sorted((d.channel, d.recipient) for d in planned) == [("sms", "r1"), ("x", "@feed")]
    for row in planned:
        assert (row.state, row.priority, row.attempts) == (DeliveryState.PENDING, 1, 0)
        assert row.next_attempt_at == row.created_at == at
    assert sorted(d.recipient for d in await claim(store, now=at)) == ["r1"]
    # r2 was in flight at the cancel: only once it turns out sent is it owed the correction.
    await store.finish_deliveries([outcome(c["r2"], DeliveryState.SENT, at=at + MINUTE)])
    late = await claim(store, now=at + MINUTE)
    assert [(d.alert_id, d.recipient) for d in late] == [(cancel.id, "r2")]
    assert late[0].expires_at is None  # a cancellation never expires unsent


async def test_update_supersedes_and_reaches_old_and_new_recipients_once(store: Store) -> None:
    """An Update supersedes the original, cancels its pending deliveries, and goes to the
    reached recipients plus its own planned ones, each once; unknown references are ignored."""
    original = make_new(deliveries=plan("sms", "r1", "r2", "r3"))
    await store.insert_alert(original)
    c = await claim(store, limit=2)
    await store.finish_deliveries([outcome(c[0], DeliveryState.SENT)])  # r1 sent, r2 sending
    at = T0 + MINUTE
    update = make_new(
        make_alert(
            msg_type=MsgType.UPDATE,
            references=(
                original.alert.reference_key,
                "other@example.org,nope,2026-01-01T00:00:00+00:00",
            ),
        ),
        deliveries=plan("sms", "r1", "r4"),
        priority=2,
        received_at=at,
    )
    assert (await store.insert_alert(update)).created
    assert await store.alert_states([original.id]) == {original.id: AlertState.SUPERSEDED}
    r = await records(store, original.id)
    assert (r["r1"].state, r["r2"].state, r["r3"].state) == ("sent", "sending", "cancelled")
    planned = await store.list_deliveries(update.id, limit=10)
    # r2 is in flight: it is owed the update only once it turns out sent.
    assert sorted(d.recipient for d in planned) == ["r1", "r4"]
    assert {(d.state, d.priority, d.next_attempt_at) for d in planned} == {
        (DeliveryState.PENDING, 2, at)
    }


async def test_update_does_not_revive_a_cancelled_alert(store: Store) -> None:
    """An Update naming an alert that a Cancel already cancelled leaves it cancelled (and
    supersedes the other alerts it names)."""
    original = make_new(deliveries=plan("sms", "r1"))
    await store.insert_alert(original)
    cancel = cancel_of(original, received_at=T0 + MINUTE)
    await store.insert_alert(cancel)
    refs = (original.alert.reference_key, cancel.alert.reference_key)
    update = make_new(make_alert(msg_type=MsgType.UPDATE, references=refs))
    await store.insert_alert(update)
    assert await store.alert_states([original.id, cancel.id, update.id]) == {
        original.id: AlertState.CANCELLED,
        cancel.id: AlertState.SUPERSEDED,
        update.id: AlertState.ACCEPTED,
    }


async def test_references_act_only_for_a_created_accepted_update_or_cancel(store: Store) -> None:
    """A Cancel pending approval, an Alert carrying references, and a duplicate Cancel
    change nothing; a Cancel of an unknown alert is stored and plans nothing."""
    original = make_new(deliveries=plan("sms", "r1", "r2"))
    await store.insert_alert(original)
    (r1,) = await claim(store, limit=1)
    await store.finish_deliveries([outcome(r1, DeliveryState.SENT)])
    refs = (original.alert.reference_key,)

    waiting = cancel_of(original, state=AlertState.PENDING_APPROVAL)
    plain = make_new(make_alert(references=refs), deliveries=plan("sms", "z1"))
    unknown = make_new(
        make_alert(msg_type=MsgType.CANCEL, references=("x@example.org,gone,2026-01-01T00:00:00Z",))
    )
    for new in (waiting, plain, unknown):
        assert (await store.insert_alert(new)).created
    assert await store.alert_states([original.id]) == {original.id: AlertState.ACCEPTED}
    assert (await records(store, original.id))["r2"].state is DeliveryState.PENDING
    assert await store.list_deliveries(waiting.id, limit=10) == []
    assert await store.list_deliveries(unknown.id, limit=10) == []
    assert [d.recipient for d in await store.list_deliveries(plain.id, limit=10)] == ["z1"]

    cancel = cancel_of(original, key="cancel-1")
    assert (await store.insert_alert(cancel)).created
    assert [d.recipient for d in await store.list_deliveries(cancel.id, limit=10)] == ["r1"]
    again = await store.insert_alert(cancel_of(original, key="cancel-1"))
    assert not again.created
    assert again.alert.id == cancel.id
    assert await store.delivery_counts(cancel.id) == {"sms": {"pending": 1}}


async def test_cancel_of_a_100k_delivery_alert_mid_way(store_factory: StoreFactory) -> None:
    """A 100,000-delivery alert is stored in one insert, and its Cancel, after some were
    sent and some are in flight, cancels all the rest in one quick transaction."""
    store = await store_factory.open()
    total = 100_000
    big = make_new(deliveries=tuple(PlannedDelivery("sms", f"+1555{i:07d}") for i in range(total)))
    started = time.perf_counter()
    assert (await store.insert_alert(big)).created
    insert_seconds = time.perf_counter() - started

    claimed = await claim(store, limit=500)
    await store.finish_deliveries([outcome(d, DeliveryState.SENT) for d in claimed[:300]])
    at = T0 + MINUTE
    cancel = cancel_of(big, received_at=at)
    started = time.perf_counter()
    assert (await store.insert_alert(cancel)).created
    cancel_seconds = time.perf_counter() - started
    print(
        f"\n[{store_factory.backend}] insert of {total} deliveries: {insert_seconds:.3f} s; "
        f"Cancel insert: {cancel_seconds:.3f} s"
    )
    assert cancel_seconds < 5.0

    assert await store.delivery_counts(big.id) == {
        "sms": {"sent": 300, "sending": 200, "cancelled": total - 500}
    }
    # The 200 in flight are owed the correction only once they turn out sent.
    assert await store.delivery_counts(cancel.id) == {"sms": {"pending": 300}}
    assert await store.count_open_deliveries() == 500
    corrections = await store.claim_deliveries("sms", limit=1000, now=at, lease_until=LEASE)
    assert len(corrections) == 300
    assert {d.alert_id for d in corrections} == {cancel.id}


# --- Reading --------------------------------------------------------------------------


async def test_delivery_counts_and_list_deliveries_paging(store: Store) -> None:
    """delivery_counts groups one alert's deliveries by channel and state; list_deliveries
    pages them by id with after_id."""
    new = make_new(deliveries=plan("sms", *(f"s{i}" for i in range(5))) + plan("x", "x0", "x1"))
    other = make_new(deliveries=plan("sms", "o1"))
    await store.insert_alert(new)
    await store.insert_alert(other)
    c = await claim(store, limit=2)
    await store.finish_deliveries([outcome(c[0], DeliveryState.SENT)])

    assert await store.delivery_counts(new.id) == {
        "sms": {"sent": 1, "sending": 1, "pending": 3},
        "x": {"pending": 2},
    }
    assert await store.delivery_counts(other.id) == {"sms": {"pending": 1}}
    assert await store.delivery_counts("no-such-alert") == {}

    pages: list[list[DeliveryRecord]] = []
    after: int | None = None
    while page := await store.list_deliveries(new.id, limit=3, after_id=after):
        pages.append(page)
        after = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 1]
    rows = [r for p in pages for r in p]
    assert [r.recipient for r in rows] == ["s0", "s1", "s2", "s3", "s4", "x0", "x1"]
    assert [r.id for r in rows] == sorted({r.id for r in rows})
    assert rows == await store.list_deliveries(new.id, limit=100)
    assert await store.list_deliveries("no-such-alert", limit=10) == []


async def test_count_open_deliveries_and_alert_states(store: Store) -> None:
    """count_open_deliveries counts pending and sending ones; alert_states reports known
    alerts and leaves unknown ids out."""
    assert await store.count_open_deliveries() == 0
    assert await store.alert_states([]) == {}
    a = make_new(deliveries=plan("sms", "1", "2", "3"))
    b = make_new(state=AlertState.PENDING_APPROVAL)
    await store.insert_alert(a)
    await store.insert_alert(b)
    assert await store.count_open_deliveries() == 3
    c = await claim(store, limit=2)
    assert await store.count_open_deliveries() == 3
    await store.finish_deliveries(
        [outcome(c[0], DeliveryState.SENT), outcome(c[1], DeliveryState.FAILED, error="no")]
    )
    assert await store.count_open_deliveries() == 1
    assert await store.alert_states([a.id, b.id, "missing"]) == {
        a.id: AlertState.ACCEPTED,
        b.id: AlertState.PENDING_APPROVAL,
    }


async def test_receipts_move_only_deliveries_that_went_out(store: Store) -> None:
    """A receipt finds its delivery by provider_ref; it never revives a failure."""
    new = make_new(deliveries=plan("sms", "r1", "r2"))
    await store.insert_alert(new)
    first, second = await claim(store, limit=2)
    await store.finish_deliveries(
        [
            outcome(first, DeliveryState.SENT, provider_ref="SM1"),
            outcome(second, DeliveryState.FAILED, provider_ref="SM2", error="21211"),
        ]
    )
    at = T0 + MINUTE
    assert await store.record_receipt("SM1", DeliveryState.DELIVERED, None, at)
    assert not await store.record_receipt("SM2", DeliveryState.DELIVERED, None, at)
    assert not await store.record_receipt("SM-unknown", DeliveryState.DELIVERED, None, at)
    assert await store.record_receipt("SM1", DeliveryState.UNDELIVERED, "twilio 30003", at)
    r = await records(store, new.id)
    assert (r["r1"].state.value, r["r1"].last_error) == ("undelivered", "twilio 30003")
    assert r["r2"].state.value == "failed"


async def test_an_update_names_the_alerts_it_superseded(store: Store) -> None:
    """superseded_by lists what an Update stopped, for replies in the original's thread."""
    original = make_new(deliveries=plan("x", "timeline"))
    await store.insert_alert(original)
    update = make_new(
        make_alert(msg_type=MsgType.UPDATE, references=(original.alert.reference_key,)),
        received_at=T0 + MINUTE,
    )
    await store.insert_alert(update)
    assert await store.superseded_by(update.id) == [original.id]
    assert await store.superseded_by(original.id) == []
