"""Reload: how long the event loop stalls while the SMS subscriber directory reloads.

A SQLite store (a temp file) is seeded with 1,000,000 subscribers at seeded random points
(`upsert_subscribers` in chunks of 50,000). As `broadcaster serve` does, a
`SubscriberDirectory` is loaded from it, `tune_collector()` runs, and a `DirectoryFollower` is
wired as in `adapters/server.py` (`after_reload=freeze_survivors`), all on
uvloop. Each run times `follower.reload()` while a heartbeat coroutine sleeps 1 ms at a time
from 0.2 s before the reload to 0.2 s after it and records the gap between its wake-ups: the
largest gap is the worst loop stall, what an SSE stream or API request waits for.
Target: the worst gap over the runs ≤ 250 ms (SSE's target is p99 ≤ 1 s).

Writes the "Reload (bench/reload.py)" section of bench/RESULTS.md (not with --no-write). Not a
test: a missed target never fails it.

    python bench/reload.py [--subscribers 1000000] [--runs 3] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository

from adapters.server import freeze_survivors, tune_collector
from adapters.store import open_store
from bench.results import (
    OK,
    format_section,
    machine,
    peak_rss_mb,
    percentile,
    rss_mb,
    write_section,
)
from broadcaster.audience import DirectoryFollower, SubscriberDirectory
from broadcaster.ports import Subscriber

HEADING = "Reload (bench/reload.py)"
SEED = 20101014
CHUNK = 50_000
BEAT = 0.001  # the heartbeat's sleep, s
SLOW = 0.050  # a gap above this counts as a stall, s
TARGET_MS = 250


def people(count: int) -> Iterator[list[Subscriber]]:
    """`count` subscribers in a 45 x 56 km box around Manchester, `CHUNK` at a time (so the
    bench never holds a second million records besides the directory's)."""
    rng = np.random.default_rng(SEED)
    for start in range(0, count, CHUNK):
        size = min(CHUNK, count - start)
        lats = rng.uniform(53.30, 53.70, size).tolist()
        lons = rng.uniform(-2.75, -1.90, size).tolist()
        yield [
            Subscriber(f"+4479{i:08d}", lat, lon, area_code=f"M{i % 60 + 1}", groups=("g",))
            for i, lat, lon in zip(range(start, start + size), lats, lons, strict=True)
        ]


async def heartbeat(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(BEAT)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as folder:
        store = await open_store(f"sqlite:///{folder}/bench.db")
        try:
            started = time.perf_counter()
            for chunk in people(args.subscribers):
                await store.upsert_subscribers(chunk, datetime.now(UTC))
            print(f"seeded {args.subscribers:,} in {time.perf_counter() - started:.1f} s")
            gc.collect()
            directory = SubscriberDirectory()
            started = time.perf_counter()
            await directory.load(store)  # as open_channels does at start-up
            first = {"seconds": time.perf_counter() - started, "count": len(directory)}
            first["rss_mb"] = rss_mb()
            print(json.dumps({"first_load": first}), flush=True)
            tune_collector()
            follower = DirectoryFollower(  # as adapters/server.py wires it
                directory, store, poll_seconds=60, after_reload=freeze_survivors
            )
            runs = []
            for number in range(1, args.runs + 1):
                gaps: list[float] = []
                stop = asyncio.Event()
                beat = asyncio.create_task(heartbeat(gaps, stop))
                await asyncio.sleep(0.2)
                started = time.perf_counter()
                await follower.reload()
                took = time.perf_counter() - started
                await asyncio.sleep(0.2)
                stop.set()
                await beat
                figures = {
                    "reload_s": took,
                    "max_ms": max(gaps) * 1000,
                    "p99_ms": percentile(gaps, 0.99) * 1000,
                    "beats": len(gaps),
                    "slow_ms": [round(g * 1000) for g in gaps if g > SLOW],  # in order
                    "rss_mb": rss_mb(),
                }
                print(json.dumps({"run": number, **figures}), flush=True)
                runs.append(figures)
        finally:
            await store.close()
    return {"first": first, "runs": runs, "peak_rss_mb": peak_rss_mb()}


def section(results: dict[str, Any], args: argparse.Namespace) -> str:
    runs, first = results["runs"], results["first"]
    worst = max(r["max_ms"] for r in runs)
    each = ", ".join(f"{r['max_ms']:.0f}" for r in runs)
    reloads = [r["reload_s"] for r in runs]
    p99s = [r["p99_ms"] for r in runs]
    slow = [float(len(r["slow_ms"])) for r in runs]

    def spread(values: list[float], form: str) -> str:
        low, high = format(min(values), form), format(max(values), form)
        return low if low == high else f"{low} to {high}"

    def stalls(gaps_ms: list[int]) -> str:
        return f"{len(gaps_ms)} ({', '.join(map(str, gaps_ms))})" if gaps_ms else "0"

    table = "\n".join(
        f"| {n} | {r['reload_s']:.2f} | {r['max_ms']:.0f} | {r['p99_ms']:.1f} | {r['beats']} "
        f"| {stalls(r['slow_ms'])} | {r['rss_mb']:.0f} |"
        for n, r in enumerate(runs, 1)
    )
    return f"""Written by `bench/reload.py` on {time.strftime("%Y-%m-%d %H:%M %Z")}.
Machine: {machine()}.

`SubscriberDirectory` of {first["count"]:,} subscribers (seeded random points, seed {SEED}) on
SQLite (WAL, a temp file), loaded as at start-up, then `tune_collector()` and a
`DirectoryFollower` wired as `adapters/server.py` does (after_reload `freeze_survivors`),
on uvloop. {args.runs} runs of `follower.reload()`; a heartbeat coroutine sleeping
{BEAT * 1000:g} ms records the gaps between its wake-ups from 0.2 s before each reload to 0.2 s
after it. The largest gap is how long the loop (SSE streams, the API) stood still.

| benchmark | figure | target | |
|---|---|---|---|
| worst event-loop stall during a reload (heartbeat max gap, worst of {args.runs}) \
| {worst:.0f} ms (runs: {each} ms) | ≤ {TARGET_MS} ms | {OK[worst <= TARGET_MS]} |
| `follower.reload()` of {first["count"]:,} subscribers | {spread(reloads, ".2f")} s \
| | |
| heartbeat p99 gap during a reload | {spread(p99s, ".1f")} ms | | |
| gaps > {SLOW * 1000:.0f} ms per reload | {spread(slow, ".0f")} | | |
| first load (start-up, `directory.load`) | {first["seconds"]:.2f} s | | |
| bench process peak RSS (ru_maxrss) | {results["peak_rss_mb"]:.0f} MB (after the first \
load: {first["rss_mb"]:.0f} MB) | | |

| run | reload s | max gap ms | p99 gap ms | beats | gaps > {SLOW * 1000:.0f} ms (ms, in order) \
| RSS after, MB |
|---:|---:|---:|---:|---:|---|---:|
{table}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    results = uvloop.run(measure(args))
    body = section(results, args)
    print(format_section(HEADING, body) if args.no_write else write_section(HEADING, body))


if __name__ == "__main__":
    main()
