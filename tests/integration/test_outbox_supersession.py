"""Update and Cancel in the Outbox: what they supersede or cancel and whom they reach,
checked on every backend (see conftest.store_factory)."""

from __future__ import annotations

import time

import pytest

from alerts.models import MsgType
from broadcaster.ports import AlertState, DeliveryState, PlannedDelivery, Store
from tests.integration.conftest import StoreFactory
from tests.support.outbox import (
    LEASE,
    MINUTE,
    T0,
    cancel_of,
    claim,
    make_alert,
    make_new,
    outcome,
    plan,
    records,
)

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
