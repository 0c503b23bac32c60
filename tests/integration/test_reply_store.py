"""The replies side of the Store port (replies, links to alerts, cursors, poll votes), checked
on every backend (see conftest.store_factory)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from broadcaster.errors import StoreError
from broadcaster.ports import (
    DeliveryState,
    NewReply,
    Reply,
    ReplySource,
    ReplyState,
    Store,
)
from tests.support.outbox import LEASE, SECOND, T0, make_new, outcome, plan


def reply(external_id: str, text: str = "smoke on Market St", **fields: object) -> Reply:
    values: dict[str, object] = {
        "source": ReplySource.SMS,
        "external_id": external_id,
        "text": text,
        "received_at": T0,
        "sender": "+447911000001",
    }
    values.update(fields)
    return Reply(**values)  # type: ignore[arg-type]


async def test_a_reply_is_stored_once_with_everything_it_carries(store: Store) -> None:
    """insert_reply stores every field once; a repeat returns the first, unchanged."""
    new = NewReply(
        reply(
            "SM1",
            lat=53.48,
            lon=-2.24,
            media_url="https://example.org/p.jpg",
            in_reply_to="123",
        ),
        categories=("hazard", "suspect"),
        score=0.75,
        entities={"plates": ["AB12 CDE"], "places": ["Market St"]},
    )
    first = await store.insert_reply(new)
    assert first.created
    stored = first.reply
    assert (stored.source, stored.external_id, stored.sender) == (
        ReplySource.SMS,
        "SM1",
        "+447911000001",
    )
    assert stored.categories == ("hazard", "suspect")
    assert stored.score == 0.75
    assert stored.entities == {"plates": ["AB12 CDE"], "places": ["Market St"]}
    assert (stored.lat, stored.lon, stored.media_url, stored.in_reply_to) == (
        53.48,
        -2.24,
        "https://example.org/p.jpg",
        "123",
    )
    assert stored.received_at == T0
    assert stored.state is ReplyState.NEW
    assert stored.state_by is None
    assert stored.cluster_id is None

    again = await store.insert_reply(NewReply(reply("SM1", "other text"), categories=("x",)))
    assert not again.created
    assert again.reply == stored
    assert await store.get_reply(stored.id) == stored
    assert await store.find_reply(ReplySource.SMS, "SM1") == stored
    assert await store.find_reply(ReplySource.X, "SM1") is None  # unique per source
    assert await store.get_reply(stored.id + 1000) is None


async def test_concurrent_repeats_store_one_reply(store: Store) -> None:
    """Twenty concurrent inserts of one (source, external id) make one row."""
    results = await asyncio.gather(*(store.insert_reply(NewReply(reply("SM2"))) for _ in range(20)))
    assert sum(r.created for r in results) == 1
    assert len({r.reply.id for r in results}) == 1
    assert len(await store.list_replies(limit=100)) == 1


async def test_a_reply_naming_an_unknown_alert_is_refused(store: Store) -> None:
    """alert_id is a foreign key: an unknown alert raises StoreError and stores nothing."""
    with pytest.raises(StoreError):
        await store.insert_reply(NewReply(reply("SM3", alert_id="no-such-alert")))
    assert await store.list_replies(limit=10) == []


async def test_list_replies_filters_and_pages(store: Store) -> None:
    """Newest first by default, oldest first after an id; category, since, state and
    cluster filter."""
    texts = ["fire", "knife", "fire and knife", "hello"]
    categories = [("hazard",), ("suspect",), ("hazard", "suspect"), ()]
    ids = []
    for n, (text, cats) in enumerate(zip(texts, categories, strict=True)):
        result = await store.insert_reply(
            NewReply(reply(f"SM{n}", text, received_at=T0 + n * SECOND), categories=cats)
        )
        ids.append(result.reply.id)
    newest = await store.list_replies(limit=10)
    assert [r.id for r in newest] == ids[::-1]
    assert [r.id for r in await store.list_replies(limit=2)] == ids[:1:-1]
    assert [r.id for r in await store.list_replies(limit=10, before_id=ids[2])] == ids[1::-1]
    assert [r.id for r in await store.list_replies(limit=10, after_id=ids[0])] == ids[1:]
    hazard = await store.list_replies(limit=10, category="hazard")
    assert [r.text for r in hazard] == ["fire and knife", "fire"]
    assert await store.list_replies(limit=10, category="haz") == []
    since = await store.list_replies(limit=10, since=T0 + 2 * SECOND)
    assert [r.text for r in since] == ["hello", "fire and knife"]
    suspect_since = await store.list_replies(limit=10, category="suspect", since=T0 + SECOND)
    assert [r.text for r in suspect_since] == ["fire and knife", "knife"]
    assert len(await store.list_replies(limit=10, state=ReplyState.NEW)) == 4
    assert await store.list_replies(limit=10, state=ReplyState.DISMISSED) == []
    assert await store.list_replies(limit=0) == []
    await store.set_reply_cluster(ids[0], ids[0])
    await store.set_reply_cluster(ids[2], ids[0])
    cluster = await store.list_replies(limit=10, cluster=ids[0])
    assert [r.id for r in cluster] == [ids[2], ids[0]]
    assert await store.list_replies(limit=10, cluster=ids[0], category="suspect") == cluster[:1]
    assert await store.list_replies(limit=10, cluster=ids[3]) == []


async def test_list_replies_by_the_alert_they_answer(store: Store) -> None:
    """`alert=` lists the replies linked to that alert, newest first, with other filters and
    paging; an alert nothing answers (or no alert at all) lists none."""
    first, second = make_new(), make_new()
    await store.insert_alert(first)
    await store.insert_alert(second)
    links = [first.id, second.id, first.id, None, first.id]
    ids = []
    for n, alert_id in enumerate(links):
        cats = ("hazard",) if n % 2 else ()
        new = NewReply(reply(f"SM{n}", alert_id=alert_id), categories=cats)
        ids.append((await store.insert_reply(new)).reply.id)
    answers = await store.list_replies(limit=10, alert=first.id)
    assert [r.id for r in answers] == [ids[4], ids[2], ids[0]]
    assert [r.id for r in await store.list_replies(limit=1, alert=first.id)] == [ids[4]]
    paged = await store.list_replies(limit=10, alert=first.id, before_id=ids[4])
    assert [r.id for r in paged] == [ids[2], ids[0]]
    assert [r.id for r in await store.list_replies(limit=10, alert=second.id)] == [ids[1]]
    assert await store.list_replies(limit=10, alert=second.id, category="suspect") == []
    hazard = await store.list_replies(limit=10, alert=second.id, category="hazard")
    assert [r.id for r in hazard] == [ids[1]]  # not ids[3], a hazard answering no alert
    assert await store.list_replies(limit=10, alert=first.id, category="hazard") == []
    tail = await store.list_replies(limit=10, alert=first.id, after_id=ids[0])
    assert [r.id for r in tail] == [ids[2], ids[4]]
    assert await store.list_replies(limit=10, alert="no-such-alert") == []


async def test_last_sms_alert_is_the_newest_sent_to_that_number(store: Store) -> None:
    """The alert of the newest sent/delivered SMS delivery to a phone; pending ones do not
    count, nor other channels or numbers."""
    phone, other = "+447911000001", "+447911000002"
    assert await store.last_sms_alert(phone) is None
    older = make_new(deliveries=plan("sms", phone, other))
    newer = make_new(deliveries=plan("sms", phone))
    unsent = make_new(deliveries=plan("sms", phone))
    webhook = make_new(deliveries=plan("webhook", phone))
    for new in (older, newer):
        await store.insert_alert(new)
        claimed = await store.claim_deliveries("sms", limit=10, now=T0, lease_until=LEASE)
        await store.finish_deliveries([outcome(d, DeliveryState.SENT) for d in claimed])
    await store.record_receipt(
        (await store.list_deliveries(newer.id, limit=1))[0].provider_ref or "none",
        DeliveryState.DELIVERED,
        None,
        T0,
    )
    await store.insert_alert(unsent)
    await store.insert_alert(webhook)
    claimed = await store.claim_deliveries("webhook", limit=10, now=T0, lease_until=LEASE)
    await store.finish_deliveries([outcome(d, DeliveryState.SENT) for d in claimed])
    assert await store.last_sms_alert(phone) == newer.id
    assert await store.last_sms_alert(other) == older.id
    assert await store.last_sms_alert("+447911000003") is None
    # The same answers from the combined lookup, with the reply stored under a key.
    stored = (await store.insert_reply(NewReply(reply("SM9", sender=phone)))).reply
    found = store.find_reply_and_sms_alert
    assert await found(ReplySource.SMS, "SM9", phone) == (stored, newer.id)
    assert await found(ReplySource.SMS, "SM8", other) == (None, older.id)
    assert await found(ReplySource.X, "SM9", "+447911000003") == (None, None)
    assert await found(ReplySource.SMS, "SM9", None) == (stored, None)


async def test_get_replies_returns_those_that_exist_in_one_call(store: Store) -> None:
    a = (await store.insert_reply(NewReply(reply("SM1"), entities={"places": ["x"]}))).reply
    b = (await store.insert_reply(NewReply(reply("SM2")))).reply
    assert await store.get_replies([]) == []
    got = await store.get_replies([b.id, a.id + b.id + 1000, a.id])
    assert sorted(got, key=lambda r: r.id) == [a, b]


async def test_concurrent_reads_each_get_their_own_rows(store: Store) -> None:
    """Reads issued together (grouped into one trip on SQLite) each answer their own query;
    a read that fails fails alone."""
    stored = [(await store.insert_reply(NewReply(reply(f"SM{n}")))).reply for n in range(20)]
    found = await asyncio.gather(
        *(store.find_reply(ReplySource.SMS, f"SM{n}") for n in range(25)),
        store.list_replies(limit=3, since=T0 + timedelta(days=1)),
    )
    assert found == [*stored, None, None, None, None, None, []]


async def test_alert_for_x_posts_matches_provider_refs_in_order(store: Store) -> None:
    """The alert whose X delivery posted one of the ids; the first id that matches wins."""
    first, second = (
        make_new(deliveries=plan("x", "timeline")),
        make_new(deliveries=plan("x", "timeline")),
    )
    for new, ref in ((first, "1001"), (second, "1002")):
        await store.insert_alert(new)
        claimed = await store.claim_deliveries("x", limit=10, now=T0, lease_until=LEASE)
        await store.finish_deliveries(
            [outcome(d, DeliveryState.SENT, provider_ref=ref) for d in claimed]
        )
    assert await store.alert_for_x_posts(["1002"]) == second.id
    assert await store.alert_for_x_posts(["999", "1001", "1002"]) == first.id
    assert await store.alert_for_x_posts(["999"]) is None
    assert await store.alert_for_x_posts([]) is None


async def test_cursors_are_written_and_overwritten(store: Store) -> None:
    """get_cursor is None until set_cursor; a later set replaces the value."""
    assert await store.get_cursor("x:mentions:1") is None
    await store.set_cursor("x:mentions:1", "100", T0)
    await store.set_cursor("x:mentions:2", "5", T0)
    await store.set_cursor("x:mentions:1", "200", T0 + SECOND)
    assert await store.get_cursor("x:mentions:1") == "200"
    assert await store.get_cursor("x:mentions:2") == "5"


async def test_poll_votes_one_per_voter_latest_wins(store: Store) -> None:
    """A later vote replaces a voter's earlier one; an older one never replaces a newer."""
    alert = make_new()
    await store.insert_alert(alert)
    assert await store.poll_tally(alert.id) == {}
    assert await store.record_poll_vote(alert.id, "+1", "1", None, T0)
    assert await store.record_poll_vote(alert.id, "+2", "1", None, T0)
    assert await store.record_poll_vote(alert.id, "+1", "2", None, T0 + SECOND)
    assert not await store.record_poll_vote(alert.id, "+1", "1", None, T0 - timedelta(hours=1))
    assert await store.poll_tally(alert.id) == {"1": 1, "2": 1}
