"""Chaos (c): a provider failing 30 % of requests (503) with latency spikes of up to 1 s, and
losing 1 % of its answers, during a 2,000-delivery webhook fan-out.

Figures: all delivered (lost 0), duplicates only where an answer was lost (counted), and the
time to drain against the same fan-out to an error-free receiver.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.recorder import Recorder
from tests.support.serve_fanout import (
    create_token,
    post_alert,
    recorder,
    start_serve,
    stop_serve,
    tally,
    wait_until_sent,
    write_config,
)

pytestmark = pytest.mark.chaos

DELIVERIES = 2_000
CONCURRENCY = 32
FAIL_RATIO = 0.3
SPIKE_RATIO = 0.1
SPIKE_SECONDS = 1.0
LOSE_ANSWER_RATIO = 0.01
# Enough attempts that 30 % failures never exhaust one (0.3**30), and a short backoff.
RETRIES = "max_attempts = 30\nbackoff_base_seconds = 0.2\nbackoff_cap_seconds = 2\n"
DRAIN_WITHIN_S = 90.0


async def fan_out(tmp_path: Path, receiver: Recorder) -> tuple[float, dict[str, dict[str, int]]]:
    """One alert to DELIVERIES receivers through a fresh `serve`: seconds from the 201 to
    the last delivery recorded sent, and the outbox counts."""
    await asyncio.to_thread(tmp_path.mkdir)
    database_url = f"sqlite:///{tmp_path}/b.db"
    config = write_config(
        tmp_path / "b.toml",
        database_url,
        receiver.url,
        DELIVERIES,
        concurrency=CONCURRENCY,
        rate=None,
        delivery=RETRIES,
    )
    token = await create_token(config)
    serve, url = await start_serve(config, tmp_path / "serve.log")
    try:
        alert_id = await post_alert(url, token)
        posted = time.monotonic()
        counts = await wait_until_sent(database_url, alert_id, DELIVERIES, within=DRAIN_WITHIN_S)
        return time.monotonic() - posted, counts
    finally:
        await stop_serve(serve)


async def test_provider_errors_and_latency_spikes(tmp_path: Path) -> None:
    async with recorder() as clean:
        baseline_s, baseline_counts = await fan_out(tmp_path / "baseline", clean)
    assert baseline_counts == {"webhook": {"sent": DELIVERIES}}

    async with recorder(
        fail_ratio=FAIL_RATIO,
        spike_ratio=SPIKE_RATIO,
        spike_seconds=SPIKE_SECONDS,
        lose_answer_ratio=LOSE_ANSWER_RATIO,
    ) as flaky:
        chaos_s, counts = await fan_out(tmp_path / "chaos", flaky)
    got = tally(flaky)
    print(
        f"\nchaos (c) provider at {FAIL_RATIO:.0%} errors, {SPIKE_RATIO:.0%} latency spikes "
        f"up to {SPIKE_SECONDS:g} s, {LOSE_ANSWER_RATIO:.0%} answers lost, {DELIVERIES} "
        f"deliveries: lost {got.lost(DELIVERIES)}, {flaky.counts['failed_5xx']} 503s retried, "
        f"duplicates {got.twice} ({flaky.counts['answer_lost']} answers lost), "
        f"drained in {chaos_s:.1f} s vs {baseline_s:.1f} s error-free "
        f"({chaos_s / baseline_s:.1f}x); states {counts}"
    )
    assert flaky.counts["bad_signature"] == 0
    assert got.lost(DELIVERIES) == 0
    assert got.paths == DELIVERIES
    assert counts == {"webhook": {"sent": DELIVERIES}}
    # A repeat only where the receiver took the request and the answer never came back.
    assert got.extra <= flaky.counts["answer_lost"]
    assert tally(clean).extra == 0
