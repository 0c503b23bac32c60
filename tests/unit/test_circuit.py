"""Circuit breaker: opening, cooldown, the single half-open trial, and state callbacks."""

from __future__ import annotations

import asyncio

import pytest

from broadcaster.circuit import CircuitBreaker, CircuitState


class FakeClock:
    """A monotonic clock that only moves when told to; its sleep advances it and yields."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # Yield first, then move the clock to this sleeper's deadline: sleepers wake in
        # order, and concurrent ones to the same deadline do not add up their sleeps.
        deadline = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, deadline)


def breaker(
    clock: FakeClock, changes: list[CircuitState] | None = None, threshold: int = 3
) -> CircuitBreaker:
    return CircuitBreaker(
        threshold,
        30.0,
        clock=clock,
        sleep=clock.sleep,
        on_change=changes.append if changes is not None else None,
    )


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_opens_after_threshold_consecutive_failures() -> None:
    """N consecutive failures open the circuit; N-1 then a success do not."""
    clock = FakeClock()
    cb = breaker(clock)
    cb.record_failure()
    cb.record_failure()
    cb.record_success()
    cb.record_failure()
    cb.record_failure()
    assert cb.state is CircuitState.CLOSED
    cb.record_failure()
    assert cb.state is CircuitState.OPEN


def test_open_reads_half_open_after_cooldown() -> None:
    """OPEN turns into HALF_OPEN once the cooldown has passed, not before."""
    clock = FakeClock()
    cb = breaker(clock, threshold=1)
    cb.record_failure()
    clock.now = 29.9
    assert cb.state is CircuitState.OPEN
    clock.now = 30.0
    assert cb.state is CircuitState.HALF_OPEN


async def test_wait_ready_passes_at_once_when_closed() -> None:
    """A closed circuit does not wait or sleep."""
    clock = FakeClock()
    cb = breaker(clock)
    await cb.wait_ready()
    await cb.wait_ready()
    assert clock.sleeps == []


async def test_cooldown_then_one_trial_while_others_wait() -> None:
    """While open, callers sleep out the cooldown; then exactly one trial passes."""
    clock = FakeClock()
    cb = breaker(clock, threshold=1)
    cb.record_failure()
    passed: list[int] = []

    async def caller(i: int) -> None:
        await cb.wait_ready()
        passed.append(i)

    tasks = [asyncio.create_task(caller(i)) for i in range(4)]
    await settle()
    assert clock.now == pytest.approx(30.0)
    assert passed == [0]
    assert cb.state is CircuitState.HALF_OPEN
    # A trial that is still running keeps the others waiting.
    await settle()
    assert passed == [0]
    cb.record_success()
    await asyncio.gather(*tasks)
    assert sorted(passed) == [0, 1, 2, 3]
    assert cb.state is CircuitState.CLOSED


async def test_trial_failure_reopens_for_another_cooldown() -> None:
    """A failed trial opens the circuit again; waiters sleep a second cooldown."""
    clock = FakeClock()
    cb = breaker(clock, threshold=1)
    cb.record_failure()
    passed: list[tuple[int, float]] = []

    async def caller(i: int) -> None:
        await cb.wait_ready()
        passed.append((i, clock.now))

    tasks = [asyncio.create_task(caller(i)) for i in range(3)]
    await settle()
    assert passed == [(0, 30.0)]
    cb.record_failure()
    assert cb.state is CircuitState.OPEN
    await settle()
    # The next trial passes only after the second cooldown.
    assert passed[1:] == [(1, 60.0)]
    cb.record_success()
    await asyncio.gather(*tasks)
    assert [i for i, _ in passed] == [0, 1, 2]


async def test_release_trial_hands_the_trial_on() -> None:
    """A trial that ends without an outcome lets exactly one next waiter become the trial."""
    clock = FakeClock()
    cb = breaker(clock, threshold=1)
    cb.record_failure()
    clock.now = 30.0
    await cb.wait_ready()  # this caller is the trial
    waiters = [asyncio.create_task(cb.wait_ready()) for _ in range(2)]
    await settle()
    assert not any(w.done() for w in waiters)
    cb.release_trial()
    await settle()
    assert sum(w.done() for w in waiters) == 1
    cb.record_success()
    await asyncio.gather(*waiters)


async def test_cancelled_waiter_does_not_block_others() -> None:
    """A waiter cancelled while waiting for the trial leaves no trace."""
    clock = FakeClock()
    cb = breaker(clock, threshold=1)
    cb.record_failure()
    clock.now = 30.0
    await cb.wait_ready()
    doomed = asyncio.create_task(cb.wait_ready())
    await settle()
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    cb.record_failure()
    clock.now = 60.0
    await cb.wait_ready()
    assert cb.state is CircuitState.HALF_OPEN


async def test_on_change_reports_every_transition() -> None:
    """on_change sees closed -> open -> half_open -> open -> half_open -> closed."""
    clock = FakeClock()
    changes: list[CircuitState] = []
    cb = breaker(clock, changes, threshold=2)
    cb.record_failure()
    assert changes == []
    cb.record_failure()
    await cb.wait_ready()  # sleeps out the cooldown and becomes the trial
    cb.record_failure()
    await cb.wait_ready()
    cb.record_success()
    cb.record_success()
    assert changes == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    ]


def test_failures_while_open_do_not_extend_the_cooldown() -> None:
    """Failures of sends already in flight when the circuit opened change nothing."""
    clock = FakeClock()
    cb = breaker(clock, threshold=1)
    cb.record_failure()
    clock.now = 20.0
    cb.record_failure()
    clock.now = 30.0
    assert cb.state is CircuitState.HALF_OPEN


def test_rejects_bad_settings() -> None:
    """A threshold below 1 or a negative cooldown is refused."""
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(0)
    with pytest.raises(ValueError, match="cooldown_seconds"):
        CircuitBreaker(1, -1.0)
