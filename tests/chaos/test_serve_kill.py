"""Chaos (d): `kill -9` of `broadcaster serve` mid webhook fan-out on SQLite, then a new
`serve` on the same database.

Figures: deliveries lost (0), duplicates (at most the sends in flight: `concurrency`), and
the time to recover: from the new process started to its first delivery, and from the kill
to the last delivery in.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.serve_fanout import (
    create_token,
    first_arrival_after,
    post_alert,
    recorder,
    start_serve,
    stop_serve,
    tally,
    wait_for_arrivals,
    wait_until_sent,
    write_config,
)

pytestmark = pytest.mark.chaos

DELIVERIES = 2_000
CONCURRENCY = 16
RATE = 500  # 4 s of sending: a kill after 800 lands well inside it
KILL_AFTER = 800
RECOVER_WITHIN_S = 10.0


async def test_kill_9_mid_fan_out_then_restart(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/b.db"
    async with recorder() as receiver:
        config = write_config(
            tmp_path / "b.toml",
            database_url,
            receiver.url,
            DELIVERIES,
            concurrency=CONCURRENCY,
            rate=RATE,
        )
        token = await create_token(config)
        log = tmp_path / "serve.log"
        serve, url = await start_serve(config, log)
        second: asyncio.subprocess.Process | None = None
        try:
            alert_id = await post_alert(url, token)
            await wait_for_arrivals(receiver, KILL_AFTER, alive=serve, log=log)
            os.kill(serve.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await serve.wait()
            at_kill = len(receiver.received)
            await asyncio.sleep(0.2)  # the killed process's last requests land or die

            restarted_at = time.monotonic()
            second, _ = await start_serve(config, tmp_path / "serve2.log")
            counts = await wait_until_sent(database_url, alert_id, DELIVERIES, within=60)
            finished = time.monotonic()
        finally:
            await stop_serve(serve)
            if second is not None:
                await stop_serve(second)

        got = tally(receiver)
        first_after = first_arrival_after(receiver, restarted_at)
        recover_s = (first_after - restarted_at) if first_after else float("inf")
        last_s = max(r.at for r in receiver.received) - killed_at
        print(
            f"\nchaos (d) kill -9 of serve (SQLite) after {at_kill} of {DELIVERIES} deliveries: "
            f"lost {got.lost(DELIVERIES)}, duplicates {got.twice} (bound {CONCURRENCY}), "
            f"new process's first delivery {recover_s:.2f} s after its start, last delivery "
            f"{last_s:.1f} s after the kill (lease 5 s), drained {finished - killed_at:.1f} s "
            f"after the kill; states {counts}"
        )
        assert receiver.counts["bad_signature"] == 0
        assert got.lost(DELIVERIES) == 0
        assert got.paths == DELIVERIES
        assert got.twice <= CONCURRENCY
        assert got.extra == got.twice  # a repeat only once
        assert counts == {"webhook": {"sent": DELIVERIES}}
        assert recover_s < RECOVER_WITHIN_S
