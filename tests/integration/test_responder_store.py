"""The responder side of the Store port (reply state with its audit row, reply events,
clusters, retention purge) and the hash-chained audit log, on every backend."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

from adapters.store.postgres import PostgresStore
from broadcaster.audit import AuditEntry, verify_chain
from broadcaster.ports import NewReply, ReplyEventKind, ReplyState, Store
from tests.integration.conftest import StoreFactory
from tests.integration.test_reply_store import reply
from tests.support.outbox import T0, make_new

_EDITS = {
    "detail": (
        "UPDATE audit_log SET detail = ? WHERE seq = ?",
        "UPDATE audit_log SET detail = $1 WHERE seq = $2",
    ),
    "actor": (
        "UPDATE audit_log SET actor = ? WHERE seq = ?",
        "UPDATE audit_log SET actor = $1 WHERE seq = $2",
    ),
}


async def _edit(store: Store, tmp_path: Path, column: str, value: str, seq: int) -> None:
    """Change an audit row behind the store's back, as someone with database access could."""
    sqlite_sql, postgres_sql = _EDITS[column]
    if isinstance(store, PostgresStore):
        await store._pool.execute(postgres_sql, value, seq)
        return
    with sqlite3.connect(tmp_path / "store.db") as conn:
        conn.execute(sqlite_sql, (value, seq))


async def test_audit_chain_holds_and_an_edited_row_breaks_it(store: Store, tmp_path: Path) -> None:
    """Appended rows chain by hash (the first has no prev_hash); editing one row's detail is
    found at that row's seq."""
    records = [
        await store.append_audit(
            AuditEntry(T0 + timedelta(seconds=n), "desk-1", "reply.acknowledge", {"reply_id": n})
        )
        for n in range(4)
    ]
    assert records[0].prev_hash is None
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    rows = await store.audit_rows(0, 100)
    assert rows == records
    assert verify_chain(rows) is None
    assert verify_chain(await store.audit_rows(rows[1].seq, 100), prev_hash=rows[1].hash) is None

    target = rows[2].seq
    await _edit(store, tmp_path, "detail", '{"reply_id":99}', target)
    assert verify_chain(await store.audit_rows(0, 100)) == target
    await _edit(store, tmp_path, "actor", "someone", rows[0].seq)
    assert verify_chain(await store.audit_rows(0, 100)) == rows[0].seq


async def test_concurrent_appenders_never_fork_the_chain(store_factory: StoreFactory) -> None:
    """Two stores (two processes' worth) appending at once still make one unbroken chain."""
    first, second = await store_factory.open(), await store_factory.open()
    entries = [AuditEntry(T0, f"actor-{n}", "test.append", {"n": n}) for n in range(40)]
    await asyncio.gather(
        *((first if n % 2 else second).append_audit(e) for n, e in enumerate(entries))
    )
    rows = await first.audit_rows(0, 100)
    assert len(rows) == 40
    assert verify_chain(rows) is None


async def test_state_change_is_audited_in_the_same_transaction(store: Store) -> None:
    """set_reply_state sets state, by and at and appends its audit row; an unknown reply
    changes nothing and audits nothing."""
    stored = (await store.insert_reply(NewReply(reply("SM1")))).reply
    assert stored.state is ReplyState.NEW
    at = T0 + timedelta(minutes=5)
    entry = AuditEntry(at, "desk-1", "reply.escalate", {"reply_id": stored.id})
    changed = await store.set_reply_state(stored.id, ReplyState.ESCALATED, "desk-1", at, entry)
    assert changed is not None
    assert (changed.state, changed.state_by, changed.state_at) == (
        ReplyState.ESCALATED,
        "desk-1",
        at,
    )
    assert await store.get_reply(stored.id) == changed
    missing = await store.set_reply_state(999_999, ReplyState.DISMISSED, "desk-1", at, entry)
    assert missing is None
    assert [(r.action, r.detail) for r in await store.audit_rows(0, 10)] == [
        ("reply.escalate", {"reply_id": stored.id})
    ]


async def test_reply_events_follow_inserts_state_and_clusters(store: Store) -> None:
    """Each stored reply, state change and cluster change records a reply event in order;
    cluster_counts counts the replies sharing a cluster."""
    start = await store.last_reply_event_seq()
    a = (await store.insert_reply(NewReply(reply("SM1")))).reply
    await store.insert_reply(NewReply(reply("SM1")))  # a repeat records nothing
    b = (await store.insert_reply(NewReply(reply("SM2"), cluster_id=a.id))).reply
    await store.set_reply_cluster(a.id, a.id)
    entry = AuditEntry(T0, "desk", "reply.dismiss", {"reply_id": b.id})
    await store.set_reply_state(b.id, ReplyState.DISMISSED, "desk", T0, entry)
    events = await store.reply_events_after(start, 100)
    assert [(e.reply_id, e.kind) for e in events] == [
        (a.id, ReplyEventKind.CREATED),
        (b.id, ReplyEventKind.CREATED),
        (a.id, ReplyEventKind.UPDATED),
        (b.id, ReplyEventKind.UPDATED),
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert await store.last_reply_event_seq() == events[-1].seq
    assert await store.reply_events_after(events[1].seq, 1) == [events[2]]
    assert await store.cluster_counts([a.id, 12345]) == {a.id: 2}
    assert await store.cluster_counts([]) == {}


async def test_purge_removes_old_replies_with_their_events_and_votes(store: Store) -> None:
    """Replies received before the cut-off go, with their reply events and the poll votes they
    cast, and the purge's audit row (count, cut-off) is written with them; newer ones stay."""
    alert = make_new()
    await store.insert_alert(alert)
    old = (await store.insert_reply(NewReply(reply("SM-old", alert_id=alert.id)))).reply
    kept_at = T0 + timedelta(days=40)
    kept = (await store.insert_reply(NewReply(reply("SM-new", received_at=kept_at)))).reply
    await store.record_poll_vote(alert.id, "+447911000001", "1", old.id, T0)
    cutoff = T0 + timedelta(days=10)

    def audit(count: int) -> AuditEntry:
        return AuditEntry(cutoff, "system", "replies.purge", {"count": count})

    assert await store.purge_replies(cutoff, audit) == 1
    assert await store.get_reply(old.id) is None
    assert await store.get_reply(kept.id) is not None
    assert await store.poll_tally(alert.id) == {}
    assert {e.reply_id for e in await store.reply_events_after(0, 100)} == {kept.id}
    assert await store.purge_replies(cutoff, lambda count: None) == 0
    rows = await store.audit_rows(0, 10)
    assert [(r.action, r.detail) for r in rows] == [("replies.purge", {"count": 1})]
