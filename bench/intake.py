"""Intake benchmark: REST and MQTT throughput and latency, the service in its own process.

Targets (issue 2, on a 2-core machine, SQLite): REST ≥ 1,000 alerts/s with p99 ≤ 50 ms over
50 connections; MQTT ≥ 2,000 alerts/s. Only alerts the service created count: a request answered
with anything but 2xx (or an MQTT alert it rejected) is an error, reported as such, and a run
with errors meets no target. Prints the figures and writes the "Intake" section of
bench/RESULTS.md, keeping the others. It never fails a test run: it is not a test.

    python bench/intake.py [--alerts 10000] [--connections 50] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository

from bench.intake_report import section
from bench.results import (
    ROOT,
    format_section,
    peak_rss_mb,
    percentile,
    write_section,
    wrk_figures,
)
from tests.support.broker import Broker, free_port, wait_for_port

CLI = [sys.executable, "-m", "adapters.main"]
HEADING = "Intake (bench/intake.py)"


def alert_body(n: int) -> bytes:
    return json.dumps(
        {
            "event": "Gas leak",
            "headline": f"Avoid Market St ({n})",
            "severity": "Severe",
            "urgency": "Immediate",
            "certainty": "Observed",
            "category": ["Safety"],
            "instruction": "Keep away from Market St until further notice.",
            "areas": [
                {
                    "description": "Market St",
                    "circle": {"lat": 51.5072, "lon": -0.1276, "radius_km": 0.5},
                }
            ],
            # "web" is always available and plans no delivery: intake alone is measured.
            "channels": ["web"],
        }
    ).encode()


class Server:
    """`broadcaster serve` in a subprocess on a fresh SQLite database."""

    def __init__(self, folder: Path, mqtt_url: str | None = None) -> None:
        self.port = free_port()
        self.config = folder / "bench.toml"
        text = (
            f'[http]\nport = {self.port}\n[database]\nurl = "sqlite:///{folder}/bench.db"\n'
            '[approval]\ntwo_person_severities = []\n[logging]\nlevel = "WARNING"\n'
        )
        if mqtt_url:
            text += (
                f'[mqtt]\nurl = "{mqtt_url}"\nalerts_topic = "bench/alerts"\n'
                'client_id = "bench-intake"\n'
                # Intake alone: publishing alerts back out is not what this measures.
                "publish_alerts = false\n"
            )
        self.config.write_text(text)
        self.process: subprocess.Popen[bytes] | None = None

    def token(self) -> str:
        out = subprocess.run(
            [
                *CLI,
                "token",
                "create",
                "--role",
                "issuer",
                "--name",
                "bench",
                "--config",
                str(self.config),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return out.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        self.process = subprocess.Popen([*CLI, "serve", "--config", str(self.config)], cwd=ROOT)
        wait_for_port(self.port, timeout=30)

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        return peak_rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def bench_rest(server: Server, token: str, count: int, connections: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.port}/v1/alerts"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [alert_body(n) for n in range(count)]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    socket_errors = 0
    next_index = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index, socket_errors
        while next_index < count:
            body = bodies[next_index]
            next_index += 1
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
            except aiohttp.ClientError:
                socket_errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up connections and the server's caches before measuring.
        await asyncio.gather(
            *(session.get(f"http://127.0.0.1:{server.port}/healthz") for _ in range(connections))
        )
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "requests": count,
        "seconds": elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "non_2xx": statuses.total() - ok,
        "socket_errors": socket_errors,
        "failed": count - ok,
        "ok": ok,
    }


def bench_rest_wrk(server: Server, token: str, count: int, connections: int) -> dict[str, Any]:
    """REST load from wrk (C), so the load generator does not take the service's core.
    wrk runs for a duration: long enough for about `count` alerts at the target rate."""
    seconds = max(5, round(count / 1000))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "post_alert.lua"),
            f"http://127.0.0.1:{server.port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_TOKEN": token},
    ).stdout
    return wrk_figures(out)


async def received(port: int, source: str) -> dict[str, float]:
    """The service's own count of the alerts `source` (rest, mqtt) offered it, by outcome
    (created, duplicate, rejected), all formats together, from its /metrics."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    outcomes: dict[str, float] = {}
    for labels, value in re.findall(
        r"^broadcaster_alerts_received_total\{([^}]*)\} (\S+)$", text, re.MULTILINE
    ):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("source") == source:
            outcome = fields.get("outcome", "?")
            outcomes[outcome] = outcomes.get(outcome, 0.0) + float(value)
    return outcomes


async def first_failure(server: Server, token: str) -> str:
    """For the table when requests failed: one more POST of the benchmark's alert (as
    alert_body and post_alert.lua make it) and, if it fails too, its status and the error
    code the service answered (or the start of its body); "" if it succeeds."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{server.port}/v1/alerts"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=alert_body(-1), headers=headers) as response,
    ):
        text = await response.text()
    if 200 <= response.status < 300:
        return ""
    match = re.search(r'"code"\s*:\s*"([^"]+)"', text)
    return f"; a POST after the run: {response.status} {match.group(1) if match else text[:80]!r}"


async def wait_offered(port: int, count: int, within: float, poll: float) -> dict[str, float]:
    """Poll the service's MQTT outcomes until `count` alerts were offered (created, duplicate
    or rejected) or `within` seconds passed; the outcomes then."""
    end = time.perf_counter() + within
    while True:
        outcomes = await received(port, "mqtt")
        if sum(outcomes.values()) >= count or time.perf_counter() > end:
            return outcomes
        await asyncio.sleep(poll)


async def bench_mqtt(server: Server, broker: Broker, count: int) -> dict[str, Any]:
    started = time.perf_counter()
    await publish_alerts(broker, count)
    published = time.perf_counter() - started
    outcomes = await wait_offered(server.port, count, within=300, poll=0.02)
    elapsed = time.perf_counter() - started
    stored = outcomes.get("created", 0.0)
    return {
        "alerts": count,
        "stored": stored,
        "rejected": outcomes.get("rejected", 0.0),
        "seconds": elapsed,
        "per_second": stored / elapsed,
        "publish_seconds": published,
    }


async def publish_alerts(broker: Broker, count: int) -> None:
    """Publish `count` alerts at QoS 1, up to 500 awaiting their PUBACK at a time."""
    window = asyncio.Semaphore(500)

    async def publish(client: aiomqtt.Client, body: bytes) -> None:
        async with window:
            await client.publish("bench/alerts", body, qos=1)

    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier="bench-publisher", max_inflight_messages=500
    ) as client:
        client.pending_calls_threshold = count + 1  # the backlog is the point here
        await asyncio.gather(*(publish(client, alert_body(n)) for n in range(count)))


async def bench_mqtt_backlog(server: Server, broker: Broker, count: int) -> dict[str, Any]:
    """The service's own intake rate: drain a backlog the broker queued while it was down
    (the burst after a reconnect), timed from its first stored alert to its last."""
    server.start()
    await asyncio.sleep(1.0)  # subscribe once, so the broker keeps the persistent session
    server.stop()
    await publish_alerts(broker, count)  # nobody reads: the broker queues them
    server.start()
    first = await wait_offered(server.port, 1, within=300, poll=0.01)
    started = time.perf_counter()
    outcomes = await wait_offered(server.port, count, within=300, poll=0.02)
    elapsed = time.perf_counter() - started
    stored = outcomes.get("created", 0.0)
    return {
        "alerts": count,
        "stored": stored,
        "rejected": outcomes.get("rejected", 0.0),
        "seconds": elapsed,
        "per_second": (stored - first.get("created", 0.0)) / elapsed,
    }


def rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    generator = "wrk" if shutil.which("wrk") else "a Python aiohttp client"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "rest").mkdir()
        server = Server(folder / "rest")
        token = server.token()
        server.start()
        try:
            if generator == "wrk":
                rest = bench_rest_wrk(server, token, args.alerts, args.connections)
            else:
                rest = await bench_rest(server, token, args.alerts, args.connections)
            rss = {"rest": server.peak_rss_mb()}
            outcomes = await received(server.port, "rest")
            rest["created"] = outcomes.get("created", 0.0)
            rest["rejected"] = outcomes.get("rejected", 0.0)
            rest["sample"] = await first_failure(server, token) if rest["failed"] else ""
        finally:
            server.stop()
        print("REST", rounded(rest))

        broker = Broker(folder / "broker")
        broker.start()
        (folder / "mqtt").mkdir()
        server = Server(folder / "mqtt", mqtt_url=broker.url)
        server.start()
        try:
            await asyncio.sleep(1.0)  # let the service subscribe
            mqtt = await bench_mqtt(server, broker, args.alerts)
            rss["mqtt"] = server.peak_rss_mb()
        finally:
            server.stop()
            broker.stop()
        print("MQTT live", rounded(mqtt))

        broker = Broker(folder / "broker-backlog")
        broker.start()
        (folder / "backlog").mkdir()
        server = Server(folder / "backlog", mqtt_url=broker.url)
        try:
            backlog = await bench_mqtt_backlog(server, broker, args.alerts)
        finally:
            server.stop()
            broker.stop()
        print("MQTT backlog", rounded(backlog))
    body = section(rest, mqtt, backlog, rss, args.connections, generator)
    if args.no_write:
        print(format_section(HEADING, body))
    else:
        print(write_section(HEADING, body))


if __name__ == "__main__":
    asyncio.run(main())
