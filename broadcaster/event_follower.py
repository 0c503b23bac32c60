"""The shared half of `Publication` (alert events) and `ReplyFeed` (reply events): following
an append-only event table in seq order, each event once.

Contract:
- `run()` calls `poll()` every `poll_seconds` until cancelled; `wake()` (after a local commit,
  or a PostgreSQL notification) makes the next poll come at once, but never sooner than
  `MIN_POLL_SECONDS` after the previous one started; a StoreError is logged and the loop
  goes on.
- A missing seq (a PostgreSQL identity handed out but not yet committed) holds later events
  back until it fills or `gap_timeout` passes (a rolled-back insert never fills it). So a
  client that resumes from the last id it saw misses nothing.
- `version` is the seq of the last event handed out; `wait_beyond(seq)` returns once it
  passes `seq`.
Subclasses implement `start()` and `poll()`, using `_ready_count` and `_advance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from broadcaster.errors import StoreError

log = logging.getLogger(__name__)

# The shortest time between two polls; what it adds to an event's way out (SSE, feeds).
MIN_POLL_SECONDS = 0.02


class EventFollower:
    # What the log calls the events when a poll fails.
    events_name = "events"

    def __init__(self, *, poll_seconds: float, gap_timeout: float) -> None:
        self._poll_seconds = poll_seconds
        self._gap_timeout = gap_timeout
        self._version = 0
        self._gap_since: float | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._started = False

    @property
    def version(self) -> int:
        return self._version

    async def start(self) -> None:
        raise NotImplementedError

    async def poll(self) -> Sequence[object]:
        raise NotImplementedError

    def wake(self, *_: object) -> None:
        """Poll now: something was committed."""
        self._wake.set()

    async def run(self) -> None:
        """Poll for new events until cancelled; a store error is logged and retried."""
        if not self._started:
            await self.start()
        while True:
            started = time.monotonic()
            try:
                await self.poll()
            except StoreError as exc:
                log.warning("could not read %s: %s", self.events_name, exc)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as its timeout fires (gh-86296), and this loop would
            # then outlive the service's shutdown, which awaits it (seen: a hung test).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()
            # A burst of commits (intake commits a batch every few ms) is read in one poll,
            # not one poll (two reads) per commit: at most one poll per MIN_POLL_SECONDS.
            rest = MIN_POLL_SECONDS - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)
            self._wake.clear()

    async def wait_beyond(self, seq: int) -> None:
        """Return once `version` > `seq` (callers bound the wait with `asyncio.timeout`)."""
        while self._version <= seq:
            await self._changed.wait()

    def _ready_count(self, seqs: Sequence[int]) -> int:
        """How many of `seqs` (ascending, all above `version`) may be handed out now: those
        that continue `version` without a gap, or run past a gap given up on."""
        expected = self._version + 1
        count = 0
        for seq in seqs:
            if seq != expected and not self._gap_expired():
                break  # hold back until the missing seq commits or is given up on
            count += 1
            expected = seq + 1
        return count

    def _advance(self, handed_to: int | None, last_seen: int | None) -> None:
        """After a poll: `version` moves to `handed_to` (None: nothing was handed out), the
        gap timer runs while events up to `last_seen` wait beyond it, and waiters wake."""
        if handed_to is not None:
            self._version = handed_to
            self._gap_since = None
        if last_seen is not None and last_seen > self._version:
            if self._gap_since is None:
                self._gap_since = time.monotonic()
        else:
            self._gap_since = None
        if handed_to is not None:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def _gap_expired(self) -> bool:
        return (
            self._gap_since is not None and time.monotonic() - self._gap_since >= self._gap_timeout
        )
