"""What the child processes of bench/fanout.py run: the loopback sink (`--sink`), and the
engine and bare client runs (`--run engine|bare`), each of which prints its figures as JSON.

Not a benchmark of its own: bench/fanout.py starts these, one process each.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import re
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp

from adapters.server import tune_collector
from adapters.store.sqlite import SqliteStore
from adapters.webhook import WebhookChannel, sign
from alerts.models import format_cap_time
from alerts.render import render_text
from alerts.requests import AlertRequest
from bench.results import cpu_seconds, peak_rss_mb, rss_mb, thread_cpu_seconds
from broadcaster.config import DeliverySettings, WebhookReceiver
from broadcaster.dispatcher import Dispatcher, DispatchPolicy
from broadcaster.fence import CancelFence
from broadcaster.metrics import Metrics
from broadcaster.planner import delivery_priority
from broadcaster.ports import (
    AlertState,
    ChannelLimits,
    ClaimedDelivery,
    DeliveryOutcome,
    DeliveryState,
    NewAlert,
    PlannedDelivery,
    SendReceipt,
)

SECRET = "bench-fanout-secret"  # noqa: S105 - a benchmark's receiver secret

# --- the sink ---------------------------------------------------------------------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class _SinkProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, POSTs with Content-Length only: 200 to each request at once."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        answers = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            match = _LENGTH.search(buffer, 0, end + 2)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(buffer) < total:
                break
            buffer = buffer[total:]
            answers += 1
        self._buffer = buffer
        if answers and self._transport is not None:
            self._transport.write(_OK * answers)


async def aiohttp_sink(port: int) -> None:
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("POST", "/{path:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


async def raw_sink(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_SinkProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


# --- what both runs send ----------------------------------------------------------------


def bench_alert() -> Any:
    request = AlertRequest(
        event="Gas leak",
        headline="Avoid Market St: gas leak",
        description="A gas main has ruptured on Market St.",
        instruction="Keep away from Market St until further notice.",
        severity="Severe",
        urgency="Immediate",
        certainty="Observed",
        category=["Safety"],
        areas=[
            {"description": "Market St", "circle": {"lat": 51.5, "lon": -0.12, "radius_km": 0.5}}
        ],
        channels=["webhook"],
    )
    return request.to_alert(
        identifier=uuid.uuid4().hex,
        sender="bench@localhost",
        sent=datetime.now(UTC).replace(microsecond=0),
    )


def urls(sink_url: str, count: int) -> list[str]:
    return [f"{sink_url}/hook/{i}" for i in range(count)]


# --- the engine run ---------------------------------------------------------------------


class MemoryOutbox:
    """For the breakdown only: the outbox half of the Store port in memory (no SQL, no
    thread), alerts read from the real store. What the engine costs without SQLite."""

    def __init__(self, store: SqliteStore, alert_id: str, recipients: list[str]) -> None:
        self._store = store
        now = datetime.now(UTC)
        self._pending = deque(
            ClaimedDelivery(i, alert_id, "webhook", url, 0, 1, now, None)
            for i, url in enumerate(recipients, start=1)
        )
        self._sending: set[int] = set()
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim_deliveries(
        self, channel: str, *, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        await asyncio.sleep(0)
        claimed = [self._pending.popleft() for _ in range(min(limit, len(self._pending)))]
        self._sending.update(d.id for d in claimed)
        return claimed

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        await asyncio.sleep(0)
        for outcome in outcomes:
            self._sending.discard(outcome.delivery_id)
            self.sent += outcome.state is DeliveryState.SENT

    async def release_deliveries(self, delivery_ids: Sequence[int], now: datetime) -> None:
        return None

    async def extend_leases(self, delivery_ids: Sequence[int], lease_until: datetime) -> None:
        return None

    async def reclaim_expired_leases(self, now: datetime) -> int:
        return 0

    async def expire_deliveries(self, now: datetime) -> int:
        return 0

    async def count_open_deliveries(self, channels: Sequence[str] | None = None) -> int:
        return len(self._pending) + len(self._sending)


class NullChannel:
    """For the breakdown only: a channel whose send succeeds at once, without I/O."""

    name = "webhook"

    def __init__(self, concurrency: int) -> None:
        self.limits = ChannelLimits(concurrency=concurrency)

    def audience(self, alert: Any) -> list[str]:
        return []

    def cost(self, alert: Any, recipient: str) -> int:
        return 1

    async def send(self, message: Any) -> SendReceipt:
        await asyncio.sleep(0)
        return SendReceipt()

    async def close(self) -> None:
        return None


async def run_engine(
    sink_url: str,
    count: int,
    concurrency: int,
    profile_path: str | None,
    *,
    outbox: str = "sqlite",
    channel_kind: str = "webhook",
) -> dict[str, Any]:
    targets = urls(sink_url, count)
    alert = bench_alert()
    with tempfile.TemporaryDirectory() as folder:
        store = await SqliteStore.open(Path(folder) / "fanout.db")
        try:
            await store.migrate()
            new = NewAlert(
                id=uuid.uuid4().hex,
                alert=alert,
                channels=("webhook",),
                source="bench",
                state=AlertState.ACCEPTED,
                created_by=None,
                idempotency_key=None,
                body_hash="-",
                cap_xml=None,
                received_at=datetime.now(UTC),
                deliveries=tuple(PlannedDelivery("webhook", url) for url in targets)
                if outbox == "sqlite"
                else (),
                priority=delivery_priority(alert),
            )
            started = time.perf_counter()
            await store.insert_alert(new)
            insert_seconds = time.perf_counter() - started
            new = replace(new, deliveries=())  # intake lets go of the plan once stored
            memory = MemoryOutbox(store, new.id, targets) if outbox == "memory" else None

            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            async with aiohttp.ClientSession(connector=connector) as session:
                channel: Any
                if channel_kind == "webhook":
                    receivers = [WebhookReceiver(url=url, secret=SECRET) for url in targets]  # type: ignore[arg-type]
                    channel = WebhookChannel(
                        receivers, session, limits=ChannelLimits(concurrency=concurrency)
                    )
                    del receivers
                else:
                    channel = NullChannel(concurrency)
                dispatcher = Dispatcher(
                    memory or store,  # type: ignore[arg-type]
                    {"webhook": channel},
                    policy=DispatchPolicy.from_settings(DeliverySettings(concurrency=concurrency)),
                    metrics=Metrics(),
                    fence=CancelFence(),
                )
                profiler = cProfile.Profile() if profile_path else None
                tune_collector()  # as `broadcaster serve` does once it has started
                setup_rss, setup_peak = rss_mb(), peak_rss_mb()
                threads_before = thread_cpu_seconds()
                cpu_before = cpu_seconds()
                started = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                await dispatcher.drain()
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(profile_path)
                seconds = time.perf_counter() - started
                cpu = cpu_seconds() - cpu_before
                threads = thread_cpu_seconds()
            if memory is not None:
                counts = {"sent": memory.sent}
            else:
                counts = (await store.delivery_counts(new.id)).get("webhook", {})
        finally:
            await store.close()
    # The event loop runs on the main thread (its id is the process id); the others are
    # aiosqlite's connection threads (the writer does the outbox's SQL) and uvloop's pool.
    loop_cpu = threads.get(os.getpid(), 0.0) - threads_before.get(os.getpid(), 0.0)
    return {
        "seconds": seconds,
        "per_second": count / seconds,
        "cpu_seconds": cpu,
        "loop_us_per_delivery": loop_cpu / count * 1e6,
        "other_threads_us_per_delivery": (cpu - loop_cpu) / count * 1e6,
        "rss_before_drain_mb": setup_rss,
        "peak_rss_before_drain_mb": setup_peak,
        "insert_seconds": insert_seconds,
        "counts": counts,
        "peak_rss_mb": peak_rss_mb(),
    }


# --- the bare client run ----------------------------------------------------------------


async def run_bare(sink_url: str, count: int, concurrency: int) -> dict[str, Any]:
    tune_collector()  # the same collector settings as the engine run
    targets = urls(sink_url, count)
    alert = bench_alert()
    alert_id = uuid.uuid4().hex
    event = f"alert.{alert.msg_type.value.lower()}"

    def dump(value: object) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    # The webhook channel's body, spliced the same way: only the delivery id changes.
    head = f'{{"event":{dump(event)},"alert_id":{dump(alert_id)},"delivery_id":'.encode()
    tail = (
        f',"status":{dump(alert.status.value)},"msg_type":{dump(alert.msg_type.value)}'
        f',"severity":{dump(alert.severity.value)},"urgency":{dump(alert.urgency.value)}'
        f',"sent":{dump(format_cap_time(alert.sent))},"text":{dump(render_text(alert))}'
        f',"alert":{alert.model_dump_json()}}}'
    ).encode()
    secret = SECRET.encode()
    timeout = aiohttp.ClientTimeout(total=10.0)
    statuses: dict[int, int] = {}
    work = iter(enumerate(targets, start=1))

    async def worker(session: aiohttp.ClientSession) -> None:
        for delivery_id, url in work:
            body = b'%s%d,"attempt":%d%s' % (head, delivery_id, 1, tail)
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Broadcaster-Event": event,
                "X-Broadcaster-Delivery": str(delivery_id),
                "X-Broadcaster-Timestamp": str(timestamp),
                "X-Broadcaster-Signature": sign(secret, timestamp, body),
            }
            async with session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector) as session:
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
    return {
        "seconds": seconds,
        "per_second": count / seconds,
        "cpu_seconds": cpu,
        "us_per_request": cpu / count * 1e6,
        "ok": statuses.get(200, 0),
        "body_bytes": len(head) + len(tail) + 16,
        "peak_rss_mb": peak_rss_mb(),
    }
