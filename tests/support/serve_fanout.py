"""A webhook fan-out through `broadcaster serve` subprocesses, for tests that break something
mid-run (kill -9, a database restart, a failing receiver) and then count what arrived.

Builds on tests/integration/test_engine_crash.py's `run_cli` / `start_serve` / `tail` and
tests/support/recorder.py: one alert to `count` webhook receivers (all on one Recorder, path
`/hook/<i>`), so every delivery is one request carrying its stable `X-Broadcaster-Delivery`.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from adapters.store import open_store
from tests.integration.test_engine_crash import ALERT, SECRET, run_cli, start_serve, tail
from tests.support.recorder import Recorder

__all__ = [
    "Tally",
    "create_token",
    "first_arrival_after",
    "post_alert",
    "recorder",
    "start_serve",
    "stop_serve",
    "tally",
    "wait_for_arrivals",
    "wait_until_sent",
    "write_config",
]


def write_config(
    path: Path,
    database_url: str,
    receiver_url: str,
    count: int,
    *,
    concurrency: int,
    rate: float | None,
    delivery: str = "",
) -> Path:
    """The service's TOML: `count` signed webhook receivers, a 5 s lease, fast polling;
    `delivery` adds lines to the [delivery] section."""
    rate_line = "" if rate is None else f"webhook_rate_per_second = {rate}\n"
    head = (
        f'[http]\nport = 0\n[database]\nurl = "{database_url}"\n'
        "[approval]\ntwo_person_severities = []\n"
        f"[delivery]\nconcurrency = {concurrency}\nlease_seconds = 5\npoll_seconds = 0.1\n"
        f"{delivery}[channels.web]\n{rate_line}"
    )
    hooks = "".join(
        f'[[channels.web.webhooks]]\nurl = "{receiver_url}/hook/{i}"\nsecret = "{SECRET}"\n'
        for i in range(count)
    )
    path.write_text(head + hooks)
    return path


def recorder(**failures: float) -> Recorder:
    """A Recorder checking the signatures `write_config` sets up."""
    return Recorder(secret=SECRET.encode(), **failures)  # type: ignore[arg-type]


async def create_token(config: Path) -> str:
    async with asyncio.timeout(60):
        code, out = await run_cli(
            "token", "create", "--role", "issuer", "--name", "t", "--config", str(config)
        )
    assert code == 0, out
    return out.strip().splitlines()[-1]


async def post_alert(url: str, token: str) -> str:
    """POST the webhook alert; its id once the 201 (deliveries planned) is back."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/v1/alerts",
            json=ALERT,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=60),
        ) as response,
    ):
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])


async def wait_for_arrivals(
    receiver: Recorder,
    count: int,
    *,
    within: float = 60,
    alive: asyncio.subprocess.Process | None = None,
    log: Path | None = None,
) -> None:
    """Until `count` requests were accepted (with `alive` still running)."""
    deadline = time.monotonic() + within
    while len(receiver.received) < count:
        assert time.monotonic() < deadline, f"only {len(receiver.received)} arrived"
        if alive is not None:
            assert alive.returncode is None, tail(log) if log else "serve exited"
        await asyncio.sleep(0.005)


async def wait_until_sent(
    database_url: str, alert_id: str, count: int, *, within: float = 120
) -> dict[str, dict[str, int]]:
    """Poll the outbox until the alert's `count` webhook deliveries are all `sent` (or time
    runs out); the last counts by channel and state."""
    store = await open_store(database_url)
    try:
        deadline = time.monotonic() + within
        while True:
            counts = await store.delivery_counts(alert_id)
            if counts == {"webhook": {"sent": count}} or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.1)
    finally:
        await store.close()


async def stop_serve(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(20):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


@dataclass(frozen=True, slots=True)
class Tally:
    """What a Recorder got: distinct deliveries, requests, deliveries received more than once
    and the extra requests they cost."""

    distinct: int
    requests: int
    twice: int
    extra: int
    paths: int

    def lost(self, count: int) -> int:
        return count - self.distinct


def tally(receiver: Recorder) -> Tally:
    by_id = Counter(r.delivery_id for r in receiver.received)
    repeated = [n for n in by_id.values() if n > 1]
    return Tally(
        distinct=len(by_id),
        requests=len(receiver.received),
        twice=len(repeated),
        extra=sum(n - 1 for n in repeated),
        paths=len({r.path for r in receiver.received}),
    )


def first_arrival_after(receiver: Recorder, moment: float) -> float | None:
    """When the first request accepted after `moment` (time.monotonic()) arrived."""
    return next((r.at for r in receiver.received if r.at > moment), None)
