"""A circuit breaker per channel: stop hammering a provider that keeps failing.

Contract:

- CLOSED: sends go through. `failure_threshold` consecutive transient failures open the
  circuit; any success in between resets the count.
- OPEN: no send starts until `cooldown_seconds` have passed; `wait_ready` sleeps until then.
  Once the cooldown is over the circuit reads as HALF_OPEN.
- HALF_OPEN: exactly one caller of `wait_ready` (the trial) passes; the others wait until
  the trial's outcome is recorded. Success closes the circuit and lets everyone through;
  failure opens it for another cooldown. A trial that ends without an outcome (cancelled
  before it sent) must call `release_trial` so the next waiter becomes the trial.

Every caller that passed `wait_ready` must end with exactly one of `record_success`,
`record_failure` or `release_trial`, otherwise a half-open circuit stays stuck on its trial.
Permanent errors are answers from a healthy provider: callers record them as success.
`on_change` is called with the new state on every transition (a metrics gauge); the
OPEN -> HALF_OPEN transition happens when it is first noticed (a waiter waking at the end
of the cooldown, a `state` read, a recorded outcome). Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Per channel: after `failure_threshold` consecutive transient failures the channel
    opens (pauses) for `cooldown_seconds`; then one trial send is let through (half-open);
    its success closes the circuit, its failure opens it again for another cooldown.
    Permanent errors are answers from a healthy provider: callers record them as success."""

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_seconds: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, not {failure_threshold}")
        if not cooldown_seconds >= 0:
            raise ValueError(f"cooldown_seconds must be >= 0, not {cooldown_seconds}")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._sleep = sleep
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._open_until = 0.0
        self._trial_active = False
        # Replaced by a fresh Event on every change, so waiters that captured the old one
        # all wake and re-check the state.
        self._changed = asyncio.Event()

    @property
    def state(self) -> CircuitState:
        """The current state; OPEN reads as HALF_OPEN once the cooldown has passed."""
        self._refresh()
        return self._state

    def _refresh(self) -> None:
        if self._state is CircuitState.OPEN and self._clock() >= self._open_until:
            self._set_state(CircuitState.HALF_OPEN)

    def _set_state(self, state: CircuitState) -> None:
        if state is self._state:
            return
        self._state = state
        self._notify()
        if self._on_change is not None:
            self._on_change(state)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _open(self) -> None:
        self._open_until = self._clock() + self.cooldown_seconds
        self._trial_active = False
        self._set_state(CircuitState.OPEN)

    async def wait_ready(self) -> None:
        """Return when a send may start: at once when closed; after the cooldown when open;
        in half-open only for the one trial at a time, the others wait for its outcome."""
        while True:
            self._refresh()
            if self._state is CircuitState.CLOSED:
                return
            if self._state is CircuitState.OPEN:
                await self._sleep(self._open_until - self._clock())
                continue
            if not self._trial_active:
                self._trial_active = True
                return
            # Wake on the trial's outcome (or release), then re-check from the top.
            await self._changed.wait()

    def record_success(self) -> None:
        """The provider answered (a send, or a permanent refusal): close the circuit."""
        self._failures = 0
        self._trial_active = False
        # A success from any state closes: the provider is evidently healthy again.
        self._set_state(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """A transient failure: count it; open the circuit at the threshold, or again when
        the circuit was half-open."""
        self._refresh()
        if self._state is CircuitState.HALF_OPEN:
            self._open()
        elif self._state is CircuitState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()
        # While OPEN, failures of sends that were already in flight change nothing: the
        # cooldown is not extended by stragglers.

    def release_trial(self) -> None:
        """The trial ended without an outcome (e.g. cancelled before sending): let the next
        waiter be the trial."""
        if self._trial_active:
            self._trial_active = False
            self._notify()
