"""relay.auth's login throttle, registration limit and hash worker line, without a process:
their arithmetic and their memory bounds (the behaviour through the real relay:
tests/e2e/test_hardening_auth.py and tests/e2e/test_login_storm.py).
"""

from __future__ import annotations

import select
import threading

from relay.auth import (
    ADDRESS_FAILURES_FACTOR,
    FAILURE_MEMORY_S,
    REGISTRATION_WINDOW_S,
    HashWorker,
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


def _drain(worker: HashWorker, jobs: int) -> None:
    """Run callbacks until ``jobs`` have come back (select bounds a hang, not a duration)."""
    ran = 0
    while ran < jobs:
        assert select.select([worker.fileno()], [], [], 30)[0], "no job came back"
        ran += worker.run_callbacks()


def test_hash_jobs_beyond_the_bound_wait_in_order_and_only_a_full_line_refuses() -> None:
    """Issue 16: jobs beyond ``max_pending`` were refused; now they wait (FIFO), at most
    ``max_waiting`` of them, and each finished job starts the next one."""
    worker = HashWorker(workers=1)
    gate = threading.Event()
    done: list[int] = []

    def record(result: int, error: BaseException | None) -> None:
        assert error is None
        done.append(result)

    def blocked(value: int) -> int:
        gate.wait(30)
        return value

    limits = {"max_pending": 2, "max_waiting": 3}
    accepted = [worker.enqueue(blocked, (i,), record, lambda: True, **limits) for i in range(6)]
    assert accepted == [True] * 5 + [False]  # 2 in the pool, 3 waiting, the sixth refused
    assert worker.pending == 2 and len(worker.waiting) == 3
    gate.set()
    _drain(worker, 5)
    assert done == [0, 1, 2, 3, 4]  # first come, first served
    assert worker.pending == 0 and not worker.waiting
    worker.close()


def test_a_waiting_hash_job_no_longer_wanted_is_dropped_unrun() -> None:
    worker = HashWorker(workers=1)
    gate = threading.Event()
    ran: list[int] = []

    def job(value: int) -> int:
        gate.wait(30)
        ran.append(value)
        return value

    def ignore(result: int, error: BaseException | None) -> None:
        pass

    limits = {"max_pending": 1, "max_waiting": 10}
    assert worker.enqueue(job, (1,), ignore, lambda: True, **limits)
    assert worker.enqueue(job, (2,), ignore, lambda: False, **limits)  # its peer went away
    assert worker.enqueue(job, (3,), ignore, lambda: True, **limits)
    gate.set()
    _drain(worker, 2)
    assert ran == [1, 3]
    worker.close()
