"""Retry policy: exponential backoff with equal jitter, the provider's floor, giving up."""

from __future__ import annotations

import pytest

from broadcaster.retry import RetryPolicy


def low() -> float:
    return 0.0


def high() -> float:
    return 1.0


def test_backoff_grows_exponentially_then_caps() -> None:
    """The step doubles per attempt from base and stops growing at the cap."""
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0)
    highs = [policy.backoff(n, rand=high) for n in range(1, 10)]
    assert highs == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_jitter_stays_between_half_and_full_step() -> None:
    """Equal jitter: rand 0 gives half the step, rand 1 the whole step."""
    policy = RetryPolicy(base_seconds=2.0, cap_seconds=300.0)
    assert policy.backoff(3, rand=low) == 4.0
    assert policy.backoff(3, rand=high) == 8.0
    assert policy.backoff(3, rand=lambda: 0.5) == 6.0
    assert policy.backoff(20, rand=low) == 150.0
    assert policy.backoff(20, rand=high) == 300.0


def test_default_random_jitter_within_bounds() -> None:
    """With the real PRNG every delay lies in [step / 2, step]."""
    policy = RetryPolicy()
    for attempts in range(1, 12):
        step = min(300.0, 2.0 ** (attempts - 1))
        for _ in range(50):
            assert step / 2 <= policy.backoff(attempts) <= step


def test_huge_attempt_counts_do_not_overflow() -> None:
    """An absurd attempt count still yields the capped delay."""
    assert RetryPolicy().backoff(100_000, rand=high) == 300.0


def test_retry_after_is_a_floor() -> None:
    """The provider's hint wins over a shorter jittered delay, even above the cap."""
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0)
    assert policy.backoff(1, retry_after=30.0, rand=high) == 30.0
    assert policy.backoff(1, retry_after=900.0, rand=high) == 900.0
    # A hint shorter than the backoff does not shorten it.
    assert policy.backoff(6, retry_after=1.0, rand=low) == 16.0


def test_backoff_rejects_zero_attempts() -> None:
    """attempts counts attempts already made, so it is at least 1."""
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy().backoff(0)


def test_gives_up_by_attempts() -> None:
    """No retry once max_attempts attempts have been made."""
    policy = RetryPolicy(max_attempts=3)
    assert not policy.gives_up(1, age_seconds=0.0, delay_seconds=1.0)
    assert not policy.gives_up(2, age_seconds=0.0, delay_seconds=1.0)
    assert policy.gives_up(3, age_seconds=0.0, delay_seconds=1.0)


def test_gives_up_by_age() -> None:
    """No retry when the next attempt would come after max_age_seconds."""
    policy = RetryPolicy(max_age_seconds=600.0)
    assert not policy.gives_up(1, age_seconds=500.0, delay_seconds=100.0)
    assert policy.gives_up(1, age_seconds=500.0, delay_seconds=100.5)
    assert policy.gives_up(1, age_seconds=700.0, delay_seconds=0.0)


def test_policy_rejects_bad_settings() -> None:
    """Nonsensical policies fail at construction, naming the field."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="cap_seconds"):
        RetryPolicy(base_seconds=10.0, cap_seconds=1.0)
    with pytest.raises(ValueError, match="base_seconds"):
        RetryPolicy(base_seconds=0.0)
