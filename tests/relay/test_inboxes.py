"""relay.inboxes without a relay process: seqs, sizes, the pass's rows and deliveries, on a
real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import FrameDecoder, FrameType, encode_frame
from protocol import chat_pb2 as pb
from relay.dedup import DedupWindow
from relay.inboxes import Inboxes
from relay.store import InboxRow, Store

TS = 1_700_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "relay.db") as opened:
        for name in ("alice", "bob", "carol"):
            assert opened.add_user(name, name, "h", 0) is not None
        opened.commit()
        yield opened


def _inboxes(store: Store) -> Inboxes:
    return Inboxes(store, DedupWindow(store, 86400, 12))


def _accept(
    inboxes: Inboxes, recipient: int, sender: int, client_id: int, text: bytes = b"m"
) -> InboxRow:
    """What the message handler does with an accepted durable message."""
    size = inboxes.bytes_of(recipient)
    body = pb.Message(msg=text.decode()).SerializeToString()
    seq, frame = inboxes.accept(recipient, sender, client_id, TS, body, size)
    message = pb.Message.FromString(FrameDecoder(1 << 16).feed(frame)[0].payload)
    assert message.seq == seq and message.msg == text.decode()
    assert frame == encode_frame(FrameType.MESSAGE, body + pb.Message(seq=seq).SerializeToString())
    return InboxRow(recipient, seq, sender, client_id, TS, frame)


def test_seqs_continue_above_the_stored_head_after_a_restart(store: Store) -> None:
    inboxes = _inboxes(store)
    assert [_accept(inboxes, 2, 1, n).seq for n in (1, 2, 3)] == [1, 2, 3]
    assert store.head_seq(2) == 0  # buffered, not yet handed to the store
    inboxes.flush_rows()
    store.commit()
    restarted = _inboxes(store)
    assert restarted.current_head(2) == 3
    assert _accept(restarted, 2, 1, 4).seq == 4
    assert _accept(restarted, 3, 1, 5).seq == 1  # per recipient


def test_count_and_bytes_match_the_store_whether_cached_or_not(store: Store) -> None:
    inboxes = _inboxes(store)
    rows = [_accept(inboxes, 2, 1, n, b"x" * n) for n in (1, 2, 3)]
    assert inboxes.count(2) == 3
    assert inboxes.bytes_of(2) == sum(len(row.frame) for row in rows)
    inboxes.flush_rows()
    store.commit()
    cold = _inboxes(store)
    assert cold.count(2) == store.inbox_count(2) == 3
    assert cold.bytes_of(2) == store.inbox_bytes(2) == inboxes.bytes_of(2)


def test_deliveries_coalesce_and_owe_receipts_only_for_client_ids(store: Store) -> None:
    inboxes = _inboxes(store)
    _accept(inboxes, 2, 1, 0)  # a v1 message: no client id, no receipt
    _accept(inboxes, 2, 1, 77)
    _accept(inboxes, 2, 3, 88)
    inboxes.flush_rows()
    store.commit()
    inboxes.delivered_through(2, 2, 1, receipts=False)
    inboxes.delivered_through(2, 2, 2, receipts=True)
    assert inboxes.deliveries == {2: (2, True, 2)}
    assert inboxes.deliveries_due()
    assert inboxes.apply_deliveries(set()) == [(2, [(1, 77)])]
    assert not inboxes.deliveries_due()
    store.commit()
    inboxes.committed()
    assert inboxes.count(2) == 1
    assert [run.first_seq for run in store.inbox_after(2, 0, 10)] == [3]
    inboxes.delivered_through(2, 2, 3, receipts=True)
    assert inboxes.apply_deliveries(set()) == [(2, [(3, 88)])]
    store.commit()
    assert inboxes.count(2) == 0 and inboxes.bytes_of(2) == store.inbox_bytes(2) == 0


def test_lost_writes_drop_the_caches_and_record_the_deliveries_again(store: Store) -> None:
    inboxes = _inboxes(store)
    _accept(inboxes, 2, 1, 5)
    inboxes.flush_rows()
    store.commit()
    inboxes.committed()
    inboxes.delivered_through(2, 2, 1, receipts=True)
    assert inboxes.apply_deliveries(set()) == [(2, [(1, 5)])]
    _accept(inboxes, 3, 2, 6)
    inboxes.flush_rows()
    store.rollback()  # what a failed commit does to the pass's writes
    assert inboxes.writes_lost() == {2}  # the sender of the lost row
    assert (inboxes.head_seq, inboxes.floor, inboxes.stored_bytes) == ({}, {}, {})
    assert inboxes.pending_rows == [] and inboxes.pass_rows == []
    assert inboxes.deliveries == {2: (1, True, 2)}  # to be applied again
    assert inboxes.current_head(3) == 0 and inboxes.count(2) == 1
    assert inboxes.apply_deliveries(set()) == [(2, [(1, 5)])]
