"""The Store port's contract, checked on every backend (see conftest.store_factory)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from adapters.store import open_store, schema
from adapters.store.postgres import PostgresStore
from adapters.store.sqlite import SqliteStore
from alerts.models import Alert, Info
from broadcaster.audit import AuditEntry, verify_chain
from broadcaster.errors import StoreError
from broadcaster.ports import AlertState, ApiToken, NewAlert, Role, Store
from tests.integration.conftest import StoreFactory


def make_alert(identifier: str | None = None, *, sent: datetime | None = None) -> Alert:
    return Alert(
        identifier=identifier or f"id-{uuid4().hex}",
        sender="test@example.org",
        sent=sent or datetime.now(UTC),
        status="Actual",
        msg_type="Alert",
        scope="Public",
        infos=(
            Info(
                categories=("Safety",),
                event="Gas leak",
                urgency="Immediate",
                severity="Severe",
                certainty="Observed",
                headline="Avoid Market St",
            ),
        ),
    )


def make_new(alert: Alert | None = None, *, key: str | None = None, **changes: object) -> NewAlert:
    alert = alert or make_alert()
    new = NewAlert(
        id=f"a-{uuid4().hex}",
        alert=alert,
        channels=("sms", "web"),
        source="rest",
        state=AlertState.ACCEPTED,
        created_by="issuer-1",
        idempotency_key=key,
        body_hash=hashlib.sha256(alert.model_dump_json().encode()).hexdigest(),
        cap_xml=None,
        received_at=datetime.now(UTC),
    )
    return dataclasses.replace(new, **changes)  # type: ignore[arg-type]


async def test_migrate_is_idempotent_and_reports_newest_version(store: Store) -> None:
    """migrate() on a migrated store changes nothing and reports LATEST_VERSION again."""
    assert await store.migrate() == schema.LATEST_VERSION
    assert await store.migrate() == schema.LATEST_VERSION


async def test_concurrent_migrations_apply_each_step_once(store_factory: StoreFactory) -> None:
    """Two stores migrating one empty database at once both end at LATEST_VERSION."""
    first = await store_factory.open(migrate=False)
    second = await store_factory.open(migrate=False)
    versions = await asyncio.gather(first.migrate(), second.migrate())
    assert list(versions) == [schema.LATEST_VERSION, schema.LATEST_VERSION]
    await first.insert_alert(make_new())
    assert await second.count_alerts() == 1


async def test_insert_then_get_returns_equal_alert_and_metadata(store: Store) -> None:
    """A stored alert reads back equal: the Alert model and every metadata field."""
    received = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    new = make_new(
        key="issuer-1:k1", cap_xml="<alert/>", received_at=received, channels=("x", "sms")
    )
    result = await store.insert_alert(new)
    assert result.created
    got = await store.get_alert(new.id)
    assert got == result.alert
    assert got is not None
    assert got.alert == new.alert
    assert (got.id, got.channels, got.source, got.state) == (
        new.id,
        ("x", "sms"),
        "rest",
        "accepted",
    )
    assert (got.created_by, got.idempotency_key, got.body_hash, got.cap_xml) == (
        "issuer-1",
        "issuer-1:k1",
        new.body_hash,
        "<alert/>",
    )
    assert got.received_at == received
    assert await store.get_alert("no-such-id") is None


async def test_repeated_idempotency_key_returns_first_alert(store: Store) -> None:
    """A second insert with the same idempotency key is not stored and names the first."""
    first = await store.insert_alert(make_new(key="issuer-1:same"))
    again = await store.insert_alert(make_new(key="issuer-1:same"))
    assert first.created
    assert not again.created
    assert again.alert == first.alert
    assert await store.count_alerts() == 1


async def test_same_cap_sender_identifier_sent_returns_first_alert(store: Store) -> None:
    """A second insert of the same CAP sender+identifier+sent returns the first alert."""
    alert = make_alert("dup-1")
    first = await store.insert_alert(make_new(alert))
    again = await store.insert_alert(make_new(alert))
    assert first.created
    assert not again.created
    assert again.alert.id == first.alert.id
    assert await store.count_alerts() == 1


async def test_concurrent_inserts_are_stored_exactly_once(store: Store) -> None:
    """200 concurrent inserts plus a retry of each are all acknowledged, each stored once."""
    news = [make_new(key=f"k-{i}") for i in range(200)]
    retries = [make_new(key=f"k-{i}") for i in range(200)]
    results = await asyncio.gather(*(store.insert_alert(n) for n in [*news, *retries]))
    assert await store.count_alerts() == 200
    for i in range(200):
        one, other = results[i], results[200 + i]
        assert one.created != other.created
        assert one.alert.id == other.alert.id
        assert one.alert.idempotency_key == f"k-{i}"
    assert len({r.alert.seq for r in results}) == 200


async def test_batch_with_duplicate_or_bad_row_does_not_fail_the_others(store: Store) -> None:
    """In one burst, a duplicate gets the first alert back and a bad row fails alone."""
    a, b, c = make_new(key="a"), make_new(), make_new()
    duplicate = make_new(a.alert, key="a")
    bad = make_new(body_hash=None)  # violates NOT NULL in the database
    results = await asyncio.gather(
        *(store.insert_alert(n) for n in (a, b, duplicate, c, bad)), return_exceptions=True
    )
    ra, rb, rdup, rc, rbad = results
    assert isinstance(rbad, StoreError)
    for result, new in ((ra, a), (rb, b), (rc, c)):
        assert not isinstance(result, BaseException)
        assert result.created
        assert result.alert.id == new.id
    assert not isinstance(rdup, BaseException)
    assert not rdup.created
    assert rdup.alert.id == a.id
    assert await store.count_alerts() == 3


async def test_list_alerts_newest_first_with_paging(store: Store) -> None:
    """list_alerts returns newest first and pages backwards with before_seq."""
    ids = [(await store.insert_alert(make_new())).alert.id for _ in range(5)]
    page1 = await store.list_alerts(limit=2)
    page2 = await store.list_alerts(limit=2, before_seq=page1[-1].seq)
    page3 = await store.list_alerts(limit=2, before_seq=page2[-1].seq)
    assert [s.id for s in page1 + page2 + page3] == ids[::-1]
    assert await store.list_alerts(limit=2, before_seq=page3[-1].seq) == []
    assert [s.id for s in await store.list_alerts(limit=10)] == ids[::-1]


async def test_count_alerts(store: Store) -> None:
    """count_alerts counts stored alerts; a duplicate does not add to it."""
    assert await store.count_alerts() == 0
    news = [make_new(key=f"c-{i}") for i in range(3)]
    for new in news:
        await store.insert_alert(new)
    await store.insert_alert(make_new(key="c-0"))
    assert await store.count_alerts() == 3


async def test_token_create_and_find(store: Store) -> None:
    """A created token is found by its hash; an unknown hash gives None; hashes are unique."""
    now = datetime.now(UTC)
    token = ApiToken(
        id="tok-1",
        name="ops",
        role=Role.ISSUER,
        token_hash=hashlib.sha256(b"secret").hexdigest(),
        created_at=now,
        expires_at=now + timedelta(days=30),
    )
    await store.create_token(token)
    assert await store.find_token(token.token_hash) == token
    assert await store.find_token("0" * 64) is None
    with pytest.raises(StoreError):
        await store.create_token(dataclasses.replace(token, id="tok-2"))


async def test_data_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    """Alerts and tokens committed before close() are there after reopening."""
    first = await store_factory.open()
    stored = (await first.insert_alert(make_new(key="persist"))).alert
    token = ApiToken("t", "n", Role.ADMIN, "h" * 64, datetime.now(UTC))
    await first.create_token(token)
    await first.close()
    second = await store_factory.open()
    assert await second.get_alert(stored.id) == stored
    assert await second.find_token(token.token_hash) == token
    later = await second.insert_alert(make_new())
    assert later.alert.seq > stored.seq
    assert not (await second.insert_alert(make_new(key="persist"))).created


async def test_closed_store_raises_store_error(store: Store) -> None:
    """Every operation on a closed store raises StoreError; close() twice is harmless."""
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
    with pytest.raises(StoreError):
        await store.insert_alert(make_new())
    with pytest.raises(StoreError):
        await store.get_alert("x")
    with pytest.raises(StoreError):
        await store.list_alerts(limit=1)
    with pytest.raises(StoreError):
        await store.count_alerts()
    with pytest.raises(StoreError):
        await store.find_token("x")


async def test_unreachable_database_raises_store_error(tmp_path: Path) -> None:
    """Opening a SQLite file in a missing directory, a PostgreSQL nobody serves or a
    malformed DSN fails with StoreError, not a driver exception."""
    with pytest.raises(StoreError):
        await SqliteStore.open(tmp_path / "missing" / "x.db")
    with pytest.raises(StoreError):
        await PostgresStore.open("postgresql://postgres@127.0.0.1:1/none", connect_timeout=5)
    with pytest.raises(StoreError):
        await PostgresStore.open("postgresql://postgres@127.0.0.1:port/none")


async def test_open_store_picks_backend_from_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_store handles relative, absolute and in-memory SQLite URLs and rejects others."""
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///rel.db", f"sqlite:///{tmp_path}/abs.db", "sqlite:///:memory:"):
        store = await open_store(url)
        try:
            new = make_new()
            await store.insert_alert(new)
            assert (await store.get_alert(new.id)) is not None
        finally:
            await store.close()
    assert (tmp_path / "rel.db").exists()
    assert (tmp_path / "abs.db").exists()
    with pytest.raises(ValueError, match="mysql"):
        await open_store("mysql://db/alerts")
    with pytest.raises(ValueError, match="sqlite"):
        await open_store("sqlite://relative.db")
    dsn = os.environ.get("BROADCASTER_TEST_POSTGRES_DSN")
    if dsn:
        with pytest.raises(StoreError):
            await open_store(dsn.rsplit("/", 1)[0] + "/no_such_database_here")


async def test_sqlite_batch_fails_whole_when_database_is_locked(tmp_path: Path) -> None:
    """When the batch transaction cannot start or commit, every caller in it gets
    StoreError, and the writer keeps serving later inserts."""
    path = tmp_path / "locked.db"
    store = await SqliteStore.open(path, busy_timeout_ms=50)
    try:
        await store.migrate()
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
            results = await asyncio.gather(
                *(store.insert_alert(make_new()) for _ in range(3)), return_exceptions=True
            )
            assert all(isinstance(r, StoreError) for r in results)
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert (await store.insert_alert(make_new())).created
        assert await store.count_alerts() == 1
    finally:
        await store.close()


async def test_sqlite_reads_issued_together_fail_alone(tmp_path: Path) -> None:
    """Concurrent reads share one trip to the reader's thread; a statement that fails there
    fails only its own caller, and the reader keeps serving."""
    store = await SqliteStore.open(tmp_path / "reads.db")
    try:
        await store.migrate()
        good, bad, count = await asyncio.gather(
            store.ping(),
            store._fetch("SELECT no_such_column FROM alerts", ()),
            store.count_alerts(),
            return_exceptions=True,
        )
        assert good is None
        assert count == 0
        assert isinstance(bad, StoreError)
        assert isinstance(bad.__cause__, sqlite3.Error)
        assert await store.count_alerts() == 0
    finally:
        await store.close()


async def test_an_alert_is_audited_in_its_own_transaction_once(store: Store) -> None:
    """An insert's audit entries commit with it, in order, chained; a repeat writes none."""
    entry = AuditEntry(at=datetime.now(UTC), actor="desk", action="alert.create", detail={"n": 1})
    also = AuditEntry(at=datetime.now(UTC), actor="desk", action="alert.cancel", detail={"n": 2})
    first = await store.insert_alert(make_new(key="audited", audit=(entry, also)))
    again = await store.insert_alert(make_new(key="audited", audit=(entry, also)))
    held = make_new(state=AlertState.PENDING_APPROVAL, audit=(entry,))
    assert (first.created, again.created, (await store.insert_alert(held)).created) == (
        True,
        False,
        True,
    )
    rows = await store.audit_rows(0, 10)
    assert [(r.actor, r.action, dict(r.detail)) for r in rows] == [
        ("desk", "alert.create", {"n": 1}),
        ("desk", "alert.cancel", {"n": 2}),
        ("desk", "alert.create", {"n": 1}),
    ]
    assert verify_chain(rows) is None


async def test_concurrent_inserts_and_appends_keep_one_intact_chain(store: Store) -> None:
    """Alerts inserted together (one SQLite batch) and audit appends between them chain."""

    def created(n: int) -> AuditEntry:
        return AuditEntry(
            at=datetime.now(UTC), actor="desk", action="alert.create", detail={"n": n}
        )

    inserts = [
        store.insert_alert(make_new(key=f"chain-{n}", audit=(created(n),))) for n in range(20)
    ]
    appends = [
        store.append_audit(
            AuditEntry(at=datetime.now(UTC), actor="cli", action="token.create", detail={"n": n})
        )
        for n in range(3)
    ]
    await asyncio.gather(*inserts[:10], *appends, *inserts[10:])
    rows = await store.audit_rows(0, 100)
    assert sorted(dict(r.detail)["n"] for r in rows if r.action == "alert.create") == list(
        range(20)
    )
    assert sum(1 for r in rows if r.action == "token.create") == 3
    assert verify_chain(rows) is None
