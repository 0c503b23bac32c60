"""The delivery engine end to end on SQLite: rate limits, priority, retries, permanent errors,
circuit breaker, cancel mid fan-out, expiry, shutdown and lease recovery."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.models import Alert
from broadcaster.ports import ChannelLimits, DeliveryState
from broadcaster.service import Service
from tests.integration.engine import (
    counts,
    engine,
    sent_count,
    submit,
    until,
    until_outbox_empty,
)
from tests.support.recording_channel import RecordingChannel, max_in_window
from tests.support.replies import eventually


def audience(size: int) -> Callable[[Alert], list[str]]:
    return lambda alert: [f"{alert.identifier[:8]}-{i}" for i in range(size)]


async def test_rate_and_priority_over_ten_thousand(tmp_path: Path) -> None:
    """10,000 deliveries at 200/s: no rolling second over 200, all sent, most urgent first."""
    channel = RecordingChannel(
        channel_limits=ChannelLimits(rate_per_second=200, concurrency=16),
        recipients=audience(2500),
    )
    async with engine(tmp_path, channel) as service:
        # Least urgent first, so arrival order is the opposite of the wanted send order.
        urgency = [("Minor", "Future"), ("Moderate", "Expected"), ("Severe", "Expected")]
        alerts = [await submit(service, severity=s, urgency=u) for s, u in urgency]
        alerts.append(await submit(service, severity="Extreme", urgency="Immediate"))
        started = time.monotonic()
        service.start_dispatcher()
        await until(lambda: len(channel.sends) == 10_000, 90, "10,000 sends")
        took = time.monotonic() - started
        busiest = max_in_window([s.at for s in channel.sends])
        print(f"10,000 sends in {took:.1f} s; busiest rolling second: {busiest}")
        assert busiest <= 200
        assert took >= 49.0  # paced, not bunched
        order = [alerts.index(next(a for a in alerts if a.id == s.alert_id)) for s in channel.sends]
        assert order == sorted(order, reverse=True)  # Extreme, Severe, Moderate, Minor
        for alert in alerts:
            ids = [s.delivery_id for s in channel.sends if s.alert_id == alert.id]
            assert ids == sorted(ids)  # FIFO within one alert
            # A send is seen by the channel before its outcome commits: wait for the last one.
            await eventually(
                lambda a=alert: _all_sent(service, a.id), 10, f"{alert.id} all recorded sent"
            )


async def test_transient_errors_are_retried_until_all_are_sent(tmp_path: Path) -> None:
    """30 % 5xx plus some 429: all sent; duplicates only where an answer was lost."""
    channel = RecordingChannel(
        channel_limits=ChannelLimits(concurrency=16),
        recipients=audience(2000),
        fail_ratio=0.30,
        rate_limit_ratio=0.05,
        retry_after=0.05,
        lose_answer_ratio=0.01,
    )
    async with engine(
        tmp_path,
        channel,
        max_attempts=60,
        backoff_base_seconds=0.01,
        backoff_cap_seconds=0.2,
        breaker_failures=1000,
    ) as service:
        alert = await submit(service)
        service.start_dispatcher()
        await until(
            lambda: len({s.recipient for s in channel.sends}) == 2000, 60, "every recipient"
        )
        await until_outbox_empty(service)
        per_recipient = Counter(s.recipient for s in channel.sends)
        duplicates = sum(n - 1 for n in per_recipient.values())
        print(f"injected {channel.injected}; duplicates: {duplicates}")
        assert channel.injected["5xx"] > 400
        assert channel.injected["429"] > 50
        # Every duplicate is a message the provider accepted whose answer was lost.
        assert duplicates == channel.injected["answer_lost"]
        assert await counts(service, alert.id, "recording") == {"sent": 2000}


async def test_permanent_error_fails_only_that_delivery(tmp_path: Path) -> None:
    """A permanent refusal fails its delivery at once, with the reason; the rest go out."""
    channel = RecordingChannel(
        recipients=lambda alert: [f"r{i}" for i in range(20)],
        permanent_recipients=frozenset({"r3"}),
    )
    async with engine(tmp_path, channel) as service:
        alert = await submit(service)
        service.start_dispatcher()
        await until(lambda: len(channel.sends) == 19, 10, "19 sends")
        await until(lambda: channel.attempts == 20, 10, "20 attempts")
        await asyncio.sleep(0.1)
        rows = await service.store.list_deliveries(alert.id, limit=100)
        failed = [r for r in rows if r.state is DeliveryState.FAILED]
        assert [r.recipient for r in failed] == ["r3"]
        assert failed[0].attempts == 1
        assert "permanent" in (failed[0].last_error or "")
        assert sum(r.state is DeliveryState.SENT for r in rows) == 19


async def test_retries_give_up_with_a_visible_failure(tmp_path: Path) -> None:
    """A provider that always fails: after max_attempts the delivery fails, saying why."""
    channel = RecordingChannel(recipients=lambda alert: ["r0", "r1"], fail_ratio=1.0)
    async with engine(
        tmp_path, channel, max_attempts=3, backoff_base_seconds=0.01, backoff_cap_seconds=0.05
    ) as service:
        alert = await submit(service)
        service.start_dispatcher()
        await until(lambda: channel.attempts == 6, 10, "6 attempts")
        await asyncio.sleep(0.2)
        rows = await service.store.list_deliveries(alert.id, limit=10)
        assert [(r.state, r.attempts) for r in rows] == [(DeliveryState.FAILED, 3)] * 2
        assert all("gave up after 3 attempt(s)" in (r.last_error or "") for r in rows)
        assert channel.attempts == 6


async def test_circuit_breaker_pauses_only_the_failing_channel(tmp_path: Path) -> None:
    """After N consecutive failures a channel pauses for its cool-down; others keep flowing."""
    bad = RecordingChannel(
        channel_name="bad",
        channel_limits=ChannelLimits(concurrency=1),
        recipients=lambda alert: [f"b{i}" for i in range(50)],
        fail_ratio=1.0,
    )
    good = RecordingChannel(
        channel_name="good",
        channel_limits=ChannelLimits(rate_per_second=500, concurrency=4),
        recipients=lambda alert: [f"g{i}" for i in range(100)],
    )
    async with engine(
        tmp_path,
        bad,
        good,
        breaker_failures=3,
        breaker_cooldown_seconds=2.0,
        backoff_base_seconds=0.01,
        backoff_cap_seconds=0.02,
        max_attempts=100,
    ) as service:
        await submit(service)
        service.start_dispatcher()
        await until(lambda: bad.attempts >= 3, 5, "3 failures")
        await asyncio.sleep(0.1)
        gauge = service.metrics.circuit_open.labels("bad")._value.get()
        assert gauge == 2  # open
        opened_at = bad.attempts
        await until(lambda: len(good.sends) == 100, 5, "the good channel")
        assert bad.attempts == opened_at  # nothing tried during the cool-down
        await until(lambda: bad.attempts == opened_at + 1, 3, "one trial after the cool-down")
        await asyncio.sleep(0.3)
        assert bad.attempts == opened_at + 1  # the trial failed: open again


async def test_cancel_mid_fanout_stops_at_once(tmp_path: Path) -> None:
    """A Cancel mid fan-out: no send of the original after it commits; the correction goes
    to exactly those the original reached."""
    channel = RecordingChannel(
        channel_limits=ChannelLimits(rate_per_second=1000, concurrency=16),
        recipients=lambda alert: [f"p{i}" for i in range(20_000)],
    )
    async with engine(tmp_path, channel) as service:
        original = await submit(service)
        service.start_dispatcher()
        await until(lambda: len(channel.sends) >= 1000, 10, "1,000 sends")
        started = time.monotonic()
        cancel = await submit(
            service,
            msg_type="Cancel",
            references=[original.id],
            headline="Cancelled: Market St is safe",
        )
        committed = time.monotonic()
        print(f"cancel committed {1000 * (committed - started):.0f} ms after it was submitted")
        assert committed - started < 1.0
        late = [s for s in channel.sends if s.alert_id == original.id and s.at > committed]
        assert late == []
        reached = {s.recipient for s in channel.sends if s.alert_id == original.id}
        await until(
            lambda: sum(s.alert_id == cancel.id for s in channel.sends) == len(reached),
            10,
            "the correction",
        )
        await asyncio.sleep(0.2)
        corrected = {s.recipient for s in channel.sends if s.alert_id == cancel.id}
        assert corrected == reached
        original_counts = await counts(service, original.id, "recording")
        assert sent_count(original_counts) == len(reached)
        assert original_counts["cancelled"] == 20_000 - len(reached)
        stored = await service.store.get_alert(original.id)
        assert stored is not None
        assert stored.state.value == "cancelled"


async def test_nothing_is_sent_after_expiry(tmp_path: Path) -> None:
    """Deliveries not sent by the alert's expiry become expired and are never sent."""
    channel = RecordingChannel(
        channel_limits=ChannelLimits(rate_per_second=5, concurrency=2),
        recipients=lambda alert: [f"r{i}" for i in range(20)],
    )
    async with engine(tmp_path, channel) as service:
        expires = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        alert = await submit(service, expires=expires.isoformat())
        service.start_dispatcher()
        await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 0.5)
        expiry = time.monotonic() - 0.5
        assert all(s.at < expiry for s in channel.sends)
        state_counts = await counts(service, alert.id, "recording")
        assert sent_count(state_counts) == len(channel.sends) < 20
        assert state_counts.get("expired", 0) + state_counts.get("pending", 0) == 20 - len(
            channel.sends
        )
        await service.store.expire_deliveries(datetime.now(UTC))
        state_counts = await counts(service, alert.id, "recording")
        assert state_counts["expired"] == 20 - len(channel.sends)


async def test_stop_gives_back_what_was_not_sent(tmp_path: Path) -> None:
    """Stopping mid fan-out leaves nothing leased: unsent deliveries are pending again."""
    channel = RecordingChannel(
        channel_limits=ChannelLimits(rate_per_second=20, concurrency=8),
        recipients=lambda alert: [f"r{i}" for i in range(200)],
    )
    async with engine(tmp_path, channel) as service:
        alert = await submit(service)
        service.start_dispatcher()
        await asyncio.sleep(1.0)
        await service.dispatcher.stop()
        state_counts = await counts(service, alert.id, "recording")
        assert "sending" not in state_counts
        assert sent_count(state_counts) == len(channel.sends)
        assert state_counts["pending"] == 200 - len(channel.sends)
        rows = await service.store.list_deliveries(alert.id, limit=200)
        assert all(r.attempts == 0 for r in rows if r.state is DeliveryState.PENDING)
        assert channel.closed


async def test_work_of_a_dead_process_is_claimed_again(tmp_path: Path) -> None:
    """Deliveries leased by a process that died are sent once their lease runs out."""
    channel = RecordingChannel(recipients=lambda alert: [f"r{i}" for i in range(10)])
    async with engine(tmp_path, channel, lease_seconds=5) as service:
        alert = await submit(service)
        now = datetime.now(UTC)
        # A "dead process" claims four and never finishes them; its lease ends in 2 s.
        dead = await service.store.claim_deliveries(
            "recording", limit=4, now=now, lease_until=now + timedelta(seconds=2)
        )
        assert len(dead) == 4
        service.start_dispatcher()
        await until(lambda: len(channel.sends) == 6, 5, "the six unleased")
        await until(lambda: len(channel.sends) == 10, 10, "the reclaimed four")
        assert sorted(s.recipient for s in channel.sends) == sorted(f"r{i}" for i in range(10))
        await asyncio.sleep(0.1)
        assert await counts(service, alert.id, "recording") == {"sent": 10}


async def test_a_slow_channel_does_not_hold_up_another(tmp_path: Path) -> None:
    """A channel whose provider takes 2 s per send leaves a fast channel unaffected."""
    slow = RecordingChannel(
        channel_name="slow",
        channel_limits=ChannelLimits(concurrency=2),
        recipients=lambda alert: [f"s{i}" for i in range(20)],
        latency=2.0,
    )
    fast = RecordingChannel(
        channel_name="fast", recipients=lambda alert: [f"f{i}" for i in range(500)]
    )
    async with engine(tmp_path, slow, fast) as service:
        await submit(service)
        started = time.monotonic()
        service.start_dispatcher()
        await until(lambda: len(fast.sends) == 500, 5, "the fast channel")
        assert time.monotonic() - started < 1.5
        assert len(slow.sends) == 2  # bounded by its own concurrency


async def test_a_send_without_answer_times_out_as_transient(tmp_path: Path) -> None:
    """A provider that never answers: the send is cut at send_timeout and fails visibly."""
    channel = RecordingChannel(recipients=lambda alert: ["r0"], latency=30.0)
    async with engine(tmp_path, channel, send_timeout_seconds=0.4, max_attempts=1) as service:
        alert = await submit(service)
        service.start_dispatcher()
        await until(lambda: channel.attempts == 1, 5, "the attempt")
        started = time.monotonic()
        await until_outbox_empty(service, 5)
        assert time.monotonic() - started < 1.5
        (row,) = await service.store.list_deliveries(alert.id, limit=5)
        assert row.state is DeliveryState.FAILED
        assert "no answer within 0.4 s" in (row.last_error or "")


async def _all_sent(service: Service, alert_id: str) -> bool:
    return bool(await counts(service, alert_id, "recording") == {"sent": 2500})
