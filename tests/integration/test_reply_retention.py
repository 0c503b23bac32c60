"""Retention of replies: the background purge in a running service and `broadcaster replies
purge` from the command line, each audited with its count and cut-off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from adapters.main import main
from adapters.store.sqlite import SqliteStore
from broadcaster.audit import verify_chain
from broadcaster.ports import NewReply, Reply, ReplySource, Store
from tests.support.replies import eventually, start_listening


def reply(external_id: str, age: timedelta) -> NewReply:
    return NewReply(
        Reply(
            source=ReplySource.SMS,
            external_id=external_id,
            text="smoke on Market St",
            received_at=datetime.now(UTC) - age,
            sender="+447911000001",
        )
    )


async def _gone(store: Store, reply_id: int) -> bool:
    return await store.get_reply(reply_id) is None


async def test_background_purge_removes_old_replies_and_audits(tmp_path: Path) -> None:
    """With retention_days = 1, a reply two days old is purged within the interval and the
    purge is in the audit log (actor system, count, cut-off); a fresh one stays."""
    async for app in start_listening(
        tmp_path, replies={"retention_days": 1, "purge_interval_seconds": 0.2}
    ):
        store = app.service.store
        old = (await store.insert_reply(reply("SM-old", timedelta(days=2)))).reply
        fresh = (await store.insert_reply(reply("SM-new", timedelta(hours=1)))).reply

        await eventually(partial(_gone, store, old.id), within=5.0, what="the old reply purged")
        assert await store.get_reply(fresh.id) is not None
        rows = await store.audit_rows(0, 10)
        [row] = [r for r in rows if r.action == "replies.purge"]
        assert row.actor == "system"
        assert row.detail["count"] == 1
        cutoff = datetime.fromisoformat(row.detail["cutoff"])
        assert old.received_at < cutoff < fresh.received_at
        assert verify_chain(rows) is None


def test_cli_purge_removes_old_replies_and_audits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`broadcaster replies purge --config F` purges now (retention_days from the config)
    and records the run, even one that finds nothing."""
    db = tmp_path / "b.db"
    config = tmp_path / "b.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n\n[replies]\nretention_days = 30\n')

    async def seed() -> None:
        store = await SqliteStore.open(db)
        await store.migrate()
        await store.insert_reply(reply("SM-old", timedelta(days=31)))
        await store.insert_reply(reply("SM-new", timedelta(days=29)))
        await store.close()

    async def read() -> tuple[list[str], list[dict[str, object]]]:
        store: Store = await SqliteStore.open(db)
        try:
            replies = await store.list_replies(limit=10)
            rows = await store.audit_rows(0, 10)
        finally:
            await store.close()
        assert verify_chain(rows) is None
        assert {r.actor for r in rows} == {"cli"}
        return [r.external_id for r in replies], [dict(r.detail) for r in rows]

    asyncio.run(seed())
    assert main(["replies", "purge", "--config", str(config)]) == 0
    assert "purged 1 replies received before" in capsys.readouterr().out
    assert main(["replies", "purge", "--config", str(config)]) == 0
    kept, details = asyncio.run(read())
    assert kept == ["SM-new"]
    assert [d["count"] for d in details] == [1, 0]
    assert all(d["retention_days"] == 30 for d in details)
