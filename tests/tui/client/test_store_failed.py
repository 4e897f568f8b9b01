"""``LocalStore.failed``: every FAILED outgoing message of one conversation (what Ctrl+R
re-sends), however far back; and an Ack does not change a message's written time."""

from __future__ import annotations

from protocol import chat_pb2 as pb
from tui.client.history import CODE_NO_ACK, MessageState
from tui.client.store import LocalStore

BOB, CAROL = 2, 3


def test_failed_lists_the_whole_conversation_oldest_first() -> None:
    store = LocalStore.open(":memory:")
    failed = []
    for i in range(500):
        entry = store.add_outgoing(BOB, pb.Message.MESSAGE, text=f"m{i}")
        if i % 2 == 0:
            store.mark_failed(entry.msg_id, pb.Ack.NOT_BUDDY)
            failed.append(entry.local_id)
    other = store.add_outgoing(CAROL, pb.Message.MESSAGE, text="to carol")
    store.mark_failed(other.msg_id, CODE_NO_ACK)
    assert [e.local_id for e in store.failed(BOB)] == failed
    assert all(e.state is MessageState.FAILED and e.outgoing for e in store.failed(BOB))
    assert [e.text for e in store.failed(CAROL)] == ["to carol"]
    store.reset_for_resend(other.msg_id)
    assert store.failed(CAROL) == []


def test_an_ack_keeps_the_written_time() -> None:
    store = LocalStore.open(":memory:")
    entry = store.add_outgoing(BOB, pb.Message.MESSAGE, text="x", now=1_700_000_000)
    sent = store.mark_sent(entry.msg_id, 5)
    assert sent is not None and sent.timestamp == 1_700_000_000 and sent.seq == 5
