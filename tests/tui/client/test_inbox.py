"""Inbox cursor (dedup, holes, backlog) and Ack batching, on an injected clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tui.client.inbox import AckBatcher, InboxTracker, Verdict


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_contiguous_seqs_advance_and_duplicates_are_recognised() -> None:
    tracker = InboxTracker(cursor=3)
    assert tracker.classify(3) is Verdict.DUPLICATE
    assert tracker.classify(4) is Verdict.NEW
    tracker.stored(4)
    assert tracker.cursor == 4 and tracker.classify(4) is Verdict.DUPLICATE


def test_live_hole_keeps_cursor_until_filled() -> None:
    tracker = InboxTracker(cursor=5)
    assert tracker.classify(8) is Verdict.NEW_AFTER_GAP
    tracker.stored(8)
    assert tracker.cursor == 5 and tracker.waiting_above == 1
    assert tracker.classify(8) is Verdict.DUPLICATE  # stored above the hole: still a dup
    tracker.begin_backlog()  # the caller asked for a Sync
    for seq in (6, 7, 8):
        if tracker.classify(seq) is not Verdict.DUPLICATE:
            tracker.stored(seq)
    assert tracker.cursor == 8 and tracker.waiting_above == 0


def test_backlog_jump_is_closed_by_sync_head() -> None:
    tracker = InboxTracker(cursor=0)
    tracker.begin_backlog()
    # The relay dropped 1..479 (acknowledged from another install): legitimate hole.
    for seq in range(480, 501):
        assert tracker.classify(seq) is Verdict.NEW
        tracker.stored(seq)
    assert tracker.cursor == 0  # never acknowledge what we have not seen...
    tracker.end_backlog(500)  # ...until the relay says the backlog is complete
    assert tracker.cursor == 500 and not tracker.backlog and tracker.waiting_above == 0
    assert tracker.classify(501) is Verdict.NEW
    assert tracker.classify(503) is Verdict.NEW_AFTER_GAP


def test_sync_head_below_cursor_does_not_move_it_back() -> None:
    tracker = InboxTracker(cursor=10)
    tracker.begin_backlog()
    tracker.end_backlog(4)
    assert tracker.cursor == 10


@given(st.lists(st.integers(1, 60), max_size=200))
def test_each_seq_is_new_at_most_once(seqs: list[int]) -> None:
    tracker = InboxTracker()
    seen: set[int] = set()
    for seq in seqs:
        verdict = tracker.classify(seq)
        assert (verdict is Verdict.DUPLICATE) == (seq in seen)
        if verdict is not Verdict.DUPLICATE:
            tracker.stored(seq)
            seen.add(seq)
        # The cursor never claims a seq that was not stored.
        assert set(range(1, tracker.cursor + 1)) <= seen


def test_ack_waits_max_delay_after_first_message() -> None:
    clock = FakeClock()
    batcher = AckBatcher(max_delay=0.1, max_batch=64, clock=clock)
    assert batcher.due_at is None and batcher.take() is None
    assert batcher.advanced(1) is False
    clock.now += 0.05
    assert batcher.advanced(2) is False
    assert not batcher.due()
    assert batcher.due_at == 1000.1  # measured from the first unacked message
    clock.now = 1000.1
    assert batcher.due()
    assert batcher.take() == 2
    assert batcher.due_at is None and batcher.take() is None


def test_ack_sent_immediately_when_batch_is_full() -> None:
    clock = FakeClock()
    batcher = AckBatcher(max_delay=0.1, max_batch=64, clock=clock)
    for seq in range(1, 64):
        assert batcher.advanced(seq) is False
    assert batcher.advanced(64) is True
    assert batcher.due()
    assert batcher.take() == 64
    assert batcher.advanced(64) is False  # no progress, nothing owed
    assert batcher.due_at is None


def test_one_step_can_count_many_messages() -> None:
    batcher = AckBatcher(max_delay=0.1, max_batch=64, clock=FakeClock())
    assert batcher.advanced(500, messages=500) is True  # a Sync closing a big backlog


def test_reset_reacknowledges_the_cursor_on_a_new_connection() -> None:
    clock = FakeClock()
    batcher = AckBatcher(max_delay=0.1, clock=clock)
    batcher.advanced(7)
    assert batcher.take() == 7
    batcher.reset(7)  # the Ack may have died with the old connection
    clock.now += 0.1
    assert batcher.due() and batcher.take() == 7
    batcher.reset(0)
    assert batcher.due_at is None and batcher.take() is None
