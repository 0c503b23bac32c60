"""Scale-out benchmark: SMS fan-out with 1, 2 and 3 `broadcaster serve` processes on one
PostgreSQL database, and the rate-limit fidelity of a throttled run.

1. Throughput: for each process count, a fresh schema with N subscribers (all in the alert's
   area), one Twilio simulator with no rate limit (mps=None, its own process on uvloop), and
   that many `serve` processes on the schema. One SMS alert is POSTed to the first process;
   messages/s is the count the simulator accepted over first to last arrival. The config's
   senders are 16 numbers at the most `rate_per_second` allows (1000), so the engine's own
   limiter is the only throttle left.
2. Fidelity: 3 processes, 3 senders, the simulator and the config at 250 segments/s per
   sender: the busiest rolling second per sender (vs its limit) and the 429 count.

Writes the "Scale (bench/scale.py)" section of bench/RESULTS.md (not with --no-write). Needs
BROADCASTER_BENCH_POSTGRES_DSN (or BROADCASTER_TEST_POSTGRES_DSN), default
postgresql://postgres@127.0.0.1:5432/test. Not a test: nothing here fails on a figure.

    python bench/scale.py [--subscribers 20000] [--fidelity-subscribers 6000]
        [--processes 1,2,3] [--concurrency 64] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository

from adapters.simulators.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSimulator
from adapters.store.postgres import PostgresStore
from bench.results import ROOT, machine, write_section
from broadcaster.ports import Subscriber

HEADING = "Scale (bench/scale.py)"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CLI = [sys.executable, "-m", "adapters.main"]
FIDELITY_MPS = 250
AREA = {"description": "Centre", "circle": {"lat": 53.48, "lon": -2.24, "radius_km": 5}}
ALERT = {
    "event": "Flood",
    "headline": "Flood warning: move to higher ground",
    "instruction": "Leave low-lying streets now.",
    "severity": "Severe",
    "urgency": "Immediate",
    "certainty": "Observed",
    "category": ["Met"],
    "channels": ["sms"],
    "areas": [AREA],
}


def senders(count: int) -> list[str]:
    return [f"+1500555{i:04d}" for i in range(count)]


def people(count: int) -> list[Subscriber]:
    return [
        Subscriber(
            phone=f"+4479{i:08d}",
            lat=53.48 + (i % 7) * 0.001,
            lon=-2.24 + (i % 11) * 0.001,
            language="en-GB",
        )
        for i in range(count)
    ]


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals in any half-open one-second window."""
    window: deque[float] = deque()
    most = 0
    for at in sorted(arrivals):
        window.append(at)
        while window[0] <= at - 1.0:
            window.popleft()
        most = max(most, len(window))
    return most


# --- the simulator, in a process of its own ----------------------------------------------


async def serve_simulator(mps: float | None) -> dict[str, Any]:
    """Run until stdin closes: the URL is the first line out, the figures the last."""
    async with TwilioSimulator(mps=mps) as sim:
        print(json.dumps({"url": sim.url}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
    at = [m["at"] for m in sim.messages]
    arrivals: dict[str, list[float]] = defaultdict(list)
    for message in sim.messages:
        arrivals[message["from"]].append(message["at"])
    by_to = Counter(m["to"] for m in sim.messages)
    return dict(
        counts=sim.counts,
        accepted=len(sim.messages),
        recipients=len(by_to),
        twice=sum(1 for n in by_to.values() if n > 1),
        span=(max(at) - min(at)) if at else 0.0,
        busiest={sender: busiest_second(times) for sender, times in arrivals.items()},
    )


class Simulator:
    """The simulator child process; `finish()` stops it and returns its figures."""

    def __init__(self, mps: float | None) -> None:
        command = [sys.executable, __file__, "--simulator", "none" if mps is None else str(mps)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self.process.stdout is not None
        self.url: str = json.loads(self.process.stdout.readline())["url"]

    def finish(self) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=120)
        return dict(json.loads(out.strip().splitlines()[-1]))


# --- one run -----------------------------------------------------------------------------


def write_config(
    path: Path, dsn: str, schema: str, url: str, numbers: list[str], mps: float, concurrency: int
) -> None:
    listed = ", ".join(f'"{s}"' for s in numbers)
    path.write_text(
        f'[http]\nport = 0\n[database]\nurl = "{dsn}?search_path={schema}"\n'
        "[approval]\ntwo_person_severities = []\n"
        f"[delivery]\nconcurrency = {concurrency}\nlease_seconds = 5\npoll_seconds = 0.1\n"
        "channel_lease_seconds = 3\n"
        "[channels.sms]\n"
        f'account_sid = "{DEFAULT_ACCOUNT_SID}"\nauth_token = "{DEFAULT_AUTH_TOKEN}"\n'
        f'from_numbers = [{listed}]\napi_base = "{url}"\n'
        f"rate_per_second = {mps}\nrate_margin = 0.05\nmax_segments = 1\n"
    )


async def start_serve(config: Path, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    out_path = log.with_suffix(".out")
    with out_path.open("wb") as out, log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            *CLI, "serve", "--config", str(config), stdout=out, stderr=err, cwd=ROOT
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.returncode is None:
        for line in out_path.read_text().splitlines():
            if line.startswith("broadcaster listening on "):
                return process, line.rsplit(" ", 1)[-1]
        await asyncio.sleep(0.05)
    if process.returncode is None:
        process.kill()
        await process.wait()
    text = await asyncio.to_thread(log.read_text)
    raise SystemExit(f"serve did not start: {text[-2000:]}")


async def one_run(
    dsn: str,
    processes: int,
    subscribers: int,
    mps: float | None,
    concurrency: int,
    *,
    post_to_holder: bool = True,
) -> dict[str, Any]:
    """Fan out one SMS alert to `subscribers` through `processes` serve processes. The alert
    is POSTed to the process holding the `sms` lease (planning and sending in one process,
    as with one process), or with `post_to_holder=False` to another one."""
    schema = f"bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")
    sim = Simulator(mps)
    serves: list[asyncio.subprocess.Process] = []
    try:
        store = await PostgresStore.open(dsn, schema=schema)
        try:
            await store.migrate()
            await store.upsert_subscribers(people(subscribers), now=datetime.now(UTC))
        finally:
            await store.close()
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "b.toml"
            numbers = senders(16) if mps is None else senders(3)
            write_config(config, dsn, schema, sim.url, numbers, mps or 1000, concurrency)
            token_args = ["token", "create", "--role", "issuer", "--name", "bench"]
            made = await asyncio.to_thread(
                subprocess.run,
                [*CLI, *token_args, "--config", str(config)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            token = made.stdout.strip().splitlines()[-1]
            started = await asyncio.gather(
                *(start_serve(config, Path(folder) / f"serve{i}.log") for i in range(processes))
            )
            serves = [p for p, _ in started]
            holder = ""
            while not holder:
                holder = (
                    await admin.fetchval(
                        f"SELECT holder FROM {schema}.channel_leases WHERE channel = 'sms'"  # noqa: S608
                    )
                    or ""
                )
                await asyncio.sleep(0.05)
            pid = int(holder.split(":")[1])
            url = next(u for p, u in started if (p.pid == pid) == post_to_holder)
            async with aiohttp.ClientSession() as http:
                posted = time.perf_counter()
                async with http.post(
                    f"{url}/v1/alerts",
                    json=ALERT,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=aiohttp.ClientTimeout(total=300),
                ) as response:
                    assert response.status == 201, await response.text()
            while True:
                open_count = await admin.fetchval(
                    f"SELECT COUNT(*) FROM {schema}.deliveries "  # noqa: S608
                    "WHERE state IN ('pending', 'sending')"
                )
                if open_count == 0:
                    break
                assert all(p.returncode is None for p in serves), "a serve process died"
                await asyncio.sleep(0.05)
            wall = time.perf_counter() - posted
    finally:
        for process in serves:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in serves:
            try:
                async with asyncio.timeout(20):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        figures = sim.finish()
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
    figures.update(processes=processes, subscribers=subscribers, wall=wall)
    figures["posted_to"] = "lease holder" if post_to_holder else "another process"
    figures["per_second"] = figures["accepted"] / figures["span"] if figures["span"] else 0.0
    return figures


# --- the report --------------------------------------------------------------------------


def report(args: argparse.Namespace, runs: list[dict[str, Any]], fidelity: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {r['processes']} | {r['accepted']:,} | {r['twice']} | {r['span']:.2f} "
        f"| {r['per_second']:,.0f} | {r['wall']:.2f} | {r['counts'].get('rate_limited', 0)} "
        f"| {r['posted_to']} |"
        for r in runs
    )
    limit = FIDELITY_MPS
    busiest = ", ".join(f"{s}: {n}/{limit}" for s, n in sorted(fidelity["busiest"].items()))
    fits = all(n <= limit for n in fidelity["busiest"].values())
    same = [r for r in runs if r["posted_to"] == "lease holder"]
    one = same[0]["per_second"] if same else 0.0
    ratios = ", ".join(
        f"{r['processes']}: {r['per_second'] / one:.2f}x" for r in same if one and r is not same[0]
    )
    split = ""
    others = [r for r in runs if r["posted_to"] != "lease holder"]
    if others:
        split = (
            "\n\nThe last row POSTs the alert to a process that does not hold the lease:"
            "\nplanning then runs in one process and sending in another, on different cores,"
            f"\nand the two overlap ({others[0]['per_second'] / one:.2f}x of 1 process). That is"
            "\nintake and sending split across processes, not one channel sent by several:"
            "\nstill one process sends."
        )
    fell = ""
    if same and max(r["per_second"] for r in same) > 1.1 * one:
        fell = (
            " Here 2 or 3 came out more than\n10 % above 1 process: not from sending in "
            "parallel (only the holder sent); across\nrepeated runs of this bench on this "
            "2-core machine the order flipped (1 process\nwas also the fastest once), so read "
            "it as run-to-run spread (not profiled)."
        )
    elif same and min(r["per_second"] for r in same) < 0.9 * one:
        fell = (
            " Here they came out lower: on this machine every serve process, the simulator and\n"
            "PostgreSQL share the same cores, and a standby process is not idle (lease renewals,\n"
            "its maintenance loop, event followers), so it takes CPU from the sender (the likely\n"
            "cause; not profiled)."
        )
    return f"""{machine()}

SMS fan-out of one alert to {args.subscribers:,} subscribers on one PostgreSQL database (a
fresh schema per run), with 1, 2 and 3 `broadcaster serve` processes, through the Twilio
simulator with no rate limit in its own process (uvloop). The config has 16 sender numbers at
`rate_per_second = 1000` (the most it allows; ~{16 * 1000 * 0.95:,.0f} messages/s after the
5 % margin, above what one process reaches) and `delivery.concurrency = {args.concurrency}`.
Messages/s: accepted / (last arrival - first) at the simulator; wall: POST to no delivery
open, as read from the database.

| processes | accepted | twice | sending s | messages/s | wall s | 429 | alert POSTed to |
|---:|---:|---:|---:|---:|---:|---:|---|
{rows}

Relative to 1 process: {ratios or "n/a"}.{split}

**More processes add failover, not throughput, for one channel.** Sends on a channel are
serialised through its lease (`broadcaster/leases.py`): one process at a time holds the
`sms` lease and only it sends SMS; the others stand by and take over within
`channel_lease_seconds` if it dies (tests/integration/test_scale_out.py kills it with -9).
That is what keeps the per-sender rate budget exact without coordinating rate limiters across
processes. So 2 and 3 processes cannot multiply a channel's send rate: the extra processes
serve HTTP intake, pages and streams, and stand by for the channel.{fell} Throughput for a
single channel scales within the one process (concurrency, senders). Each channel has its
own lease, so different channels (SMS, webhooks, MQTT, X, ...) may be sent by different
processes, but whichever process takes a free lease first keeps it: nothing spreads them.

Rate-limit fidelity (throttled run): {fidelity["subscribers"]:,} subscribers, 3 processes,
3 senders at {limit} segments/s in the simulator and in the config (rate_margin 5 %):
{fidelity["accepted"]:,} accepted, {fidelity["twice"]} twice, **{
        fidelity["counts"].get("rate_limited", 0)
    } 429s**; busiest rolling second per sender (vs limit) {busiest}: {
        "within the limit" if fits else "OVER the limit"
    }; {fidelity["per_second"]:,.0f} messages/s over {fidelity["span"]:.2f} s.
"""


async def run_all(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    # Warm-up (not reported): the first run on a fresh server pays cold caches.
    await one_run(args.dsn, 1, min(args.subscribers, 2_000), None, args.concurrency)
    runs = []
    for count in (int(n) for n in args.processes.split(",")):
        figures = await one_run(args.dsn, count, args.subscribers, None, args.concurrency)
        print(
            f"{count} process(es): {figures['accepted']} accepted in {figures['span']:.2f} s, "
            f"{figures['per_second']:,.0f}/s, twice {figures['twice']}",
            flush=True,
        )
        runs.append(figures)
    if args.split and "2" in args.processes.split(","):
        figures = await one_run(
            args.dsn, 2, args.subscribers, None, args.concurrency, post_to_holder=False
        )
        print(f"2 processes, POST to a non-holder: {figures['per_second']:,.0f}/s", flush=True)
        runs.append(figures)
    fidelity = await one_run(args.dsn, 3, args.fidelity_subscribers, FIDELITY_MPS, args.concurrency)
    print(f"fidelity: busiest {fidelity['busiest']}, counts {fidelity['counts']}", flush=True)
    return runs, fidelity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulator", help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--fidelity-subscribers", type=int, default=6_000)
    parser.add_argument("--processes", default="1,2,3")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--no-split", dest="split", action="store_false", help="skip the non-holder POST run"
    )
    env_dsn = os.environ.get("BROADCASTER_BENCH_POSTGRES_DSN") or os.environ.get(
        "BROADCASTER_TEST_POSTGRES_DSN"
    )
    parser.add_argument("--dsn", default=env_dsn or DEFAULT_DSN)
    args = parser.parse_args()
    if args.simulator:
        mps = None if args.simulator == "none" else float(args.simulator)
        print(json.dumps(uvloop.run(serve_simulator(mps))))
        return
    runs, fidelity = uvloop.run(run_all(args))
    text = report(args, runs, fidelity)
    print(text)
    if not args.no_write:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
