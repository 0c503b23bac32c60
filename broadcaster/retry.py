"""When to try a failed delivery again, and when to stop trying.

Contract:

- `RetryPolicy.backoff(attempts)` is the delay before the next attempt after `attempts`
  attempts (at least 1) have failed transiently. It grows exponentially from `base_seconds`
  and is capped at `cap_seconds`, with "equal jitter": half of the step is fixed, the other
  half random, so retries from many deliveries that failed together (a provider outage)
  spread out instead of arriving in one wave, yet no retry comes sooner than half the step.
- A provider's hint (`retry_after`, from a 429 Retry-After or similar) is a floor: the delay
  is never shorter than it, even when the hint is above the cap, because retrying earlier
  only earns another refusal.
- `RetryPolicy.gives_up` says when a delivery stops being retried: after `max_attempts`
  attempts, or when the next attempt would come later than `max_age_seconds` after the
  delivery was created (an emergency alert that late is no longer useful).

Pure functions of their arguments; the randomness source is injectable for tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# 2**62 seconds dwarfs any cap; clamping the exponent keeps the float math from overflowing
# when a delivery has been attempted absurdly often.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with equal jitter, a provider-hint floor, and two stop rules."""

    # Attempts in all, the first one included.
    max_attempts: int = 8
    # Age of the delivery (since it was planned) after which no attempt is made.
    max_age_seconds: float = 3600.0
    # Delay step after the first failed attempt; it doubles with each further attempt.
    base_seconds: float = 1.0
    # Largest step (before jitter), whatever the number of attempts.
    cap_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if not self.max_age_seconds > 0:
            raise ValueError(f"max_age_seconds must be positive, not {self.max_age_seconds}")
        if not self.base_seconds > 0:
            raise ValueError(f"base_seconds must be positive, not {self.base_seconds}")
        if not self.cap_seconds >= self.base_seconds:
            raise ValueError(
                f"cap_seconds ({self.cap_seconds}) must be >= base_seconds ({self.base_seconds})"
            )

    def backoff(
        self,
        attempts: int,
        *,
        retry_after: float | None = None,
        # Jitter only spreads load; it protects nothing, so a non-cryptographic PRNG is right.
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after `attempts` attempts (>= 1): a step of
        `min(cap, base * 2 ** (attempts - 1))`, of which half is fixed and half jittered;
        never less than `retry_after` when the provider gave one."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        exponent = min(attempts - 1, _MAX_EXPONENT)
        step = min(self.cap_seconds, self.base_seconds * 2.0**exponent)
        delay = step / 2.0 + rand() * step / 2.0
        if retry_after is not None:
            # The provider's hint wins, not jittered down and not capped.
            delay = max(delay, retry_after)
        return delay

    def gives_up(self, attempts: int, *, age_seconds: float, delay_seconds: float) -> bool:
        """True when no further attempt should be made: `attempts` have been made already
        and that is the maximum, or the next attempt (after `delay_seconds`) would start
        when the delivery is older than `max_age_seconds`."""
        if attempts >= self.max_attempts:
            return True
        return age_seconds + delay_seconds > self.max_age_seconds
