"""Triage benchmark: the classifier on one core, and signed inbound SMS webhooks end to end.

1. `classify()` over the dev set's texts (repeated to >= 20,000 calls) in a child process
   pinned to one CPU, and the `broadcaster triage classify` CLI end to end on the same CPU.
   Target: >= 5,000 replies/s in process.
2. `broadcaster serve` (own process, SQLite, `[channels.sms]` with the Twilio simulator's
   credentials, `http.public_url` the generator's URL; nothing is sent) gets N distinct inbound
   SMS forms, signed beforehand as Twilio signs them, from aiohttp in a process of its own at
   a fixed concurrency, a responder's `/v1/replies/stream` open. Every message must then be
   stored once (MessageSids in the store file), triaged as `classify()` triages it (`GET
   /v1/replies`), counted in `broadcaster_replies_total` and streamed. Target: >= 1,000/s,
   p99 <= 100 ms. A round of `HELP` messages (signature and TwiML only) prices the HTTP side.

Each part runs `--rounds` times (fresh processes), the best shown; `--profile` adds a round
with the service under cProfile and prints its top functions.

    python bench/triage.py [--messages 10000] [--concurrency 50] [--rounds 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import uvloop
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository

from adapters.simulators import twilio as sim
from bench.intake import CLI, Server
from bench.results import OK, ROOT, cpu_seconds, format_section, machine, percentile, write_section
from broadcaster.triage import Clusterer, classify
from tests.support.broker import free_port, wait_for_port

HEADING = "Triage (bench/triage.py)"
DEV = ROOT / "tests" / "data" / "triage" / "dev.jsonl"
TEXTS = [json.loads(line)["text"] for line in DEV.read_text().splitlines() if line.strip()]
CALLS = 20_000
SENDERS = 3_000
FORM = {"AccountSid": sim.DEFAULT_ACCOUNT_SID, "ApiVersion": sim.API_VERSION, "NumMedia": "0"}
FORM |= {"SmsStatus": "received", "To": "+15005550006"}  # a Twilio inbound form's other fields
HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}


def classify_rate(cpu: int, calls: int) -> dict[str, float]:
    """In a child process pinned to `cpu`: classify() replies/s over the dev texts; and, for
    the webhook's breakdown, µs per text of clustering and of twilio's signature check."""
    os.sched_setaffinity(0, {cpu})
    texts = TEXTS * -(-calls // len(TEXTS))
    found = list(map(classify, TEXTS))  # warm up: the model loaded, the expressions compiled
    started = time.perf_counter()
    for text in texts:
        classify(text)
    out = {"rate": len(texts) / (time.perf_counter() - started)}
    clusterer, started = Clusterer(), time.perf_counter()
    for text, triage in zip(TEXTS, found, strict=True):
        clusterer.assign(text, triage.entities)
    out["cluster_us"] = (time.perf_counter() - started) / len(TEXTS) * 1e6
    forms = [dict(parse_qsl(m[3])) for m in inbound("http://127.0.0.1:1/hook", 2000)]
    validator, started = RequestValidator(sim.DEFAULT_AUTH_TOKEN), time.perf_counter()
    for form in forms:  # as the hook checks: the URL without and with its port
        [validator.compute_signature(url, form) for url in ("http://a/h", "http://a:80/h")]
    out["signature_us"] = (time.perf_counter() - started) / len(forms) * 1e6
    return out


def run_cli(*args: str, stdin: str = "", cpu: int | None = None) -> str:
    """What `broadcaster ARGS` printed (pinned to `cpu` with taskset when given)."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return subprocess.run(
        [*pin, *CLI, *args], input=stdin, capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout


def cli_seconds(cpu: int, lines: list[str]) -> float:
    """`broadcaster triage classify` over `lines`, end to end; each line must be answered."""
    started = time.perf_counter()
    out = run_cli("triage", "classify", stdin="".join(lines), cpu=cpu)
    assert out.count("\n") == len(lines), (out.count("\n"), len(lines))
    return time.perf_counter() - started


class SmsServer(Server):
    """bench/intake.py's Server, with SMS configured so Twilio signatures validate."""

    def __init__(self, folder: Path, prefix: tuple[str, ...] = ()) -> None:
        super().__init__(folder)
        self.prefix = prefix  # e.g. cProfile
        self.db = folder / "bench.db"
        self.url = f"http://127.0.0.1:{self.port}"
        self.config.write_text(
            f'[http]\nport = {self.port}\npublic_url = "{self.url}"\n'
            f'[database]\nurl = "sqlite:///{self.db}"\n[logging]\nlevel = "WARNING"\n'
            f'[channels.sms]\naccount_sid = "{sim.DEFAULT_ACCOUNT_SID}"\n'
            f'auth_token = "{sim.DEFAULT_AUTH_TOKEN}"\nfrom_numbers = ["+15005550006"]\n'
            f'api_base = "http://127.0.0.1:{free_port()}"\n'  # nothing listens: no sends
        )

    def responder_token(self) -> str:
        command = ("token", "create", "--role", "responder", "--name", "bench", "--config")
        return run_cli(*command, str(self.config)).strip().splitlines()[-1]

    def start(self) -> None:
        command = [sys.executable, *self.prefix, *CLI[1:], "serve", "--config", str(self.config)]
        self.process = subprocess.Popen(command, cwd=ROOT)
        wait_for_port(self.port, timeout=30)


def inbound(url: str, count: int, text: str | None = None) -> list[tuple[str, ...]]:
    """`count` distinct inbound messages (Body `text`, else the dev texts) as Twilio posts
    them: (sid, from, body, form, signature)."""
    validator, messages = RequestValidator(sim.DEFAULT_AUTH_TOKEN), []
    for n in range(count):
        sid, phone, body = f"SM{n:032x}", f"+1202555{n % SENDERS:04d}", TEXTS[n % len(TEXTS)]
        body = body if text is None else text
        params = {**FORM, "Body": body, "From": phone, "NumSegments": str(sim.segments(body))}
        params |= {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid}
        messages.append(
            (sid, phone, body, urlencode(params), validator.compute_signature(url, params))
        )
    return messages


def generate(url: str, requests: list[tuple[str, str]], concurrency: int) -> dict[str, Any]:
    """In a process of its own: POST every (form, signature) at `concurrency`; the figures."""
    return uvloop.run(_generate(url, requests, concurrency))


async def _generate(url: str, requests: list[tuple[str, str]], concurrency: int) -> Any:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    queue = iter(requests)

    async def worker(session: aiohttp.ClientSession) -> None:
        for form, signature in queue:  # one iterator shared by the workers
            headers = {**HEADERS, "X-Twilio-Signature": signature}
            started = time.perf_counter()
            try:
                async with session.post(url, data=form, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        health = url.replace("/hooks/twilio/sms", "/healthz")
        await asyncio.gather(*(s.get(health) for _ in range(concurrency)))  # connections up
        cpu, started = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {
        "seconds": elapsed,
        "rps": len(requests) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "statuses": dict(statuses),
        "generator_cpu": cpu / elapsed,
    }


async def listen(base: str, token: str, seen: list[int], count: int) -> None:
    """A responder's stream: counts `created` reply events into seen[0], until `count`."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session,
        session.get(f"{base}/v1/replies/stream", headers=headers) as response,
    ):
        buffer = b""
        async for chunk in response.content.iter_any():
            frames = (buffer + chunk).split(b"\n\n")
            buffer = frames.pop()
            seen[0] += sum(b'"event":"created"' in frame for frame in frames)
            if seen[0] >= count:
                return


async def stored_replies(session: aiohttp.ClientSession, base: str, token: str) -> list[Any]:
    """Every reply, through the responder API (pages of 500, newest first)."""
    headers, url, replies = {"Authorization": f"Bearer {token}"}, "/v1/replies?limit=500", []
    while url:
        async with session.get(base + url, headers=headers) as response:
            page = await response.json()
        replies += page["replies"]
        url = page.get("next") if page["replies"] else None
    return replies


def counted(metrics: str) -> dict[str, float]:
    """broadcaster_replies_total{source="sms"} per category, from /metrics."""
    out: dict[str, float] = {}
    for labels, value in re.findall(r"^broadcaster_replies_total\{([^}]*)\} (\S+)$", metrics, re.M):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("source") == "sms":
            out[fields.get("category", "?")] = float(value)
    return out


async def webhook_round(
    folder: Path, count: int, concurrency: int, prefix: tuple[str, ...] = (), text: str = ""
) -> dict[str, Any]:
    """One fresh service, `count` webhooks, then the checks (none for a keyword `text`)."""
    server = SmsServer(folder, prefix)
    token = server.responder_token()
    hook = f"{server.url}/hooks/twilio/sms"
    messages = inbound(hook, count, text or None)
    expected = {
        (p, b.strip()): sorted(classify(b.strip()).categories) for _, p, b, _, _ in messages
    }
    server.start()
    assert server.process is not None
    seen = [0]
    try:
        stream = asyncio.create_task(listen(server.url, token, seen, count))
        await asyncio.sleep(0.5)
        cpu = cpu_seconds(server.process.pid)
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            work = [(form, signature) for *_, form, signature in messages]
            run = await asyncio.get_running_loop().run_in_executor(
                pool, generate, hook, work, concurrency
            )
        run["server_cpu_us"] = (cpu_seconds(server.process.pid) - cpu) / count * 1e6
        run["server_rss_mb"] = server.peak_rss_mb()
        if text:  # a keyword: answered, nothing stored
            stream.cancel()
            return run
        with contextlib.suppress(TimeoutError):  # the stream may trail the answers a little
            await asyncio.wait_for(stream, 30)
        async with aiohttp.ClientSession() as session:
            replies = await stored_replies(session, server.url, token)
            async with session.get(f"{server.url}/metrics") as response:
                metrics = counted(await response.text())
    finally:
        server.stop()
    with sqlite3.connect(server.db) as db:
        sids = Counter(s for (s,) in db.execute("SELECT external_id FROM replies"))
    sent = {sid for sid, *_ in messages}
    want = Counter(c for cats in expected.values() for c in cats or ["none"])
    run |= {
        "once": sum(sids[s] == 1 for s in sent),
        "extra": sum(sids.values()) - sum(sids[s] for s in sent),
        "api": len(replies),
        "triaged": sum(expected.get((r["sender"], r["text"])) == r["categories"] for r in replies),
        "with_category": sum(bool(r["categories"]) for r in replies),
        "metrics_ok": metrics == {c: float(n) for c, n in want.items()},
        "metrics_total": sum(metrics.values()),
        "metrics_want": sum(want.values()),
        "streamed": seen[0],
    }
    return run


def profile_round(folder: Path, count: int, concurrency: int) -> None:
    """One more webhook round with the service under cProfile; prints the top functions."""
    import pstats

    profile = folder / "serve.prof"
    asyncio.run(webhook_round(folder, count, concurrency, ("-m", "cProfile", "-o", str(profile))))
    for order in ("tottime", "cumulative"):
        pstats.Stats(str(profile)).sort_stats(order).print_stats(30)


def section(classified: Any, cli: Any, hooks: Any, helps: Any, args: Any, load: str) -> str:
    inproc, n, calls = classified["rate"], args.messages, len(TEXTS) * -(-CALLS // len(TEXTS))
    hook = max(hooks, key=lambda h: h["rps"])
    rounds = "; ".join(f"{h['rps']:.0f}/s, p99 {h['p99_ms']:.0f} ms" for h in hooks)
    ok_rate = hook["rps"] >= 1000 and hook["p99_ms"] <= 100
    errors = sum(v for k, v in hook["statuses"].items() if k != 200)
    once = hook["once"] == n and hook["extra"] == 0 and hook["api"] == n
    published = hook["metrics_ok"] and hook["streamed"] == n
    return f"""Written by `bench/triage.py` on {time.strftime("%Y-%m-%d %H:%M %Z")}.
Machine: {machine()}. Load average (1, 5, 15 min) at start and end: {load}
(other work shared the machine): each part ran {args.rounds} times, the best round is shown.

`classify()`: the {len(TEXTS)} dev-set texts repeated to {calls} calls after a warm-up pass, in
a child process pinned to one CPU; the CLI (which also clusters) reads them as JSON lines on
that CPU. Webhooks: `broadcaster serve` on SQLite; {n} distinct inbound SMS (From over
{SENDERS} numbers, Body the dev texts) signed beforehand with twilio's `RequestValidator`,
POSTed by aiohttp (its own process, same 2 cores) over {args.concurrency} connections while a
responder's `/v1/replies/stream` is open.

| benchmark | figure | target | |
|---|---|---|---|
| `classify()`, one core, in process | {inproc:.0f} replies/s ({1e6 / inproc:.0f} µs/reply) \
| ≥ 5,000 replies/s | {OK[inproc >= 5000]} |
| `broadcaster triage classify` CLI, {calls} lines, end to end | {cli["rate"]:.0f} replies/s \
({cli["seconds"]:.2f} s; start-up with one line {cli["startup"]:.2f} s, so \
{calls / (cli["seconds"] - cli["startup"]):.0f} replies/s after it) | | |
| signed inbound SMS webhooks `POST /hooks/twilio/sms`, {n} over {args.concurrency} \
connections | {hook["rps"]:.0f} requests/s ({hook["seconds"]:.2f} s), p50 {hook["p50_ms"]:.1f} \
ms, p99 {hook["p99_ms"]:.1f} ms, max {hook["max_ms"]:.0f} ms, {errors} not answered 200 \
(rounds: {rounds}) | ≥ 1,000/s, p99 ≤ 100 ms | {OK[ok_rate and not errors]} |
| the same, every Body `HELP` (signature check, TwiML answer; nothing stored or triaged) \
| {helps["rps"]:.0f} requests/s, p50 {helps["p50_ms"]:.1f} ms, p99 {helps["p99_ms"]:.1f} ms; \
service CPU {helps["server_cpu_us"]:.0f} µs per request | | |
| stored exactly once | {hook["once"]} of {n} MessageSids stored once, {hook["extra"]} other \
rows; {hook["api"]} replies in `GET /v1/replies` | {n}, once each | {OK[once]} |
| triaged | {hook["triaged"]} of {n} stored with the categories `classify()` gives their text \
({hook["with_category"]} with a category) | {n} | {OK[hook["triaged"] == n]} |
| published | `broadcaster_replies_total{{source="sms"}}` {hook["metrics_total"]:.0f} (expected \
{hook["metrics_want"]}, per category {"equal" if hook["metrics_ok"] else "NOT equal"}); \
{hook["streamed"]} `created` events on `/v1/replies/stream` | {n} | {OK[published]} |
| service CPU per webhook (all its threads) | {hook["server_cpu_us"]:.0f} µs, of which \
`classify()` {1e6 / inproc:.0f} µs, clustering (`Clusterer.assign`) \
{classified["cluster_us"]:.0f} µs, twilio's signature check (two HMACs, the worst case: \
a valid request needs only the first) \
{classified["signature_us"]:.0f} µs (each measured alone on one core); the generator used \
{hook["generator_cpu"]:.0%} of a core | | |
| service peak RSS | {hook["server_rss_mb"]:.0f} MB | | |
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="and a cProfile'd round")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    loads = [os.getloadavg()]
    cpu = max(os.sched_getaffinity(0))
    lines = [json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)]
    lines *= -(-CALLS // len(TEXTS))
    rates, clis, hooks, helps = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                rates.append(pool.submit(classify_rate, cpu, CALLS).result())
            seconds, startup = cli_seconds(cpu, lines), cli_seconds(cpu, lines[:1])
            clis.append({"seconds": seconds, "rate": len(lines) / seconds, "startup": startup})
            for runs, text in ((hooks, ""), (helps, "HELP")):
                (folder := Path(tmp) / f"round{r}{text}").mkdir()
                runs.append(
                    asyncio.run(webhook_round(folder, args.messages, args.concurrency, text=text))
                )
            print(f"round {r + 1}: {rates[-1]}, CLI {clis[-1]},\n{hooks[-1]},\nHELP {helps[-1]}")
        if args.profile:
            (folder := Path(tmp) / "profile").mkdir()
            profile_round(folder, args.messages, args.concurrency)
    loads.append(os.getloadavg())
    load = " then ".join(", ".join(f"{x:.2f}" for x in avg) for avg in loads)
    best = [max(runs, key=lambda run: run["rate"]) for runs in (rates, clis)]
    body = section(*best, hooks, max(helps, key=lambda h: h["rps"]), args, load)
    print(format_section(HEADING, body) if args.no_write else write_section(HEADING, body))


if __name__ == "__main__":
    main()
