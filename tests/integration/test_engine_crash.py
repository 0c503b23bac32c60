"""kill -9 during a 20,000-delivery webhook fan-out, then `broadcaster drain`: every delivery
reaches its receiver, and only those in flight at the kill (at most `concurrency`) twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

from adapters.store.sqlite import SqliteStore
from tests.support.recorder import Recorder

CLI = [sys.executable, "-m", "adapters.main"]
DELIVERIES = 20_000
CONCURRENCY = 16
# 20,000 at 2,500/s is 8 s of sending: a kill after 5,000 lands well inside the fan-out.
RATE = 2_500
KILL_AFTER = 5_000
SECRET = "crash-test-secret"

ALERT = {
    "event": "Gas leak",
    "headline": "Avoid Market St: gas leak",
    "instruction": "Keep away from Market St until further notice.",
    "severity": "Severe",
    "urgency": "Immediate",
    "certainty": "Observed",
    "category": ["Safety"],
    "channels": ["webhook"],
}


def write_config(tmp_path: Path, receiver_url: str) -> Path:
    """The service's TOML: SQLite in tmp_path, a short lease, 20,000 webhook receivers."""
    head = (
        f'[http]\nport = 0\n[database]\nurl = "sqlite:///{tmp_path}/b.db"\n'
        "[approval]\ntwo_person_severities = []\n"
        f"[delivery]\nconcurrency = {CONCURRENCY}\nlease_seconds = 5\npoll_seconds = 0.1\n"
        "[channels.web]\n"
        f"webhook_rate_per_second = {RATE}\n"
    )
    hooks = "".join(
        f'[[channels.web.webhooks]]\nurl = "{receiver_url}/hook/{i}"\nsecret = "{SECRET}"\n'
        for i in range(DELIVERIES)
    )
    config = tmp_path / "broadcaster.toml"
    config.write_text(head + hooks)
    return config


def tail(path: Path, size: int = 4000) -> str:
    """The end of a log file, for failure messages."""
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


async def run_cli(*args: str) -> tuple[int, str]:
    """Run the CLI to completion (killed if the caller gives up); its exit code and stdout."""
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    if process.returncode != 0:
        print(err.decode(errors="replace")[-4000:])
    return process.returncode, out.decode()


def read_url(out_path: Path) -> str | None:
    """The URL `serve` printed once it listens, if it has yet."""
    for line in out_path.read_text().splitlines():
        if line.startswith("broadcaster listening on "):
            return line.rsplit(" ", 1)[-1]
    return None


async def start_serve(config: Path, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`broadcaster serve` in a subprocess (stdout, stderr to files); it and its URL."""
    out_path = log.with_suffix(".out")
    with out_path.open("wb") as out, log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            *CLI, "serve", "--config", str(config), stdout=out, stderr=err
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.returncode is None:
        url = read_url(out_path)
        if url is not None:
            return process, url
        await asyncio.sleep(0.05)
    if process.returncode is None:
        process.kill()
        await process.wait()
    raise AssertionError(f"serve did not start: {tail(log)}")


async def test_kill_9_mid_fan_out_then_drain_sends_each_once(tmp_path: Path) -> None:
    """After kill -9 mid fan-out and a drain, all 20,000 arrive; ≤ concurrency arrive twice."""
    async with Recorder(secret=SECRET.encode()) as recorder:
        config = write_config(tmp_path, recorder.url)
        token_args = ["token", "create", "--role", "issuer", "--name", "t"]
        async with asyncio.timeout(60):
            code, out = await run_cli(*token_args, "--config", str(config))
        assert code == 0
        token = out.strip().splitlines()[-1]

        serve, url = await start_serve(config, tmp_path / "serve.log")
        try:
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
                alert_id = (await response.json())["id"]
            deadline = time.monotonic() + 60
            while len(recorder.received) < KILL_AFTER:
                assert time.monotonic() < deadline, f"only {len(recorder.received)} arrived"
                assert serve.returncode is None, tail(tmp_path / "serve.log")
                await asyncio.sleep(0.005)
            os.kill(serve.pid, signal.SIGKILL)
            await serve.wait()
        finally:
            if serve.returncode is None:
                serve.kill()
                await serve.wait()
        at_kill = len(recorder.received)

        started = time.monotonic()
        async with asyncio.timeout(60):
            code, out = await run_cli("drain", "--config", str(config))
        drain_seconds = time.monotonic() - started
        assert code == 0, out

        assert recorder.counts["bad_signature"] == 0
        by_id = Counter(r.delivery_id for r in recorder.received)
        by_path = Counter(r.path for r in recorder.received)
        twice = {ident: n for ident, n in by_id.items() if n > 1}
        duplicates = len(twice)
        report = (
            f"duplicates after kill -9: {duplicates} (bound {CONCURRENCY}); "
            f"{at_kill} received at the kill, {len(recorder.received)} requests in all, "
            f"drain took {drain_seconds:.1f} s ({out.strip()})"
        )
        print(report)
        assert len(by_id) == DELIVERIES, report
        assert set(by_path) == {f"/hook/{i}" for i in range(DELIVERIES)}, report
        assert len(recorder.received) == DELIVERIES + sum(n - 1 for n in twice.values()), report
        assert duplicates <= CONCURRENCY, report

    store = await SqliteStore.open(tmp_path / "b.db")
    try:
        counts = await store.delivery_counts(alert_id)
    finally:
        await store.close()
    assert counts == {"webhook": {"sent": DELIVERIES}}, report
