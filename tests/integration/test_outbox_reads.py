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
