"""A webhook receiver on loopback for tests and benchmarks: records what it accepts and fails
on demand.

Contract, for every POST on any path, in this order:
1. With `secret` set, a missing or wrong `X-Broadcaster-Signature` (checked with
   `adapters.webhook.verify`) answers 401 and counts `bad_signature`.
2. `delay_seconds` is slept (a slow receiver); then, with `spike_ratio`, a latency spike of a
   random 0..`spike_seconds` more (drawn from its own seeded generator).
3. A path `/status/<code>` answers `<code>` (429 with Retry-After) and counts `forced_status`:
   the way to get any status (404, 410 ...) from a test.
4. Statuses queued by `fail_next(n, status)` are answered first, one per request.
5. A seeded random draw: with `fail_ratio` 503, with `rate_limit_ratio` 429 +
   `Retry-After: <retry_after>`; neither is recorded as accepted.
6. Otherwise the request is accepted: appended to `received`, counted `accepted`. Then, with
   `lose_answer_ratio`, the connection is closed without an answer (`answer_lost`): the
   sender cannot know it got through, exactly the case that makes duplicates. Else 200 with
   `X-Request-Id: r<n>` (n counts accepted requests from 1).
Counters for 503 and 429 are `failed_5xx` and `rate_limited` (fail_next's statuses too).
Same seed, same requests in the same order -> same decisions.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from adapters.webhook import verify

COUNTERS = ("accepted", "failed_5xx", "rate_limited", "answer_lost", "bad_signature")


@dataclass(frozen=True, slots=True)
class Received:
    """One accepted request."""

    path: str
    delivery_id: str | None
    event: str | None
    at: float  # time.monotonic() when it was accepted
    body: bytes


class Recorder:
    """An aiohttp server on 127.0.0.1:<free port> that records each POST it accepts."""

    def __init__(
        self,
        *,
        secret: bytes | None = None,
        fail_ratio: float = 0.0,
        rate_limit_ratio: float = 0.0,
        retry_after: float = 1.0,
        lose_answer_ratio: float = 0.0,
        delay_seconds: float = 0.0,
        spike_ratio: float = 0.0,
        spike_seconds: float = 0.0,
        seed: int = 1,
    ) -> None:
        self._secret = secret
        self.fail_ratio = fail_ratio
        self.rate_limit_ratio = rate_limit_ratio
        self.retry_after = retry_after
        self.lose_answer_ratio = lose_answer_ratio
        self.delay_seconds = delay_seconds
        self.spike_ratio = spike_ratio
        self.spike_seconds = spike_seconds
        self._random = random.Random(seed)
        self._spikes = random.Random(seed + 1)
        self._forced: deque[int] = deque()
        self.received: list[Received] = []
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        return f"Recorder(url={self.url if self._port else None!r}, counts={self.counts!r})"

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("Recorder is not started")
        return f"http://127.0.0.1:{self._port}"

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next `n` requests (after the signature check) with `status`."""
        self._forced.extend([status] * n)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{path:.*}", self._handle)
        # No access log: benchmarks push thousands of requests through this server.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        # Port 0: the kernel picks a free port, with no window for another process to take it.
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _status(self, status: int) -> web.Response:
        if status == 429:
            self._count("rate_limited")
            return web.Response(status=429, headers={"Retry-After": f"{self.retry_after:g}"})
        if status >= 500:
            self._count("failed_5xx")
        return web.Response(status=status)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self._secret is not None and not verify(
            self._secret,
            request.headers.get("X-Broadcaster-Timestamp", ""),
            request.headers.get("X-Broadcaster-Signature", ""),
            body,
            now=time.time(),
        ):
            self._count("bad_signature")
            return web.Response(status=401)
        if self.delay_seconds > 0:
            await asyncio.sleep(self.delay_seconds)
        if self.spike_ratio > 0 and self._spikes.random() < self.spike_ratio:
            await asyncio.sleep(self._spikes.uniform(0, self.spike_seconds))
        forced = request.match_info["path"].split("/")
        if len(forced) == 2 and forced[0] == "status" and forced[1].isdigit():
            self._count("forced_status")
            return self._status(int(forced[1]))
        if self._forced:
            return self._status(self._forced.popleft())
        roll = self._random.random()
        if roll < self.fail_ratio:
            return self._status(503)
        if roll < self.fail_ratio + self.rate_limit_ratio:
            return self._status(429)
        self.received.append(
            Received(
                path=request.path,
                delivery_id=request.headers.get("X-Broadcaster-Delivery"),
                event=request.headers.get("X-Broadcaster-Event"),
                at=time.monotonic(),
                body=body,
            )
        )
        self._count("accepted")
        if self.lose_answer_ratio > 0 and self._random.random() < self.lose_answer_ratio:
            self._count("answer_lost")
            transport = request.transport
            if transport is not None:
                transport.close()
            # Returning (not raising) matters: aiohttp then fails to write to the closed
            # transport, treats it as a client disconnect and logs nothing; an exception
            # here would be logged as an "Error handling request" with a 500.
            return web.Response(status=200)
        return web.Response(status=200, headers={"X-Request-Id": f"r{self.counts['accepted']}"})


__all__ = ["COUNTERS", "Received", "Recorder"]
