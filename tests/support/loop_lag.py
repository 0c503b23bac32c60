"""How late the event loop ran: a watchdog for tests whose claim holds only while the loop
is responsive.

A provider counts a rate window on arrival. Our limiter spaces sends by its safety margin
(SMS in tests: 10 %, ~95 ms a second); a loop stall longer than that (a full garbage
collection late in a large test run, or another process taking the core) holds back an
early send while a later one goes out on time, so the provider sees them closer together
than we sent them and may answer 429. The engine retries that as any transient error. A
test can then claim "no 429" only for a run in which the loop did not stall: `LoopLag`
measures that, from how late a short sleep wakes up.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType


class LoopLag:
    """`async with LoopLag() as lag:` then `lag.worst`: the longest a `tick`-second sleep
    overslept while the block ran, in seconds (the loop was blocked at least that long)."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._watch(), name="loop-lag")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.tick)
            self.worst = max(self.worst, time.monotonic() - started - self.tick)
