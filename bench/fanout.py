"""Fan-out benchmark: the delivery engine against a bare aiohttp client, same requests.

100,000 webhook deliveries of one alert go to a loopback sink (its own process, uvloop) that
answers 200 at once. The engine run is the real thing minus HTTP intake: SQLite outbox,
Dispatcher, WebhookChannel, `await dispatcher.drain()`. The bare run is one aiohttp session
(same connector settings as adapters/channels.py) with the same concurrency, POSTing the
same signed bodies to the same URLs. Each run is a child process of its own, so each peak
RSS (ru_maxrss) is that run's alone.

Targets: engine ≥ 80 % of the bare client's rate (bookkeeping costs ≤ 20 %), engine peak RSS
≤ 300 MB. Prints a table and writes the "Fan-out" section of bench/RESULTS.md, keeping the
others. It never fails a test run: it is not a test.

    python bench/fanout.py [--deliveries 100000] [--concurrency 32] [--no-breakdown] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository

from bench.fanout_parts import aiohttp_sink, raw_sink, run_bare, run_engine
from bench.results import (
    OK,
    ROOT,
    cpu_seconds,
    format_section,
    machine,
    write_section,
)
from tests.support.broker import free_port, wait_for_port

HEADING = "Fan-out (bench/fanout.py)"
TARGET_RATIO = 0.80
TARGET_RSS_MB = 300.0

# --- the parent: runs, table, RESULTS.md -------------------------------------------------


class Sink:
    """The sink in a process of its own, on a free port; its CPU time is readable."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--sink", self.kind, "--port", str(self.port)], cwd=ROOT
        )
        wait_for_port(self.port, timeout=20)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def child(mode: str, sink: Sink, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """One run in a fresh process; returns its JSON figures plus the sink's CPU time."""
    command = [
        sys.executable,
        __file__,
        "--run",
        mode,
        "--sink-url",
        sink.url,
        "--deliveries",
        str(args.deliveries),
        "--concurrency",
        str(args.concurrency),
        *extra,
    ]
    sink_before = sink.cpu_seconds()
    out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{mode} run failed with exit code {out.returncode}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["sink_cpu_seconds"] = sink.cpu_seconds() - sink_before
    return figures


def profile_summary(path: str, limit: int = 25) -> str:
    text = io.StringIO()
    stats = pstats.Stats(path, stream=text)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return text.getvalue()


def section(
    engine: dict[str, Any],
    bare: dict[str, Any],
    variants: list[tuple[str, dict[str, Any]]],
    args: argparse.Namespace,
    sink_kind: str,
) -> str:
    ratio = engine["per_second"] / bare["per_second"]
    sent = engine["counts"].get("sent", 0)
    rate_ok = ratio >= TARGET_RATIO and sent == args.deliveries
    rss_ok = engine["peak_rss_mb"] <= TARGET_RSS_MB
    n = args.deliveries

    def cpu(run: dict[str, Any]) -> str:
        if "loop_us_per_delivery" not in run:
            return f"CPU {run['us_per_request']:.0f} µs/request"
        return (
            f"CPU {run['loop_us_per_delivery']:.0f} µs/delivery on the event loop + "
            f"{max(run['other_threads_us_per_delivery'], 0):.0f} µs in other threads "
            "(aiosqlite's)"
        )

    def busy(run: dict[str, Any]) -> str:
        return (
            f"process {run['cpu_seconds'] / run['seconds']:.0%} of a core, "
            f"sink {run['sink_cpu_seconds'] / run['seconds']:.0%}"
        )

    rows = "".join(
        f"| {label} | {figures['per_second']:.0f} deliveries/s "
        f"({figures['per_second'] / bare['per_second']:.0%} of bare; {cpu(figures)}) | | |\n"
        for label, figures in variants
    )
    return f"""Written by `bench/fanout.py` on {time.strftime("%Y-%m-%d %H:%M %Z")}.
Machine: {machine()}.

{n} webhook deliveries of one alert to a loopback sink ({sink_kind}, its own process on
uvloop) that answers 200 at once; concurrency {args.concurrency}, no rate limit. Engine:
SQLite outbox (WAL) + Dispatcher + WebhookChannel, timed over `dispatcher.drain()` (claim,
send, record each outcome). Bare: one aiohttp session, same connector settings, same signed
bodies ({bare["body_bytes"]} bytes) to the same URLs. Bare and engine runs alternate
({args.rounds} rounds; this VM's speed drifts between runs) and the best of each is shown.
Each run is its own process on uvloop;
CPU is that process's user+sys time over the run. The last rows take parts away (an
in-memory outbox for SQLite, a channel that returns at once for HTTP) to show what each
part costs.

| benchmark | figure | target | |
|---|---|---|---|
| engine fan-out, {n} deliveries | {engine["per_second"]:.0f} deliveries/s \
({engine["seconds"]:.2f} s; {sent} sent; {cpu(engine)}; {busy(engine)}) | | |
| bare aiohttp client, same requests | {bare["per_second"]:.0f} requests/s \
({bare["seconds"]:.2f} s; {bare["ok"]} answered 200; {cpu(bare)}; {busy(bare)}) | | |
| engine / bare | {ratio:.0%} | ≥ {TARGET_RATIO:.0%} | {OK[rate_ok]} |
| engine peak RSS (ru_maxrss of the engine's own process) | {engine["peak_rss_mb"]:.0f} MB \
(peak before the drain, i.e. while planning and setting up {n} receivers: \
{engine["peak_rss_before_drain_mb"]:.0f} MB; RSS when the drain started: \
{engine["rss_before_drain_mb"]:.0f} MB; the bare client's process: \
{bare["peak_rss_mb"]:.0f} MB) | ≤ {TARGET_RSS_MB:.0f} MB | {OK[rss_ok]} |
| planning: one alert with {n} deliveries inserted (one transaction) | \
{engine["insert_seconds"]:.2f} s | | |
{rows}"""


BREAKDOWN = (
    # (label, outbox, channel)
    ("engine, in-memory outbox (no SQLite), real webhook sends", "memory", "webhook"),
    ("engine, SQLite outbox, null channel (no HTTP)", "sqlite", "null"),
    ("engine, in-memory outbox, null channel (dispatcher alone)", "memory", "null"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--sink-kind",
        choices=["raw", "aiohttp"],
        default="raw",
        help="raw: a minimal asyncio protocol (so the sink is not the limit); aiohttp: web",
    )
    parser.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip the runs of the engine without SQLite and/or HTTP (what each part costs)",
    )
    parser.add_argument("--profile", action="store_true", help="also cProfile an engine run")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating bare/engine rounds (best of each)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    # Internal: the sink and the child runs.
    parser.add_argument("--sink", choices=["raw", "aiohttp"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run", choices=["engine", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--sink-url", help=argparse.SUPPRESS)
    parser.add_argument("--profile-path", help=argparse.SUPPRESS)
    parser.add_argument("--outbox", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--channel", default="webhook", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.sink:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(raw_sink(args.port) if args.sink == "raw" else aiohttp_sink(args.port))
        return
    if args.run == "engine":
        engine_run = run_engine(
            args.sink_url,
            args.deliveries,
            args.concurrency,
            args.profile_path,
            outbox=args.outbox,
            channel_kind=args.channel,
        )
        print(json.dumps(uvloop.run(engine_run)))
        return
    if args.run == "bare":
        print(json.dumps(uvloop.run(run_bare(args.sink_url, args.deliveries, args.concurrency))))
        return

    def show(label: str, figures: dict[str, Any]) -> None:
        print(
            label, {k: v if isinstance(v, int | dict) else round(v, 3) for k, v in figures.items()}
        )

    sink = Sink(args.sink_kind)
    sink.start()
    variants: list[tuple[str, dict[str, Any]]] = []
    try:
        # Bare first, then the engine: each in its own process, so neither's memory or
        # warm caches count for the other.
        # This VM's speed drifts by ±15 % between runs: alternate the two, and compare
        # the best of each.
        bares, engines = [], []
        for _ in range(args.rounds):
            bares.append(child("bare", sink, args))
            show("bare  ", bares[-1])
            engines.append(child("engine", sink, args))
            show("engine", engines[-1])
        bare = max(bares, key=lambda run: run["per_second"])
        engine = max(engines, key=lambda run: run["per_second"])
        if not args.no_breakdown:
            for label, outbox, channel in BREAKDOWN:
                figures = child("engine", sink, args, "--outbox", outbox, "--channel", channel)
                show(label, figures)
                variants.append((label, figures))
        if args.profile:
            with tempfile.TemporaryDirectory() as folder:
                path = str(Path(folder) / "engine.prof")
                profiled = child("engine", sink, args, "--profile-path", path)
                print(f"profiled engine run (cProfile slows it): {profiled['per_second']:.0f}/s")
                print(profile_summary(path))
    finally:
        sink.stop()
    body = section(engine, bare, variants, args, f"{sink.kind} sink")
    print(format_section(HEADING, body) if args.no_write else write_section(HEADING, body))


if __name__ == "__main__":
    main()
