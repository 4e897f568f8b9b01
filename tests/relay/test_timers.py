"""relay.timers: connection deadlines fire in due order, ties in the order they were set."""

from __future__ import annotations

from relay.timers import ConnectionTimers


def test_timers_fire_in_due_order_and_only_when_due() -> None:
    timers = ConnectionTimers()
    assert not timers
    timers.add(5.0, "login", 1)
    timers.add(2.0, "handshake", 2)
    timers.add(5.0, "close", 3)
    assert timers and timers.next_due() == 2.0
    assert list(timers.pop_due(1.9)) == []
    assert list(timers.pop_due(5.0)) == [("handshake", 2), ("login", 1), ("close", 3)]
    assert not timers


def test_a_timer_set_while_firing_fires_in_the_same_pass_if_due() -> None:
    timers = ConnectionTimers()
    timers.add(1.0, "close", 7)
    fired = []
    for kind, conn_id in timers.pop_due(3.0):
        fired.append((kind, conn_id))
        if len(fired) == 1:
            timers.add(2.0, "close", 7)  # a peer still reading gets more time
            timers.add(9.0, "close", 8)
    assert fired == [("close", 7), ("close", 7)]
    assert timers.next_due() == 9.0
