"""Correction: how fast a one-step cancel reaches people (Hawaii 2018 took 38 minutes).

`broadcaster serve` runs in a subprocess on SQLite, with SMS (3 numbers at 100 segments/s
each) and X pointed at the Twilio and X simulators, which run in this process. 1,000 SMS
subscribers are imported first. Each run sends an alert to all of them, and once the Twilio
simulator has accepted 300 of its texts (mid fan-out) calls `POST /v1/alerts/{id}/cancel`;
we measure, on this process's monotonic clock, from just before that call to the first
correction each simulator received (SMS and the X reply), and count who got the original, who
got the correction (they must be the same numbers) and how many texts of the original were
stopped. Target: the first correction within 1 s of the call (seconds, not minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository

from adapters.simulators.twilio import TwilioSimulator
from adapters.simulators.x import XSimulator
from bench.results import OK, ROOT, format_section, machine, percentile, write_section
from tests.support.broker import free_port, wait_for_port

CLI = [sys.executable, "-m", "adapters.main"]
HEADING = "Correction (bench/correction.py)"
SENDERS = ["+15005550001", "+15005550002", "+15005550003"]
CENTRE = (53.48, -2.24)
TARGET_SECONDS = 1.0


def write_config(folder: Path, port: int, twilio: TwilioSimulator, x: XSimulator) -> Path:
    config = folder / "bench.toml"
    config.write_text(
        f"""[http]
port = {port}
[database]
url = "sqlite:///{folder}/bench.db"
[approval]
two_person_severities = []
[logging]
level = "WARNING"
[channels.sms]
account_sid = "{twilio.account_sid}"
auth_token = "{twilio.auth_token}"
from_numbers = {json.dumps(SENDERS)}
api_base = "{twilio.url}"
rate_per_second = 100
[channels.x]
consumer_key = "ck"
consumer_secret = "cs"
access_token = "at"
access_token_secret = "ats"
bearer_token = "bt"
api_base = "{x.url}"
"""
    )
    return config


def cli(*args: str) -> str:
    out = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, check=True, cwd=ROOT, timeout=120
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def import_subscribers(folder: Path, config: Path, count: int) -> None:
    path = folder / "subscribers.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "lat", "lon"])
        for i in range(count):
            lat = CENTRE[0] + (i % 31 - 15) * 1e-3
            lon = CENTRE[1] + (i % 37 - 18) * 1e-3
            writer.writerow([f"+4479{i:08d}", f"{lat:.5f}", f"{lon:.5f}"])
    cli("subscribers", "import", "--config", str(config), str(path))


def alert(run: int) -> dict[str, Any]:
    return {
        "event": "Gas leak",
        "headline": f"Avoid Market St (run {run})",
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
        "areas": [
            {
                "description": "Centre",
                "circle": {"lat": CENTRE[0], "lon": CENTRE[1], "radius_km": 10},
            }
        ],
    }


async def wait_for(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def open_deliveries(
    http: aiohttp.ClientSession, base: str, alert_id: str, headers: dict[str, str]
) -> int:
    async with http.get(f"{base}/v1/alerts/{alert_id}", headers=headers) as response:
        counts = (await response.json())["deliveries"]
    return sum(
        n for states in counts.values() for s, n in states.items() if s in ("pending", "sending")
    )


async def one_run(
    run: int,
    http: aiohttp.ClientSession,
    base: str,
    tokens: dict[str, str],
    twilio: TwilioSimulator,
    x: XSimulator,
    mid: int,
    subscribers: int,
) -> dict[str, Any]:
    tag = f"(run {run})"
    issuer = {"Authorization": f"Bearer {tokens['issuer']}"}
    approver = {"Authorization": f"Bearer {tokens['approver']}"}
    async with http.post(f"{base}/v1/alerts", json=alert(run), headers=issuer) as response:
        assert response.status == 201, await response.text()
        original = await response.json()

    def originals() -> list[dict[str, Any]]:
        return [m for m in twilio.messages if tag in m["body"]]

    await wait_for(lambda: len(originals()) >= mid, 60, f"{mid} texts of run {run}")
    marker = f"Gas leak {run} sent at"
    body = {"reason": "sent in error (bench)", "values": {"event": f"Gas leak {run}"}}
    called = time.monotonic()
    async with http.post(
        f"{base}/v1/alerts/{original['id']}/cancel", json=body, headers=approver
    ) as response:
        assert response.status == 201, await response.text()
        cancel = await response.json()
    answered = time.monotonic()

    def corrections() -> list[dict[str, Any]]:
        return [m for m in twilio.messages if marker in m["body"]]

    await wait_for(lambda: corrections(), 60, f"the first correction of run {run}")
    await wait_for(lambda: any(marker in p["text"] for p in x.posts), 60, "the X correction")
    for alert_id in (cancel["id"], original["id"]):
        while await open_deliveries(http, base, alert_id, issuer):  # noqa: ASYNC110 - polls HTTP
            await asyncio.sleep(0.05)
    got = {m["to"] for m in originals()}
    corrected = [m["to"] for m in corrections()]
    first_sms = min(m["at"] for m in corrections())
    first_x = min(p["at"] for p in x.posts if marker in p["text"])
    return {
        "sms_seconds": first_sms - called,
        "x_seconds": first_x - called,
        "answer_seconds": answered - called,
        "reached": len(got),
        "corrected": len(corrected),
        "same_people": sorted(corrected) == sorted(got),
        "stopped": subscribers - len(got),
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with TwilioSimulator(mps=None) as twilio, XSimulator() as x:
        with tempfile.TemporaryDirectory(prefix="bench-correction-") as tmp:
            folder = Path(tmp)
            port = free_port()
            config = write_config(folder, port, twilio, x)
            tokens = {
                role: cli(
                    "token", "create", "--role", role, "--name", role, "--config", str(config)
                )
                for role in ("issuer", "approver")
            }
            import_subscribers(folder, config, args.subscribers)
            server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
                [*CLI, "serve", "--config", str(config)], cwd=ROOT
            )
            try:
                await asyncio.to_thread(wait_for_port, port, 30)
                base = f"http://127.0.0.1:{port}"
                results = []
                async with aiohttp.ClientSession() as http:
                    for number in range(1, args.runs + 1):
                        figures = await one_run(
                            number, http, base, tokens, twilio, x, args.mid, args.subscribers
                        )
                        print(json.dumps({"run": number, **figures}), flush=True)
                        results.append(figures)
                    async with http.get(f"{base}/metrics") as response:
                        metrics = await response.text()
                for line in metrics.splitlines():
                    if line.startswith("broadcaster_correction_first_send_seconds_"):
                        print(line)
            finally:
                server.terminate()
                server.wait(timeout=30)
    return results


def section(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def row(name: str, key: str) -> str:
        values = [r[key] for r in results]
        p50, worst = statistics.median(values), max(values)
        return (
            f"| {name} | {p50 * 1000:.0f} ms | {percentile(values, 0.9) * 1000:.0f} ms "
            f"| {worst * 1000:.0f} ms | ≤ 1 s | {OK[worst <= TARGET_SECONDS]} |"
        )

    same = all(r["same_people"] for r in results)
    reached = [r["reached"] for r in results]
    stopped = [r["stopped"] for r in results]
    return f"""{machine()}

`broadcaster serve` (SQLite) with SMS (3 numbers at 100 segments/s) and X pointed at the
Twilio and X simulators in the bench process; {args.subscribers:,} subscribers. {args.runs} runs:
an alert to all of them, then, once the simulator has accepted {args.mid} of its texts,
`POST /v1/alerts/{{id}}/cancel` (false_alarm). Times from just before the call to the first
correction as each simulator received it (one monotonic clock).

| call → | p50 | p90 | max | target | |
|---|---|---|---|---|---|
{row("first SMS correction", "sms_seconds")}
{row("X correction (reply in the thread)", "x_seconds")}
{row("the cancel's 201 answer", "answer_seconds")}

Original texts reached before the cancel committed: {min(reached)} to {max(reached)} per run;
the rest ({min(stopped)} to {max(stopped)} per run) were stopped. Corrections went to exactly
the numbers the original reached in every run: {"yes" if same else "NO"}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--mid", type=int, default=300, help="texts sent before the cancel")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    body = section(results, args)
    print(format_section(HEADING, body) if args.no_write else write_section(HEADING, body))


if __name__ == "__main__":
    main()
