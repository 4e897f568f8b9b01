"""Tests for the per-conversation boards (tui/state/board_book.py) and the export
(tui/board_export.py).

The store is the real ``LocalStore`` (in memory or on disk); no Textual, no relay.
"""

from __future__ import annotations

import datetime
import json
import random
import stat
from pathlib import Path

from protocol import chat_pb2 as pb
from tui.board_export import export_stem, export_text
from tui.client.history import HistoryEntry
from tui.client.store import LocalStore
from tui.state.board import Board
from tui.state.board_book import BOARD_HEIGHT, BOARD_WIDTH, BoardBook, snapshot_key

PEER = 7


class History:
    """Writes GRAPHICS messages into a store the way the session does."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.seq = 0
        self.texts: list[str] = []

    def incoming(self, text: str, peer: int = PEER) -> HistoryEntry:
        self.seq += 1
        message = pb.Message(
            uid=peer, type=pb.Message.GRAPHICS, msg=text, id=self.seq, seq=self.seq
        )
        entry = self.store.add_incoming(message)
        assert entry is not None
        self.store.commit()
        self.texts.append(text)
        return entry

    def outgoing(self, text: str, peer: int = PEER) -> HistoryEntry:
        self.texts.append(text)
        return self.store.add_outgoing(peer, pb.Message.GRAPHICS, text=text)


def replayed(texts: list[str]) -> Board:
    board = Board(BOARD_WIDTH, BOARD_HEIGHT)
    for text in texts:
        board.apply_text(text)
    return board


def random_texts(rng: random.Random, count: int) -> list[str]:
    texts = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.01:
            texts.append("clear")
        elif roll < 0.03:
            texts.append(rng.choice(["", "1,2", "a,b,c,d", "1,2,3,4,ab", "9" * 70]))
        else:
            coords = [rng.randint(-20, 120) for _ in range(4)]
            brush = rng.choice(["", ",#", ",*", ", ", ",─"])
            texts.append(",".join(map(str, coords)) + brush)
    return texts


def test_board_is_built_from_history_in_local_id_order() -> None:
    store = LocalStore.open(":memory:")
    history = History(store)
    history.incoming("0,0,9,0,#")
    history.outgoing("0,0,0,5,*")
    history.incoming("not a segment")
    history.incoming("0,5,9,5")
    book = BoardBook(store)
    board = book.board(PEER)
    assert board.snapshot() == replayed(history.texts).snapshot()
    assert board.malformed_count == 1
    assert book.last_load is not None and book.last_load.replayed == 4


def test_record_applies_only_what_the_loaded_board_lacks() -> None:
    store = LocalStore.open(":memory:")
    history = History(store)
    before_load = history.incoming("0,0,3,0,#")
    lazy = BoardBook(store)
    assert lazy.record(before_load) is None  # loading the board read it from the store
    assert lazy.loaded(PEER) and lazy.board(PEER).to_text() == "####"
    book = BoardBook(store)
    book.board(PEER)
    # An entry stored before the load whose event arrives afterwards: already in the board.
    assert book.record(before_load) is None
    later = history.incoming("0,1,3,1,*")
    assert book.record(later) == {(x, 1) for x in range(4)}
    assert book.record(history.outgoing("0,2,1,2")) is None  # ours: drawn by the canvas
    other = history.incoming("0,0,1,1", peer=PEER + 1)
    assert book.record(other) is None and book.board(PEER + 1).to_text() == "█\n █"
    assert book.board(PEER).row_text(1).startswith("****")


def test_snapshots_make_reopening_replay_only_newer_entries(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = LocalStore.open(path)
    history = History(store)
    rng = random.Random(3)
    book = BoardBook(store, snapshot_every=50)
    book.board(PEER)
    for text in random_texts(rng, 230):
        if text == "clear":
            continue  # keep the replay from stopping early: this test is about snapshots
        if rng.random() < 0.5:
            book.record(history.incoming(text))
        else:
            entry = history.outgoing(text)
            book.board(PEER).apply_text(text)
            book.drawn(PEER, entry.local_id)
    expected = replayed(history.texts)
    assert book.board(PEER).snapshot() == expected.snapshot()
    store.close()

    store = LocalStore.open(path)
    reopened = BoardBook(store, snapshot_every=50)
    board = reopened.board(PEER)
    assert board.snapshot() == expected.snapshot()
    assert board.malformed_count == expected.malformed_count
    assert reopened.last_load is not None and reopened.last_load.from_snapshot
    assert reopened.last_load.replayed < 50


def test_replay_starts_at_the_latest_clear() -> None:
    store = LocalStore.open(":memory:")
    history = History(store)
    for i in range(30):
        history.incoming(f"0,{i},50,{i}")
    history.outgoing("clear")
    history.incoming("1,1,4,1,o")
    book = BoardBook(store)
    board = book.board(PEER)
    assert book.last_load is not None and book.last_load.replayed == 1
    assert board.to_text() == "\n oooo"
    # The clear was seen: its late event must not clear what was drawn after the load.
    clear_entry = store.page(PEER, types=[pb.Message.GRAPHICS])[-2]
    assert book.record(clear_entry) is None


def test_random_histories_match_a_full_replay() -> None:
    rng = random.Random(11)
    for _ in range(20):
        store = LocalStore.open(":memory:")
        history = History(store)
        for text in random_texts(rng, rng.randint(0, 300)):
            history.incoming(text) if rng.random() < 0.6 else history.outgoing(text)
        book = BoardBook(store, snapshot_every=rng.randint(1, 100))
        assert book.board(PEER).snapshot() == replayed(history.texts).snapshot()
        book.forget()
        assert book.board(PEER).snapshot() == replayed(history.texts).snapshot()


def test_a_late_entry_below_the_snapshot_saves_again() -> None:
    store = LocalStore.open(":memory:")
    history = History(store)
    book = BoardBook(store, snapshot_every=1)
    book.board(PEER)
    queued = history.incoming("0,0,4,0,#")  # stored; its event is still queued...
    ours = history.outgoing("0,1,4,1,*")  # ...while we draw: the snapshot covers both ids
    book.board(PEER).apply_text(ours.text)
    book.drawn(PEER, ours.local_id)
    assert book.record(queued) == {(x, 0) for x in range(5)}  # applied late: saved again
    fresh = BoardBook(store)
    assert fresh.board(PEER).snapshot() == replayed(history.texts).snapshot()


def test_corrupt_or_foreign_snapshots_are_ignored_or_resized() -> None:
    store = LocalStore.open(":memory:")
    history = History(store)
    history.incoming("0,0,2,0,#")
    store.save_snapshot(snapshot_key(PEER), 10**9, "{not json")
    book = BoardBook(store)
    assert book.board(PEER).to_text() == "###"
    small = Board(5, 2)
    small.apply_text("0,1,4,1,x")
    data = json.dumps({"board": small.snapshot(), "malformed": 4})
    store.save_snapshot(snapshot_key(PEER), 10**9, data)
    board = BoardBook(store).board(PEER)
    assert (board.width, board.height) == (BOARD_WIDTH, BOARD_HEIGHT)
    assert board.to_text() == "\nxxxxx" and board.malformed_count == 4


def test_saving_after_the_store_closed_does_not_raise() -> None:
    store = LocalStore.open(":memory:")
    history = History(store)
    book = BoardBook(store)
    book.board(PEER)
    entry = history.outgoing("0,0,1,1")
    book.drawn(PEER, entry.local_id)
    store.close()
    book.save_all()


# --- export --------------------------------------------------------------------------------


def test_export_creates_new_files_and_never_overwrites(tmp_path: Path) -> None:
    when = datetime.datetime(2024, 6, 4, 12, 30, 5)
    folder = tmp_path / "exports" / "deeper"
    first = export_text("ab\n c", "bob", folder, when)
    second = export_text("other", "bob", folder, when)
    assert first.name == "parley-board-bob-20240604-123005.txt"
    assert second.name == "parley-board-bob-20240604-123005-2.txt"
    assert first.read_text(encoding="utf-8") == "ab\n c\n"
    assert second.read_text(encoding="utf-8") == "other\n"
    assert stat.S_IMODE(first.stat().st_mode) & 0o022 == 0


def test_export_name_is_safe_for_hostile_names(tmp_path: Path) -> None:
    when = datetime.datetime(2024, 1, 2, 3, 4, 5)
    for name in ["../../etc/passwd", ".hidden", "a/b\\c", "\x1b[31mred", "ünï", "", "-" * 9]:
        stem = export_stem(name, when)
        assert "/" not in stem and "\\" not in stem and not stem.startswith(".")
        assert stem.isascii() and stem.isprintable()
        path = export_text("x", name, tmp_path, when)
        assert path.parent == tmp_path
    assert export_stem("../../etc/passwd", when) == "parley-board-etc_passwd-20240102-030405"
    assert export_stem("", when) == "parley-board-peer-20240102-030405"
