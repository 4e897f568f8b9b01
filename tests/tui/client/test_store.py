"""Local SQLite store: outbox survives restarts, inbox dedup by seq, fast history pages."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from tui.client.history import MessageState
from tui.client.store import LocalStore, history_path


def incoming(seq: int, text: str = "hi", peer: int = 7, msg_id: int = 1) -> pb.Message:
    return pb.Message(uid=peer, seq=seq, msg=text, id=msg_id, timestamp=1_700_000_000 + seq % 1000)


def test_database_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "h.sqlite3"
    LocalStore.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_history_path_is_per_relay_and_user_and_safe(tmp_path: Path) -> None:
    paths = {
        history_path(tmp_path, "relay", 1025, "alice"),
        history_path(tmp_path, "relay", 1025, "bob"),
        history_path(tmp_path, "relay", 1026, "alice"),
        history_path(tmp_path, "other", 1025, "alice"),
    }
    assert len(paths) == 4
    assert history_path(tmp_path, "RELAY", 1025, "Alice") == history_path(
        tmp_path, "relay", 1025, "alice"
    )
    odd = history_path(tmp_path, "::1", 1, "..")
    assert odd.parent == tmp_path and not odd.name.startswith(".")


def test_pending_outbox_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = LocalStore.open(path)
    first = store.add_outgoing(7, pb.Message.MESSAGE, text="one")
    second = store.add_outgoing(
        8, pb.Message.FILE_OFFER, text="f.txt", file=pb.FileInfo(transfer_id=5, size=10)
    )
    store.record_attempt(first.msg_id)
    store.mark_sent(second.msg_id, seq=3)
    del store  # no close(): what was committed must be enough
    reopened = LocalStore.open(path)
    pending = reopened.pending()
    assert [e.msg_id for e in pending] == [first.msg_id]
    assert pending[0].state is MessageState.PENDING and pending[0].text == "one"
    sent = reopened.find_outgoing(second.msg_id)
    assert sent is not None and sent.state is MessageState.SENT and sent.seq == 3
    assert sent.file is not None and sent.file.transfer_id == 5
    assert first.to_wire().id == first.msg_id and first.to_wire().uid == 7


def test_message_ids_are_unique_nonzero_63_bit() -> None:
    store = LocalStore.open(":memory:")
    ids = {store.add_outgoing(1, 0, text=str(i)).msg_id for i in range(200)}
    assert len(ids) == 200 and all(0 < i < 2**63 for i in ids)


def test_outgoing_states_only_move_forward() -> None:
    store = LocalStore.open(":memory:")
    entry = store.add_outgoing(7, pb.Message.MESSAGE, text="x")
    assert store.reset_for_resend(entry.msg_id) is None  # not FAILED
    failed = store.mark_failed(entry.msg_id, pb.Ack.NOT_BUDDY)
    assert failed is not None and failed.code == pb.Ack.NOT_BUDDY
    again = store.reset_for_resend(entry.msg_id)
    assert again is not None and again.state is MessageState.PENDING and again.attempts == 0
    assert store.mark_delivered(entry.msg_id) is not None
    assert store.mark_sent(entry.msg_id, 1) is None  # a late Ack never undoes a receipt
    assert store.mark_failed(entry.msg_id, 1) is None
    final = store.find_outgoing(entry.msg_id)
    assert final is not None and final.state is MessageState.DELIVERED
    assert store.mark_sent(12345, 1) is None  # unknown id


def test_incoming_dedup_by_seq_and_cursor_persistence(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = LocalStore.open(path)
    assert store.last_seq == 0
    first = store.add_incoming(incoming(1, "a"))
    assert first is not None and first.local_id is not None
    assert store.add_incoming(incoming(1, "a again")) is None
    store.set_last_seq(1)
    store.commit()
    store.close()
    reopened = LocalStore.open(path)
    assert reopened.last_seq == 1
    assert reopened.add_incoming(incoming(1)) is None
    assert [e.text for e in reopened.page(7)] == ["a"]


def test_uint64_values_round_trip() -> None:
    store = LocalStore.open(":memory:")
    big = 2**64 - 1
    entry = store.add_incoming(incoming(big, msg_id=big))
    assert entry is not None
    stored = store.page(7)[0]
    assert stored.msg_id == big and stored.seq == big
    store.set_last_seq(big)
    assert store.last_seq == big


def test_rebase_inbox_forgets_seqs() -> None:
    store = LocalStore.open(":memory:")
    store.add_incoming(incoming(5))
    store.set_last_seq(5)
    store.rebase_inbox()
    assert store.last_seq == 0
    assert store.add_incoming(incoming(5, "new relay, same seq")) is not None


def test_pages_of_a_10000_message_conversation() -> None:
    store = LocalStore.open(":memory:")
    for i in range(1, 10_001):
        store.add_incoming(incoming(i, f"m{i}", peer=7 if i % 10 else 8))
    store.commit()
    newest = store.page(7, limit=50)
    assert len(newest) == 50 and newest[-1].text == "m9999"
    assert [e.local_id for e in newest] == sorted(e.local_id for e in newest if e.local_id)
    older = store.page(7, before=newest[0].local_id, limit=50)
    assert older[-1].local_id is not None and newest[0].local_id is not None
    assert older[-1].local_id < newest[0].local_id and len(older) == 50
    assert store.count(7) == 9000 and store.count(8) == 1000
    texts = store.page(7, types=[pb.Message.MESSAGE], limit=3)
    assert [e.text for e in texts] == ["m9997", "m9998", "m9999"]
    assert store.page(7, types=[pb.Message.GRAPHICS]) == []


def test_page_query_is_an_index_range_scan() -> None:
    store = LocalStore.open(":memory:")
    plan = store._db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE peer = ? AND local_id < ? "
        "ORDER BY local_id DESC LIMIT 50",
        (7, 100),
    ).fetchall()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "messages_by_peer" in detail and "TEMP B-TREE" not in detail


def test_conversations_and_unread_counts() -> None:
    store = LocalStore.open(":memory:")
    store.set_peer_names([(7, "bob"), (8, "carol")])
    store.add_incoming(incoming(1, peer=7))
    store.add_incoming(incoming(2, peer=8))
    store.add_incoming(incoming(3, peer=8))
    store.add_outgoing(7, pb.Message.MESSAGE, text="reply")
    convs = store.conversations()
    assert [(c.peer, c.username, c.unread) for c in convs] == [(7, "bob", 1), (8, "carol", 2)]
    store.mark_read(8)
    assert {c.peer: c.unread for c in store.conversations()} == {7: 1, 8: 0}
    assert store.peer_name(9) is None


def test_unread_counts_only_chat_visible_types() -> None:
    store = LocalStore.open(":memory:")
    kinds = [
        pb.Message.GRAPHICS,
        pb.Message.MESSAGE,
        pb.Message.GRAPHICS,
        pb.Message.FILE_OFFER,
        pb.Message.FILE_ACCEPT,
        pb.Message.FILE_DECLINE,
        pb.Message.FILE_CANCEL,
        pb.Message.FILE,
        pb.Message.GRAPHICS,
    ]
    for seq, kind in enumerate(kinds, start=1):
        message = incoming(seq, text="1,1,2,2" if kind == pb.Message.GRAPHICS else "x")
        message.type = kind
        assert store.add_incoming(message) is not None
    (conversation,) = store.conversations()
    assert conversation.unread == 3  # MESSAGE, FILE_OFFER, FILE
    assert store.count(7) == len(kinds)  # every one is still stored
    assert conversation.last_local_id == store.page(7)[-1].local_id


def test_snapshots_are_replaced_per_key_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = LocalStore.open(path)
    assert store.snapshot("board:7") is None
    store.save_snapshot("board:7", 10, "first")
    store.save_snapshot("board:7", 42, "second")
    store.save_snapshot("board:8", 5, "other")
    store.close()
    store = LocalStore.open(path)
    assert store.snapshot("board:7") == (42, "second")
    assert store.snapshot("board:8") == (5, "other")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        LocalStore.open(path)
