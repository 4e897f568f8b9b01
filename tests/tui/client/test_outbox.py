"""Outbox: persisted before sending, retried on schedule, FAILED after limits or refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from tui.client.backoff import RetryPolicy
from tui.client.history import CODE_NO_ACK, MessageState
from tui.client.outbox import Outbox
from tui.client.store import LocalStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(path: Path | str = ":memory:", attempts: int = 3) -> tuple[Outbox, FakeClock]:
    clock = FakeClock()
    policy = RetryPolicy(first_timeout=10.0, cap=60.0, max_attempts=attempts)
    return Outbox(LocalStore.open(path), policy, clock), clock


def test_add_persists_before_anything_is_sent(tmp_path: Path) -> None:
    outbox, _ = make(tmp_path / "h.sqlite3")
    entry = outbox.add(7, pb.Message.MESSAGE, text="hello")
    assert entry.state is MessageState.PENDING and entry.attempts == 0
    # A second process opening the same file already sees it.
    other = LocalStore.open(tmp_path / "h.sqlite3")
    assert [e.msg_id for e in other.pending()] == [entry.msg_id]


def test_misuse_is_refused() -> None:
    outbox, _ = make()
    with pytest.raises(ValueError, match="ephemeral"):
        outbox.add(7, pb.Message.INPUTING)
    with pytest.raises(ValueError, match="64 KiB"):
        outbox.add(7, pb.Message.MESSAGE, text="x" * (64 * 1024 + 1))
    with pytest.raises(ValueError):
        outbox.add(0, pb.Message.MESSAGE, text="x")


def test_unacked_message_is_resent_on_schedule_then_failed() -> None:
    outbox, clock = make(attempts=3)
    entry = outbox.add(7, pb.Message.MESSAGE, text="x")
    to_send, failed = outbox.on_connect()
    assert [e.msg_id for e in to_send] == [entry.msg_id] and failed == []
    wire = outbox.sending(to_send[0])
    assert wire.id == entry.msg_id and wire.uid == 7 and wire.msg == "x"
    assert outbox.next_due_at() == 10.0
    clock.now = 9.9
    assert outbox.take_due() == ([], [])
    clock.now = 10.0
    resend, _ = outbox.take_due()
    assert [e.msg_id for e in resend] == [entry.msg_id]
    outbox.sending(resend[0])  # attempt 2, next after 20 s
    assert outbox.next_due_at() == 30.0
    clock.now = 30.0
    resend, _ = outbox.take_due()
    outbox.sending(resend[0])  # attempt 3: the last one
    clock.now = 70.0
    resend, failed = outbox.take_due()
    assert resend == [] and [e.msg_id for e in failed] == [entry.msg_id]
    assert failed[0].state is MessageState.FAILED and failed[0].code == CODE_NO_ACK
    assert outbox.next_due_at() is None


def test_ack_ok_then_receipt() -> None:
    outbox, clock = make()
    entry = outbox.add(7, pb.Message.MESSAGE, text="x")
    outbox.sending(entry)
    sent = outbox.on_ack(pb.Ack(id=entry.msg_id, seq=4, code=pb.Ack.OK, timestamp=123))
    assert sent is not None and sent.state is MessageState.SENT and sent.seq == 4
    assert sent.timestamp == entry.timestamp  # the time written, not the relay's (123)
    assert outbox.on_ack(pb.Ack(id=entry.msg_id, seq=4, code=pb.Ack.OK)) is None  # dup Ack
    clock.now = 1000.0
    assert outbox.take_due() == ([], [])  # no retry after the Ack
    done = outbox.on_ack(pb.Ack(id=entry.msg_id, delivered=True, peer=7))
    assert done is not None and done.state is MessageState.DELIVERED
    assert outbox.on_ack(pb.Ack(id=99, delivered=True, peer=7)) is None  # not ours


def test_refusal_fails_at_once_and_resend_restarts() -> None:
    outbox, clock = make()
    entry = outbox.add(7, pb.Message.MESSAGE, text="x")
    outbox.sending(entry)
    failed = outbox.on_ack(pb.Ack(id=entry.msg_id, code=pb.Ack.NOT_BUDDY))
    assert failed is not None and failed.state is MessageState.FAILED
    assert failed.code == pb.Ack.NOT_BUDDY
    clock.now = 1000.0
    assert outbox.take_due() == ([], [])
    assert outbox.on_connect() == ([], [])  # FAILED is not re-sent automatically
    again = outbox.resend(entry.msg_id)
    assert again.state is MessageState.PENDING and again.attempts == 0
    with pytest.raises(KeyError):
        outbox.resend(entry.msg_id)  # only FAILED entries


@pytest.mark.parametrize("code", [pb.Ack.RATE_LIMITED, pb.Ack.STORE_FULL])
def test_transient_refusals_are_retried_not_failed(code: pb.Ack.Code.ValueType) -> None:
    """RATE_LIMITED, and STORE_FULL (the relay's disk is full): "not now", not "never"."""
    outbox, clock = make(attempts=2)
    entry = outbox.add(7, pb.Message.MESSAGE, text="x")
    outbox.sending(entry)
    assert outbox.on_ack(pb.Ack(id=entry.msg_id, code=code)) is None
    clock.now = 10.0
    resend, _ = outbox.take_due()
    outbox.sending(resend[0])
    final = outbox.on_ack(pb.Ack(id=entry.msg_id, code=code))
    assert final is not None and final.state is MessageState.FAILED
    assert final.code == code


def test_restart_keeps_pending_and_attempts(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    outbox, _ = make(path, attempts=2)
    a = outbox.add(7, pb.Message.MESSAGE, text="a")
    b = outbox.add(7, pb.Message.MESSAGE, text="b")
    outbox.sending(a)
    outbox.sending(a)  # two attempts, no Ack: exhausted for the next connection
    outbox.sending(b)
    outbox.on_disconnect()
    assert outbox.in_flight == 0
    restarted, _ = make(path, attempts=2)
    to_send, failed = restarted.on_connect()
    assert [e.text for e in to_send] == ["b"]
    assert [e.text for e in failed] == ["a"] and failed[0].code == CODE_NO_ACK


def test_late_ok_ack_rescues_a_failed_entry() -> None:
    outbox, _ = make(attempts=1)
    entry = outbox.add(7, pb.Message.MESSAGE, text="x")
    outbox.sending(entry)
    outbox.store.mark_failed(entry.msg_id, CODE_NO_ACK)
    rescued = outbox.on_ack(pb.Ack(id=entry.msg_id, seq=1, code=pb.Ack.OK))
    assert rescued is not None and rescued.state is MessageState.SENT


def test_reconnect_resends_do_not_use_up_attempts() -> None:
    """A flapping link re-sends on every reconnect; only live timeouts count toward FAILED."""
    outbox, _ = make(attempts=3)
    entry = outbox.add(7, pb.Message.MESSAGE, text="x")
    for _ in range(20):  # twenty reconnects, each re-sending before any Ack could come
        to_send, failed = outbox.on_connect()
        assert failed == [] and [e.msg_id for e in to_send] == [entry.msg_id]
        outbox.sending(to_send[0], count_attempt=False)
        outbox.on_disconnect()
    (pending,) = outbox.on_connect()[0]
    assert pending.attempts == 0 and pending.state is MessageState.PENDING
