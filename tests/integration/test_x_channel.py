"""The X channel through the real engine and the real tweepy AsyncClient, against the loopback
X simulator: single posts, threads, exercise markers, corrections as replies, the post window,
and error mapping."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.simulators.x import XSimulator
from adapters.x import XChannel
from alerts.models import Status
from alerts.render import STATUS_MARKERS
from alerts.tweet import MAX_WEIGHTED_LENGTH, weighted_length
from broadcaster.config import XSettings
from broadcaster.ports import ClaimedDelivery, DeliveryRecord, Outbound, StoredAlert
from broadcaster.service import Service
from tests.integration.engine import counts, engine, submit, until, until_outbox_empty

PUBLIC_URL = "https://alerts.example.org"
# About 1,000 characters of instructions: far more than one post holds.
LONG = " ".join(
    f"Step {n}: residents of the river valley should move valuables upstairs, turn off gas "
    "and power at the mains, and leave by the marked routes."
    for n in range(1, 8)
)


def settings_for(simulator: XSimulator, *, exercises: bool = False) -> XSettings:
    return XSettings(
        exercises=exercises,
        consumer_key="ck",
        consumer_secret="cs",
        access_token="at",
        access_token_secret="ats",
        bearer_token="app-bearer",
        api_base=simulator.url,
    )


def thread_finder(
    holder: list[Service],
) -> Callable[[StoredAlert], Awaitable[str | None]]:
    """A `thread_of` that finds the last post of the alert a correction stopped (the
    original's X delivery provider_ref), through the store of the service in `holder`."""

    async def thread_of(stored: StoredAlert) -> str | None:
        store = holder[0].store
        for original in await store.superseded_by(stored.id):
            for row in await store.list_deliveries(original, limit=10):
                if row.channel == "x" and row.provider_ref:
                    return row.provider_ref
        return None

    return thread_of


async def x_rows(service: Service, alert_id: str) -> list[DeliveryRecord]:
    return [r for r in await service.store.list_deliveries(alert_id, limit=10) if r.channel == "x"]


@pytest.fixture
async def x_sim() -> AsyncIterator[XSimulator]:
    async with XSimulator(post_limit=100, window_seconds=30) as simulator:
        yield simulator


async def test_short_alert_is_one_post_and_long_alert_a_reply_thread(
    tmp_path: Path, x_sim: XSimulator
) -> None:
    """A short alert is one post; a 1,000-character one a numbered thread of replies, each ≤ 280."""
    channel = XChannel(settings_for(x_sim), public_url=PUBLIC_URL)
    async with engine(tmp_path, channel) as service:
        short = await submit(service)
        service.start_dispatcher()
        await until_outbox_empty(service)
        assert len(x_sim.posts) == 1
        assert x_sim.posts[0]["in_reply_to"] is None
        assert "Avoid Market St" in x_sim.posts[0]["text"]
        assert x_sim.posts[0]["text"].endswith(f"{PUBLIC_URL}/alerts/{short.id}")
        assert [r.provider_ref for r in await x_rows(service, short.id)] == [x_sim.posts[0]["id"]]

        long = await submit(service, headline="Flood warning", description=LONG)
        await until_outbox_empty(service)
        thread = x_sim.posts[1:]
        assert len(thread) >= 4
        assert [p["in_reply_to"] for p in thread] == [None] + [p["id"] for p in thread[:-1]]
        assert all(weighted_length(p["text"]) <= MAX_WEIGHTED_LENGTH for p in thread)
        assert all(p["text"].endswith(f"({i}/{len(thread)})") for i, p in enumerate(thread, 1))
        rows = await x_rows(service, long.id)
        assert [(r.state.value, r.provider_ref) for r in rows] == [("sent", thread[-1]["id"])]
        assert x_sim.counts["rate_limited"] == 0


async def test_exercise_marker_starts_every_post(tmp_path: Path, x_sim: XSimulator) -> None:
    """Every post of an Exercise alert's thread starts with the exercise marker (on an
    account configured for exercises)."""
    channel = XChannel(settings_for(x_sim, exercises=True), public_url=None)
    async with engine(tmp_path, channel) as service:
        await submit(service, status="Exercise", description=LONG)
        service.start_dispatcher()
        await until_outbox_empty(service)
    assert len(x_sim.posts) > 1
    marker = STATUS_MARKERS[Status.EXERCISE]
    assert all(p["text"].startswith(marker) for p in x_sim.posts)


async def test_cancel_replies_to_the_last_post_of_the_original(
    tmp_path: Path, x_sim: XSimulator
) -> None:
    """A Cancel is posted as a reply to the last post of the original's thread."""
    holder: list[Service] = []
    channel = XChannel(settings_for(x_sim), public_url=PUBLIC_URL, thread_of=thread_finder(holder))
    async with engine(tmp_path, channel) as service:
        holder.append(service)
        original = await submit(service, headline="Flood warning", description=LONG)
        service.start_dispatcher()
        await until_outbox_empty(service)
        last_of_original = x_sim.posts[-1]["id"]
        cancel = await submit(
            service, msg_type="Cancel", references=[original.id], headline="All clear"
        )
        await until_outbox_empty(service)
        assert await service.store.superseded_by(cancel.id) == [original.id]
        replies = [p for p in x_sim.posts if "All clear" in p["text"]]
        assert replies
        assert replies[0]["in_reply_to"] == last_of_original
        assert replies[0]["text"].startswith("CANCELLED")
        assert await counts(service, cancel.id, "x") == {"sent": 1}


async def test_post_window_is_respected_without_429(tmp_path: Path) -> None:
    """25 posts through a window of 10 per 2 s: all posted, no 429, at least ~4 s."""
    async with XSimulator(post_limit=10, window_seconds=2) as simulator:
        channel = XChannel(
            settings_for(simulator), public_url=None, window_limit=10, window_seconds=2
        )
        async with engine(tmp_path, channel) as service:
            for n in range(25):
                await submit(service, headline=f"Road {n} closed")
            started = time.monotonic()
            service.start_dispatcher()
            await until(lambda: len(simulator.posts) == 25, 30, "25 posts")
            makespan = time.monotonic() - started
            await until_outbox_empty(service)
        assert simulator.counts["rate_limited"] == 0
        assert makespan >= 3.9
        # X counts fixed windows from a window's first post: post n + 1 comes at least
        # n // 10 windows after the first.
        times = sorted(p["at"] for p in simulator.posts)
        assert all(t - times[0] >= (i // 10) * 2.0 for i, t in enumerate(times))
        assert len({p["text"] for p in simulator.posts}) == 25


async def test_duplicate_is_permanent_403_and_503_is_retried(
    tmp_path: Path, x_sim: XSimulator
) -> None:
    """Duplicate content fails that delivery with "403"; a 503 is retried and then posted."""
    channel = XChannel(settings_for(x_sim), public_url=None)
    async with engine(tmp_path, channel, backoff_base_seconds=0.1) as service:
        first = await submit(service, headline="Boil water notice lifted")
        service.start_dispatcher()
        await until_outbox_empty(service)
        again = await submit(service, headline="Boil water notice lifted")
        await until_outbox_empty(service)
        [refused] = await x_rows(service, again.id)
        assert refused.state.value == "failed"
        assert refused.attempts == 1
        assert "403" in (refused.last_error or "")
        assert "duplicate" in (refused.last_error or "")
        assert await counts(service, first.id, "x") == {"sent": 1}

        x_sim.fail_next(1, 503)
        retried = await submit(service, headline="Shelter open at the school")
        await until_outbox_empty(service)
        [row] = await x_rows(service, retried.id)
        assert (row.state.value, row.attempts) == ("sent", 2)
        assert row.provider_ref == x_sim.posts[-1]["id"]
    assert x_sim.counts["failed_5xx"] == 1
    assert x_sim.counts["duplicate"] == 1
    assert len(x_sim.posts) == 2


async def test_thread_cut_by_429_resumes_without_reposting(tmp_path: Path) -> None:
    """A 429 in the middle of a thread: the retry posts only the rest, still as replies."""
    async with XSimulator(post_limit=2, window_seconds=2) as simulator:
        channel = XChannel(settings_for(simulator), public_url=None)
        async with engine(tmp_path, channel) as service:
            alert = await submit(service, headline="Flood warning", description=LONG)
            service.start_dispatcher()
            await until_outbox_empty(service)
            [row] = await x_rows(service, alert.id)
        thread = simulator.posts
        assert simulator.counts["rate_limited"] >= 1
        assert len(thread) >= 4
        assert len({p["text"] for p in thread}) == len(thread)
        assert [p["in_reply_to"] for p in thread] == [None] + [p["id"] for p in thread[:-1]]
        assert (row.state.value, row.provider_ref) == ("sent", thread[-1]["id"])
        assert row.attempts >= 2


async def test_receipt_carries_the_rate_headers(tmp_path: Path, x_sim: XSimulator) -> None:
    """A send's receipt has the last post's id and x-rate-limit-remaining / -reset."""
    channel = XChannel(settings_for(x_sim), public_url=None)
    async with engine(tmp_path, channel) as service:
        stored = await submit(service, headline="Flood warning", description=LONG)
        now = datetime.now(UTC)
        delivery = ClaimedDelivery(7, stored.id, "x", "timeline", 0, 1, now, None)
        before = time.time()
        try:
            receipt = await channel.send(
                Outbound(delivery=delivery, alert=stored, sender="default")
            )
        finally:
            await channel.close()  # the dispatcher, which closes channels, never started
    posted = len(x_sim.posts)
    assert posted == channel.cost(stored, "timeline") > 1
    assert receipt.provider_ref == x_sim.posts[-1]["id"]
    assert receipt.rate_remaining == 100 - posted
    assert receipt.rate_reset_at is not None
    assert before < receipt.rate_reset_at <= before + 31
