"""Channel leases: one process at a time sends on a channel, so a provider's rate budget (a
channel's bucket, an SMS number's segments per second) holds across several processes on one
database.

Contract:
- `ChannelLeases.run()` takes or renews this process's lease of every channel it serves, every
  `seconds / 3`, through `Store.acquire_channel_leases` (an atomic upsert on the database's
  clock: a lease that is free, ran out, or is ours). On SQLite (one process) every lease is
  always held.
- `held(channel)` is true until `seconds - margin` after the start of the round trip that
  last granted it, measured on this process's monotonic clock. The database's lease ends
  `seconds` after it ran the statement, so this process stops sending at least `margin`
  (1 s, at most a fifth of the lease) before anyone else may start: two holders' sends never
  share a rolling second, with no reliance on the machines' clocks agreeing.
- A process that dies loses its leases `seconds` after its last renewal: another process
  takes the channel within `seconds + seconds / 3`. `release()` (clean stop) frees them with a
  `margin` cooldown, so the next holder starts about `margin` later.
- `on_gained(channel)` is called when a lease is newly held (the dispatcher wakes that
  channel's claimer).
- Why a table and not `pg_try_advisory_lock`: an advisory lock lives on one session, so a
  process learns it lost the lock (connection dropped, server restarted) only when it next
  uses that connection, while another process may already hold it and be sending; it also
  needs a dedicated connection per process, and breaks behind transaction-pooling proxies.
  A lease with a deadline the holder can check locally fences itself, and is visible in
  `channel_leases` (who sends what).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

from broadcaster.errors import StoreError
from broadcaster.ports import Store

log = logging.getLogger(__name__)


def process_holder() -> str:
    """This process's holder name: host and pid (for people reading `channel_leases`) and a
    random part (a pid is reused; a restarted process must not inherit a lease)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class ChannelLeases:
    def __init__(
        self,
        store: Store,
        channels: Sequence[str],
        *,
        seconds: float,
        holder: str | None = None,
        on_gained: Callable[[str], None] = lambda _channel: None,
    ) -> None:
        self.store = store
        self.channels = list(channels)
        self.seconds = seconds
        self.margin = min(1.0, seconds / 5)
        self.holder = holder or process_holder()
        self._on_gained = on_gained
        self._until: dict[str, float] = {}

    def held(self, channel: str) -> bool:
        until = self._until.get(channel)
        return until is not None and time.monotonic() < until

    async def renew(self) -> set[str]:
        """One round: take or renew every lease we can; returns the channels held."""
        started = time.monotonic()
        try:
            granted = await self.store.acquire_channel_leases(
                self.channels, self.holder, self.seconds
            )
        except StoreError as exc:
            log.warning("renewing channel leases failed: %s", exc)
            return {c for c in self.channels if self.held(c)}
        until = started + self.seconds - self.margin
        for channel in self.channels:
            if channel in granted:
                was_held = self.held(channel)
                self._until[channel] = until
                if not was_held:
                    log.info("holding the lease of channel %s", channel)
                    self._on_gained(channel)
            elif self._until.pop(channel, None) is not None:
                log.warning("lost the lease of channel %s", channel)
        return granted

    async def run(self) -> None:
        """Renew every `seconds / 3` until cancelled. Nothing but cancellation ends it: a
        keeper that died would let every lease run out and this process stop sending for
        good (a chaos test found one such error the store did not translate)."""
        while True:
            try:
                await self.renew()
            except Exception:  # the loop must outlive any one failure (logged with its trace)
                log.exception("renewing channel leases failed unexpectedly; retrying")
            await asyncio.sleep(self.seconds / 3)

    async def release(self) -> None:
        """Give up every lease held (clean stop); anyone may take them after `margin`."""
        held = [c for c in self.channels if c in self._until]
        self._until.clear()
        if held:
            with contextlib.suppress(StoreError):
                await self.store.release_channel_leases(held, self.holder, self.margin)
