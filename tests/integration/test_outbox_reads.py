"""Reading the Outbox (delivery counts, paging, open deliveries, alert states), checked on
every backend (see conftest.store_factory)."""

from __future__ import annotations

from broadcaster.ports import AlertState, DeliveryRecord, DeliveryState, Store
from tests.support.outbox import claim, make_new, outcome, plan

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


async def test_delivery_counts_for_matches_per_alert_counts(store: Store) -> None:
    """delivery_counts_for gives, in one read, each listed alert's delivery_counts; alerts
    without deliveries and unknown ids are absent; no ids, no counts."""
    assert await store.delivery_counts_for([]) == {}
    mixed = make_new(deliveries=plan("sms", "s0", "s1", "s2") + plan("x", "x0"))
    sms_only = make_new(deliveries=plan("sms", "t0", "t1"))
    web_only = make_new(deliveries=plan("webhook", "w0"))
    bare = make_new()
    unlisted = make_new(deliveries=plan("sms", "u0"))
    for new in (mixed, sms_only, web_only, bare, unlisted):
        await store.insert_alert(new)
    claimed = await claim(store, limit=4)
    await store.finish_deliveries(
        [outcome(claimed[0], DeliveryState.SENT), outcome(claimed[1], DeliveryState.FAILED)]
    )

    ids = [mixed.id, sms_only.id, web_only.id, bare.id, "no-such-alert", mixed.id]
    grouped = await store.delivery_counts_for(ids)
    assert set(grouped) == {mixed.id, sms_only.id, web_only.id}
    for alert_id in ids:
        assert grouped.get(alert_id, {}) == await store.delivery_counts(alert_id)
    by_state = [c for channels in grouped.values() for c in channels.values()]
    assert {state for c in by_state for state in c} == {"pending", "sending", "sent", "failed"}
    assert sum(n for c in by_state for n in c.values()) == 7  # `unlisted` left out
    assert await store.delivery_counts_for([bare.id, "no-such-alert"]) == {}


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
