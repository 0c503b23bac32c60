"""The cancel fence: no send of an alert starts once an Update or Cancel of it commits.

The store cancels an alert's pending deliveries in the Update/Cancel's own transaction, but
a worker may already hold some of them (claimed, waiting on the rate limiter). Intake
`hold`s the referenced alerts before that transaction and `settle`s them after it; the
dispatcher asks `status` with no await between the answer and its send. So in this process
no send of a referenced alert starts after the commit, and sends that would start while the
commit is in progress wait for its outcome. (Other processes learn from the alert's state in
the store, see the dispatcher's state cache.)

Alerts are named by their CAP reference parts (`alerts.models.reference_parts`), which is how
an Update/Cancel names them before anyone knows their stored ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from enum import Enum

ReferenceParts = tuple[str, str, str]


class FenceStatus(Enum):
    OPEN = "open"
    HELD = "held"
    CLOSED = "closed"


class CancelFence:
    """Per process. `hold` and `settle` are paired; several holds of one alert may overlap."""

    def __init__(self) -> None:
        self._closed: set[ReferenceParts] = set()
        self._holds: dict[ReferenceParts, int] = {}
        self._settled = asyncio.Event()

    def hold(self, keys: Iterable[ReferenceParts]) -> None:
        for key in keys:
            self._holds[key] = self._holds.get(key, 0) + 1

    def settle(self, keys: Iterable[ReferenceParts], *, stopped: bool) -> None:
        """End a hold: `stopped` when the Update/Cancel committed (its alerts send no more)."""
        for key in keys:
            left = self._holds.get(key, 0) - 1
            if left > 0:
                self._holds[key] = left
            else:
                self._holds.pop(key, None)
            if stopped:
                self._closed.add(key)
        # Wake every waiter; each re-reads the status of its own alert.
        self._settled.set()
        self._settled = asyncio.Event()

    def status(self, key: ReferenceParts) -> FenceStatus:
        if key in self._closed:
            return FenceStatus.CLOSED
        if key in self._holds:
            return FenceStatus.HELD
        return FenceStatus.OPEN

    async def wait_settled(self) -> None:
        """Return after the next `settle` (callers then re-check `status`)."""
        await self._settled.wait()
