"""An Outbox delivery's life (planned, claimed, finished, released, reclaimed, expired, and
its receipts), checked on every backend (see conftest.store_factory)."""

from __future__ import annotations

import asyncio

import pytest

from broadcaster.errors import StoreError
from broadcaster.ports import AlertState, DeliveryState, PlannedDelivery, Store
from tests.integration.conftest import StoreFactory
from tests.support.outbox import (
    MINUTE,
    SECOND,
    T0,
    claim,
    make_alert,
    make_new,
    outcome,
    plan,
    records,
)

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


# --- Receipts -------------------------------------------------------------------------


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
