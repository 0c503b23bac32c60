"""Chaos (b): PostgreSQL restarts (a private cluster, stopped for 2 s) in the middle of a
2,000-delivery webhook fan-out from `broadcaster serve`.

Figures: deliveries lost (0), duplicates (sends whose outcome could not be recorded while the
server was down: they are sent again once their lease runs out. Each is one of the outcomes
the log says could not be recorded; there are at most the claims a channel holds as the
server goes away: `concurrency` in flight, as many queued, and a claim that committed just
before the connections were cut), and the time to recover: from `pg_ctl start` to the next
delivery in.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from tests.support.pg_cluster import private_cluster
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
RATE = 400  # 5 s of sending: the restart after 600 lands inside it
STOP_AFTER = 600
DOWN_SECONDS = 2.0
RECOVER_WITHIN_S = 15.0
DUPLICATE_BOUND = 3 * CONCURRENCY
NOT_RECORDED = re.compile(r"recording (\d+) delivery outcomes failed")


async def test_postgres_restart_mid_fan_out(tmp_path: Path) -> None:
    with private_cluster() as cluster:
        async with recorder() as receiver:
            config = write_config(
                tmp_path / "b.toml",
                cluster.dsn,
                receiver.url,
                DELIVERIES,
                concurrency=CONCURRENCY,
                rate=RATE,
            )
            token = await create_token(config)
            log = tmp_path / "serve.log"
            serve, url = await start_serve(config, log)
            try:
                alert_id = await post_alert(url, token)
                await wait_for_arrivals(receiver, STOP_AFTER, alive=serve, log=log)
                await asyncio.to_thread(cluster.stop)
                stopped_at = time.monotonic()
                at_stop = len(receiver.received)
                await asyncio.sleep(DOWN_SECONDS)
                during = len(receiver.received) - at_stop
                starting_at = time.monotonic()
                await asyncio.to_thread(cluster.start)
                back_at = time.monotonic()
                counts = await wait_until_sent(cluster.dsn, alert_id, DELIVERIES, within=90)
                finished = time.monotonic()
                assert serve.returncode is None, log.read_text()[-4000:]
            finally:
                await stop_serve(serve)

        got = tally(receiver)
        not_recorded = sum(int(n) for n in NOT_RECORDED.findall(log.read_text()))
        # From `pg_ctl start`: its -w notices the server ready only at its next poll, so
        # counting from its return would hide the reconnection.
        first_after = first_arrival_after(receiver, starting_at)
        recover_s = (first_after - starting_at) if first_after else float("inf")
        print(
            f"\nchaos (b) PostgreSQL down {starting_at - stopped_at:.1f} s after {at_stop} of "
            f"{DELIVERIES} deliveries: lost {got.lost(DELIVERIES)}, duplicates {got.twice} "
            f"({not_recorded} outcomes not recorded, bound {DUPLICATE_BOUND}; {during} sent "
            f"while it was down), next delivery {recover_s:.2f} s after `pg_ctl start` "
            f"(which returned after {back_at - starting_at:.2f} s), drained "
            f"{finished - back_at:.1f} s after; "
            f"states {counts}"
        )
        assert receiver.counts["bad_signature"] == 0
        assert got.lost(DELIVERIES) == 0
        assert got.paths == DELIVERIES
        assert got.twice <= not_recorded <= DUPLICATE_BOUND
        assert counts == {"webhook": {"sent": DELIVERIES}}
        assert recover_s < RECOVER_WITHIN_S
