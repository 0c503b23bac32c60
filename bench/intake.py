"""Intake benchmark: REST and MQTT throughput and latency, the service in its own process.

Targets (issue 2, on a 2-core machine, SQLite): REST ≥ 1,000 alerts/s with p99 ≤ 50 ms over
50 connections; MQTT ≥ 2,000 alerts/s. Prints the figures and writes bench/RESULTS.md. It never
fails a test run: it is not a test.

    python bench/intake.py [--alerts 10000] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import aiomqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.broker import Broker, free_port, wait_for_port  # noqa: E402

CLI = [sys.executable, "-m", "adapters.main"]


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
            "channels": ["sms", "x"],
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
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def bench_rest(server: Server, token: str, count: int, connections: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{server.port}/v1/alerts"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [alert_body(n) for n in range(count)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < count:
            body = bodies[next_index]
            next_index += 1
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
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
    latencies.sort()
    return {
        "alerts": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "created": statuses.get(201, 0),
        "errors": count - statuses.get(201, 0),
    }


def bench_rest_wrk(server: Server, token: str, count: int, connections: int) -> dict[str, float]:
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

    def ms(pattern: str) -> float:
        """wrk prints a duration as e.g. 812.00us, 38.06ms or 1.20s."""
        match = re.search(pattern + r"([0-9.]+)(us|ms|s)\b", out)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    total = re.search(r"(\d+) requests in ([0-9.]+)s", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests, elapsed = (int(total.group(1)), float(total.group(2))) if total else (0, 1.0)
    failed = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in errors.groups()) if errors else 0
    )
    return {
        "alerts": requests,
        "seconds": elapsed,
        "per_second": requests / elapsed,
        "p50_ms": ms(r"50%\s+"),
        "p99_ms": ms(r"99%\s+"),
        "max_ms": ms(r"Latency\s+\S+\s+\S+\s+"),
        "created": requests - failed,
        "errors": failed,
    }


async def created_via_mqtt(port: int) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    match = re.search(
        r'broadcaster_alerts_received_total\{format="json",outcome="created",'
        r'source="mqtt"\} ([0-9.e+]+)',
        text,
    )
    return float(match.group(1)) if match else 0.0


async def bench_mqtt(server: Server, broker: Broker, count: int) -> dict[str, float]:
    started = time.perf_counter()
    await publish_alerts(broker, count)
    published = time.perf_counter() - started
    while await created_via_mqtt(server.port) < count:
        if time.perf_counter() - started > 300:
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    stored = await created_via_mqtt(server.port)
    return {
        "alerts": count,
        "stored": stored,
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


async def bench_mqtt_backlog(server: Server, broker: Broker, count: int) -> dict[str, float]:
    """The service's own intake rate: drain a backlog the broker queued while it was down
    (the burst after a reconnect), timed from its first stored alert to its last."""
    server.start()
    await asyncio.sleep(1.0)  # subscribe once, so the broker keeps the persistent session
    server.stop()
    await publish_alerts(broker, count)  # nobody reads: the broker queues them
    server.start()
    first = 0.0
    while (first := await created_via_mqtt(server.port)) == 0:  # noqa: ASYNC110 - polls another process
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    stored = first
    while stored < count and time.perf_counter() - started < 300:
        await asyncio.sleep(0.02)
        stored = await created_via_mqtt(server.port)
    elapsed = time.perf_counter() - started
    return {
        "alerts": count,
        "stored": stored,
        "seconds": elapsed,
        "per_second": (stored - first) / elapsed,
    }


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def write_results(
    rest: dict[str, float],
    mqtt: dict[str, float],
    backlog: dict[str, float],
    rss: dict[str, float],
    connections: int,
    generator: str,
) -> str:
    ok = {True: "met", False: "NOT met"}
    rest_ok = rest["per_second"] >= 1000 and rest["p99_ms"] <= 50 and rest["errors"] == 0
    mqtt_ok = mqtt["per_second"] >= 2000 and mqtt["stored"] >= mqtt["alerts"]
    backlog_ok = backlog["per_second"] >= 2000 and backlog["stored"] >= backlog["alerts"]
    text = f"""# Benchmark results

Written by `bench/intake.py` on {time.strftime("%Y-%m-%d %H:%M %Z")}.
Machine: {machine()}. The service runs in its own process on SQLite (WAL); the load generator
(REST: {generator}; MQTT: a Python aiomqtt publisher) and Mosquitto run on the same machine
and share its cores.
"Live" MQTT includes the publisher's own CPU; the "backlog" row measures the service alone.

| benchmark | figure | target | |
|---|---|---|---|
| REST intake, {rest["alerts"]:.0f} alerts over {connections} connections ({generator}) | \
{rest["per_second"]:.0f} alerts/s, p50 {rest["p50_ms"]:.1f} ms, p99 {rest["p99_ms"]:.1f} ms, \
max {rest["max_ms"]:.0f} ms, {rest["errors"]:.0f} errors | ≥ 1,000 alerts/s, p99 ≤ 50 ms | \
{ok[rest_ok]} |
| MQTT intake, {mqtt["alerts"]:.0f} alerts at QoS 1 (publish → committed) | \
{mqtt["per_second"]:.0f} alerts/s ({mqtt["stored"]:.0f} stored in {mqtt["seconds"]:.2f} s) | \
≥ 2,000 alerts/s | {ok[mqtt_ok]} |
| MQTT intake, service alone: a backlog of {backlog["alerts"]:.0f} queued alerts drained \
(first → last commit) | {backlog["per_second"]:.0f} alerts/s | ≥ 2,000 alerts/s | \
{ok[backlog_ok]} |
| service peak RSS after the REST run | {rss["rest"]:.0f} MB | | |
| service peak RSS after the MQTT run | {rss["mqtt"]:.0f} MB | | |
"""
    (ROOT / "bench" / "RESULTS.md").write_text(text)
    return text


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=50)
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
        finally:
            server.stop()
        print("REST", {k: round(v, 2) for k, v in rest.items()})

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
        print("MQTT live", {k: round(v, 2) for k, v in mqtt.items()})

        broker = Broker(folder / "broker-backlog")
        broker.start()
        (folder / "backlog").mkdir()
        server = Server(folder / "backlog", mqtt_url=broker.url)
        try:
            backlog = await bench_mqtt_backlog(server, broker, args.alerts)
        finally:
            server.stop()
            broker.stop()
        print("MQTT backlog", {k: round(v, 2) for k, v in backlog.items()})
    print(write_results(rest, mqtt, backlog, rss, args.connections, generator))


if __name__ == "__main__":
    asyncio.run(main())
