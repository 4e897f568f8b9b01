"""Reconnect backoff and outbox retry schedule: exact bounds, injected randomness."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.client.backoff import Backoff, RetryPolicy


def test_delays_grow_exponentially_between_half_and_full_ceiling() -> None:
    low = Backoff(base=0.5, cap=30.0, rng=lambda: 0.0)
    high = Backoff(base=0.5, cap=30.0, rng=lambda: 0.999999)
    lows = [low.next_delay() for _ in range(10)]
    highs = [high.next_delay() for _ in range(10)]
    ceilings = [min(30.0, 0.5 * 2**n) for n in range(10)]
    assert lows == [c / 2 for c in ceilings]
    assert all(c / 2 <= h < c for h, c in zip(highs, ceilings, strict=True))
    assert ceilings[-1] == 30.0


def test_reset_starts_over() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rng=lambda: 0.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


@given(
    rolls=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=100),
    cap=st.floats(1.0, 60.0),
)
def test_never_above_cap_never_zero(rolls: list[float], cap: float) -> None:
    values = iter(rolls)
    backoff = Backoff(base=0.5, cap=cap, rng=lambda: next(values))
    for _ in rolls:
        delay = backoff.next_delay()
        assert 0.25 <= delay <= cap


def test_huge_failure_counts_do_not_overflow() -> None:
    backoff = Backoff(cap=30.0, rng=lambda: 0.5, failures=10_000)
    assert 15.0 <= backoff.next_delay() <= 30.0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0.0)
    with pytest.raises(ValueError):
        Backoff(base=10.0, cap=1.0)


def test_retry_policy_schedule() -> None:
    policy = RetryPolicy(first_timeout=10.0, cap=120.0, max_attempts=8)
    assert [policy.delay_after(k) for k in range(1, 7)] == [10, 20, 40, 80, 120, 120]
    assert not policy.exhausted(7) and policy.exhausted(8)
    assert policy.delay_after(10_000) == 120.0
