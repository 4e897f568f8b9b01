"""relay.intake: the input budget's accounting, pausing and eviction, without a process."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from relay.connection import Connection
from relay.intake import InputBudget
from relay.memory import MemoryTrimmer


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def holding(sockets: list[socket.socket], conn_id: int, size: int) -> Connection:
    """A connection whose decoder holds ``size`` bytes of an incomplete frame."""
    left, right = socket.socketpair()
    sockets += [left, right]
    conn = Connection(conn_id, left, "test", "test", 1 << 20, 0.0)
    conn.decoder.feed(struct.pack(">IB", 1 << 20, 6) + b"\0" * (size - 5))
    return conn


def test_the_total_follows_every_decoder_exactly(sockets: list[socket.socket]) -> None:
    budget = InputBudget(1000, 1.0, MemoryTrimmer())
    a, b = holding(sockets, 1, 300), holding(sockets, 2, 500)
    budget.count(a, 5.0)
    budget.count(b, 6.0)
    assert (budget.buffered, budget.holders, a.input_since) == (800, {a, b}, 5.0)
    a.decoder.feed(b"\0" * 100)
    budget.count(a, 7.0)
    assert budget.buffered == 900 and a.input_since == 5.0  # the same frame: same clock
    budget.release(a, 8.0)
    assert (budget.buffered, budget.holders, a.input_held) == (500, {b}, 0)


def test_paused_readers_wait_for_room_and_the_largest_holders_go_after_the_grace(
    sockets: list[socket.socket],
) -> None:
    budget = InputBudget(1000, 1.0, MemoryTrimmer())
    small, middle, large = (holding(sockets, i, size) for i, size in ((1, 100), (2, 400), (3, 700)))
    for conn in (small, middle, large):
        budget.count(conn, 0.0)
    assert budget.spent
    budget.pause(small)
    assert budget.room_again() == set() and small.input_paused
    assert budget.to_evict(10.0) == []  # the budget just got spent: the grace starts
    assert budget.to_evict(10.5) == []
    assert budget.to_evict(11.0) == [large]  # 1200 - 700 is under 1000: one is enough
    budget.release(large, 11.0)
    assert budget.room_again() == {small} and not small.input_paused and not budget.paused
