"""The subscriber side of the Store port, checked on every backend (see conftest.store_factory).

Times are fixed (T0 and offsets from it) and passed explicitly, so the tests never depend on
the wall clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.store.postgres import PostgresStore
from broadcaster.ports import Store, Subscriber
from tests.integration.conftest import StoreFactory, postgres_schema

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def sub(phone: str, **fields: object) -> Subscriber:
    return Subscriber(phone, **fields)  # type: ignore[arg-type]


async def test_upsert_counts_created_then_updated(store: Store) -> None:
    """A first upsert creates every phone; a second one updates those and creates the new."""
    assert await store.upsert_subscribers([sub("+15550001"), sub("+15550002")], T0) == (2, 0)
    again = [sub("+15550002", area_code="415"), sub("+15550003"), sub("+15550001", lat=1.5)]
    assert await store.upsert_subscribers(again, T0 + HOUR) == (1, 2)
    assert await store.upsert_subscribers([], T0) == (0, 0)
    two = await store.get_subscriber("+15550002")
    assert two is not None
    assert two.area_code == "415"
    assert two.created_at == T0  # an update keeps created_at
    three = await store.get_subscriber("+15550003")
    assert three is not None
    assert three.created_at == T0 + HOUR


async def test_upsert_repeating_a_phone_keeps_the_last_record(store: Store) -> None:
    """A phone given twice in one list is one subscriber, with the last record's fields."""
    batch = [sub("+15550001", language="fr-CA"), sub("+15550002"), sub("+15550001", lat=2.0)]
    assert await store.upsert_subscribers(batch, T0) == (2, 0)
    one = await store.get_subscriber("+15550001")
    assert one is not None
    assert (one.language, one.lat) == ("en-US", 2.0)


async def test_upsert_replaces_fields_but_never_the_opt_out(store: Store) -> None:
    """An update replaces position, area code, language and groups, not opted_out_at."""
    await store.upsert_subscribers([sub("+15550001", lat=1.0, lon=2.0, groups=("a",))], T0)
    assert await store.set_opted_out("+15550001", T0 + HOUR)
    update = sub(
        "+15550001",
        lat=3.0,
        lon=4.0,
        area_code="212",
        language="es-US",
        groups=("b", "c"),
        opted_out_at=None,
    )
    assert await store.upsert_subscribers([update], T0 + 2 * HOUR) == (0, 1)
    got = await store.get_subscriber("+15550001")
    assert got is not None
    assert (got.lat, got.lon, got.area_code, got.language, got.groups) == (
        3.0,
        4.0,
        "212",
        "es-US",
        ("b", "c"),
    )
    assert got.opted_out_at == T0 + HOUR
    assert got.created_at == T0


async def test_get_list_paging_and_delete(store: Store) -> None:
    """get by phone; list pages forward by id; delete reports whether a row went."""
    phones = [f"+1555000{i}" for i in range(5)]
    await store.upsert_subscribers([sub(p) for p in phones], T0)
    assert await store.get_subscriber("+19999999") is None
    first = await store.list_subscribers(limit=2)
    assert [s.phone for s in first] == phones[:2]
    assert all(s.id is not None for s in first)
    rest = await store.list_subscribers(limit=10, after_id=first[-1].id)
    assert [s.phone for s in rest] == phones[2:]
    assert [s.id for s in first + rest] == sorted(s.id for s in first + rest if s.id is not None)
    assert await store.list_subscribers(limit=0) == []
    got = await store.get_subscriber(phones[3])
    assert got == rest[1]
    assert await store.delete_subscriber(phones[3])
    assert not await store.delete_subscriber(phones[3])
    assert await store.get_subscriber(phones[3]) is None
    assert [s.phone for s in await store.list_subscribers(limit=10)] == [
        p for p in phones if p != phones[3]
    ]


async def test_opt_out_and_back_in_and_active_subscribers(store: Store) -> None:
    """set_opted_out sets and clears opted_out_at (aware UTC); active ones exclude it."""
    await store.upsert_subscribers(
        [sub("+15550001", area_code="415", groups=("fire",)), sub("+15550002"), sub("+15550003")],
        T0,
    )
    plus_two = timezone(timedelta(hours=2))
    assert await store.set_opted_out("+15550002", datetime(2026, 5, 1, 15, 0, tzinfo=plus_two))
    assert not await store.set_opted_out("+19999999", T0)
    got = await store.get_subscriber("+15550002")
    assert got is not None
    assert got.opted_out_at == T0 + HOUR
    assert got.opted_out_at.utcoffset() == timedelta(0)
    active = await store.active_subscribers()
    assert [s.phone for s in active] == ["+15550001", "+15550003"]
    assert active[0].area_code == "415"
    assert active[0].groups == ("fire",)
    assert all(s.opted_out_at is None and s.id is not None for s in active)
    assert await store.set_opted_out("+15550002", None)
    back = await store.get_subscriber("+15550002")
    assert back is not None
    assert back.opted_out_at is None
    assert [s.phone for s in await store.active_subscribers()] == [
        "+15550001",
        "+15550002",
        "+15550003",
    ]


async def test_new_subscriber_keeps_a_given_opt_out(store: Store) -> None:
    """A record created already opted out stays out of the active subscribers."""
    await store.upsert_subscribers([sub("+15550001", opted_out_at=T0), sub("+15550002")], T0)
    assert [s.phone for s in await store.active_subscribers()] == ["+15550002"]


async def test_groups_round_trip(store: Store) -> None:
    """groups come back as the same tuple: empty, several, non-ASCII and quoted names."""
    cases = {
        "+15550001": (),
        "+15550002": ("fire", "flood"),
        "+15550003": ("écoles", "医院", 'say "hi"'),
        "+15550004": ("fire", "flood"),
    }
    await store.upsert_subscribers([sub(p, groups=g) for p, g in cases.items()], T0)
    for phone, groups in cases.items():
        got = await store.get_subscriber(phone)
        assert got is not None
        assert got.groups == groups
    listed = await store.list_subscribers(limit=10)
    assert {s.phone: s.groups for s in listed} == cases
    active = await store.active_subscribers()
    assert {s.phone: s.groups for s in active} == cases


async def test_upsert_100k_is_fast(store_factory: StoreFactory) -> None:
    """100,000 subscribers insert, then update, well within a sanity bound; timings printed."""
    store = await store_factory.open()
    batch = [
        sub(
            f"+1{i:010d}",
            lat=37.0 + i / 1e6,
            lon=-122.0,
            area_code=str(200 + i % 800),
            groups=("fire",) if i % 3 else (),
        )
        for i in range(100_000)
    ]
    start = time.perf_counter()
    assert await store.upsert_subscribers(batch, T0) == (100_000, 0)
    inserted = time.perf_counter() - start
    start = time.perf_counter()
    assert await store.upsert_subscribers(batch, T0 + HOUR) == (0, 100_000)
    updated = time.perf_counter() - start
    start = time.perf_counter()
    active = await store.active_subscribers()
    loaded = time.perf_counter() - start
    assert len(active) == 100_000
    print(
        f"\n[{store_factory.backend}] 100k upsert: insert {inserted:.2f}s, "
        f"update {updated:.2f}s; active_subscribers {loaded:.2f}s"
    )
    assert inserted < 20
    assert updated < 20


async def test_flag_and_clear_leave_the_opt_out_alone(store: Store) -> None:
    """flag_subscriber sets flagged and flagged_at (aware UTC), hides the number from the
    active subscribers, clears both with None, and never touches opted_out_at."""
    await store.upsert_subscribers([sub("+15550001"), sub("+15550002"), sub("+15550003")], T0)
    plus_two = timezone(timedelta(hours=2))
    at = datetime(2026, 5, 1, 15, 0, tzinfo=plus_two)
    assert await store.flag_subscriber("+15550002", "21614 not a mobile number", at)
    assert not await store.flag_subscriber("+19999999", "21211 invalid 'To' number", T0)
    got = await store.get_subscriber("+15550002")
    assert got is not None
    assert (got.flagged, got.flagged_at) == ("21614 not a mobile number", T0 + HOUR)
    assert got.flagged_at is not None
    assert got.flagged_at.utcoffset() == timedelta(0)
    assert got.opted_out_at is None
    listed = {s.phone: s for s in await store.list_subscribers(limit=10)}
    assert listed["+15550002"].flagged == "21614 not a mobile number"
    assert listed["+15550001"].flagged is None
    assert [s.phone for s in await store.active_subscribers()] == ["+15550001", "+15550003"]
    # Opted out and flagged are independent: clearing one leaves the other.
    assert await store.set_opted_out("+15550002", T0 + 2 * HOUR)
    assert await store.flag_subscriber("+15550002", None, None)
    cleared = await store.get_subscriber("+15550002")
    assert cleared is not None
    assert (cleared.flagged, cleared.flagged_at) == (None, None)
    assert cleared.opted_out_at == T0 + 2 * HOUR
    assert [s.phone for s in await store.active_subscribers()] == ["+15550001", "+15550003"]
    assert await store.set_opted_out("+15550002", None)
    assert await store.flag_subscriber("+15550003", "21211 invalid 'To' number", T0)
    assert await store.set_opted_out("+15550003", None)
    still = await store.get_subscriber("+15550003")
    assert still is not None
    assert still.flagged == "21211 invalid 'To' number"
    assert [s.phone for s in await store.active_subscribers()] == ["+15550001", "+15550002"]


async def test_upsert_never_clears_a_flag_and_a_new_record_keeps_a_given_one(
    store: Store,
) -> None:
    """An update (an import) replaces the fields but keeps the flag; a record created with a
    flag is stored flagged, like a given opt-out."""
    await store.upsert_subscribers([sub("+15550001", language="en-GB")], T0)
    assert await store.flag_subscriber("+15550001", "21614 not a mobile number", T0 + HOUR)
    assert await store.upsert_subscribers([sub("+15550001", language="cy")], T0) == (0, 1)
    got = await store.get_subscriber("+15550001")
    assert got is not None
    assert (got.language, got.flagged, got.flagged_at) == (
        "cy",
        "21614 not a mobile number",
        T0 + HOUR,
    )
    new = sub("+15550002", flagged="21211 invalid 'To' number", flagged_at=T0)
    assert await store.upsert_subscribers([new, sub("+15550003")], T0) == (2, 0)
    created = await store.get_subscriber("+15550002")
    assert created is not None
    assert (created.flagged, created.flagged_at) == ("21211 invalid 'To' number", T0)
    assert [s.phone for s in await store.active_subscribers()] == ["+15550003"]


async def test_every_kind_of_subscriber_write_moves_the_version(store: Store) -> None:
    """subscribers_version grows on insert, update (import, opt-out, flag) and delete, and
    stays put on reads: what tells other processes to reload their audience."""
    at = datetime(2026, 5, 1, tzinfo=UTC)
    seen = [await store.subscribers_version()]

    async def moved() -> bool:
        seen.append(await store.subscribers_version())
        return seen[-1] > seen[-2]

    await store.upsert_subscribers([sub("+447700900001"), sub("+447700900002")], at)
    assert await moved()
    await store.upsert_subscribers([sub("+447700900001", language="cy")], at)
    assert await moved()
    assert await store.set_opted_out("+447700900001", at)
    assert await moved()
    assert await store.flag_subscriber("+447700900002", "21614 not a mobile number", at)
    assert await moved()
    await store.active_subscribers()
    await store.list_subscribers(limit=10)
    assert not await moved()
    assert await store.delete_subscriber("+447700900002")
    assert await moved()


@pytest.mark.postgres
async def test_an_outside_session_writing_the_schema_bumps_its_own_counter() -> None:
    """PostgreSQL: a session on the default search_path (an admin's psql, another tool)
    writing `<schema>.subscribers` moves that schema's counter, and fails nothing: the
    trigger function keeps the schema it was created in."""
    async with postgres_schema() as (dsn, schema_name, admin):
        store = await PostgresStore.open(dsn, schema=schema_name, max_size=2)
        try:
            await store.migrate()
            before = await store.subscribers_version()
            await admin.execute(
                f"INSERT INTO {schema_name}.subscribers (phone, language, groups, created_at) "  # noqa: S608
                "VALUES ('+447700900123', 'en-GB', '[]', now())"
            )
            assert await store.subscribers_version() == before + 1
            assert [s.phone for s in await store.active_subscribers()] == ["+447700900123"]
        finally:
            await store.close()
