"""relay.auth's login throttle and registration limit, without a process: their arithmetic and
their memory bounds (the behaviour through the real relay: tests/e2e/test_hardening_auth.py).
"""

from __future__ import annotations

from relay.auth import (
    ADDRESS_FAILURES_FACTOR,
    FAILURE_MEMORY_S,
    REGISTRATION_WINDOW_S,
    LoginThrottle,
    RegistrationLimit,
    address_key,
)


def test_attempts_count_when_they_start_and_back_off_exponentially() -> None:
    throttle = LoginThrottle(free_failures=3, max_delay=8.0)
    for _ in range(3):  # three checks still running: they count already
        assert throttle.retry_after(7, "a", now=0.0) == 0.0
        throttle.attempt(7, "a", now=0.0)
    assert throttle.retry_after(7, "a", now=0.0) == 1.0
    assert throttle.retry_after(7, "b", now=0.0) == 0.0  # another address
    throttle.attempt(7, "a", now=1.0)
    assert throttle.retry_after(7, "a", now=1.0) == 2.0
    for step in range(10):
        throttle.attempt(7, "a", now=2.0 + step)
    assert throttle.retry_after(7, "a", now=11.0) == 8.0  # capped at max_delay


def test_success_clears_the_account_and_the_address_counts_only_failed_checks() -> None:
    throttle = LoginThrottle(free_failures=2)
    throttle.attempt(1, "a", now=0.0)
    throttle.attempt(1, "a", now=0.0)
    assert throttle.retry_after(1, "a", now=0.0) > 0
    throttle.succeeded(1, "a")
    assert throttle.retry_after(1, "a", now=0.0) == 0.0
    # Many users behind one address logging in at once (a shared box, a restart) are not
    # a guessing attack: checks still running do not count against the address...
    for uid in range(100, 100 + 10 * ADDRESS_FAILURES_FACTOR):
        throttle.attempt(uid, "a", now=0.0)
    assert throttle.retry_after(None, "a", now=0.0) == 0.0
    # ... checks that failed do, and so do logins to accounts that do not exist.
    for _ in range(2 * ADDRESS_FAILURES_FACTOR - 1):
        throttle.failed("a", now=0.0)
    assert throttle.retry_after(None, "a", now=0.0) == 0.0
    throttle.attempt(None, "a", now=0.0)
    assert throttle.retry_after(None, "a", now=0.0) > 0


def test_failures_are_forgotten_after_a_quiet_hour_and_entries_are_bounded() -> None:
    throttle = LoginThrottle(free_failures=1, max_entries=3)
    throttle.attempt(1, "a", now=0.0)
    assert throttle.retry_after(1, "a", now=0.0) > 0
    assert throttle.retry_after(1, "a", now=FAILURE_MEMORY_S) == 0.0
    for uid in range(100):
        throttle.attempt(uid, f"10.0.0.{uid}", now=1.0)
        throttle.failed(f"10.0.0.{uid}", now=1.0)
    ledgers = (throttle._accounts._entries, throttle._addresses._entries)
    assert [len(entries) for entries in ledgers] == [3, 3]
    assert throttle.retry_after(99, "10.0.0.99", now=1.0) > 0  # the newest are kept


def test_a_long_attack_never_overflows_the_back_off() -> None:
    throttle = LoginThrottle(free_failures=1, max_delay=300.0)
    for step in range(5000):  # one guess every 300 s for 17 days: 2.0**5000 would overflow
        throttle.attempt(1, "a", now=300.0 * step)
    assert throttle.retry_after(1, "a", now=300.0 * 4999) == 300.0


def test_registrations_slide_over_a_minute_per_address_with_bounded_memory() -> None:
    limit = RegistrationLimit(per_minute=2, max_addresses=2)
    assert limit.allow("a", 0.0) and limit.allow("a", 1.0)
    assert not limit.allow("a", 2.0)
    assert limit.allow("b", 2.0)
    assert limit.allow("a", REGISTRATION_WINDOW_S)  # the first one left the window
    assert not limit.allow("a", REGISTRATION_WINDOW_S + 0.5)
    assert limit.allow("c", 61.0)  # a third address: the least recent one is dropped
    assert len(limit._recent) == 2
    assert not RegistrationLimit(per_minute=0).allow("a", 0.0)


def test_address_key_groups_an_ipv6_slash_64_and_unmaps_ipv4() -> None:
    assert address_key("127.0.0.2") == "127.0.0.2"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == "fe80::/64"
