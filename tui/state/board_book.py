"""The drawing boards of all conversations, kept in step with the local history.

A board is never stored as such: the GRAPHICS messages in the history (ours and the peer's,
in ``local_id`` order) *are* the board. To open one fast whatever the history's length, a
snapshot of the board is saved now and then in the store (``snapshots`` table, key
``board:<peer>``) together with the local id it covers; opening a board is "snapshot, then
replay the newer GRAPHICS entries" — and the replay walks backwards from the newest entry
and stops at the latest ``clear``, before which nothing matters.

No Textual here: the widget shows the :class:`~tui.state.board.Board` objects this book
hands out, and is told which cells changed.

Invariants:
- ``board(peer)`` equals the replay of every GRAPHICS entry of ``peer`` in the store, in
  ``local_id`` order, at the time it was loaded (on first use, or when the first stroke
  arrives); afterwards it changes only through :meth:`BoardBook.record` (incoming entries
  whose ``local_id`` is newer than the load) and
  the caller's own drawing (which the caller persists with ``session.send`` and reports with
  :meth:`BoardBook.drawn`). An entry is therefore applied at most once.
- A saved snapshot with ``upto = N`` contains the effect of every GRAPHICS entry with
  ``local_id <= N``. When an entry at or below the saved ``upto`` is applied late (our own
  stroke was stored while an earlier incoming one was still queued), the snapshot is saved
  again at once, so this stays true.
- Snapshots are an optimisation only: a missing, corrupt or foreign-sized snapshot means a
  longer replay (or a resize), never a wrong or lost board. Saving never raises.
- Malformed GRAPHICS texts are counted per board (``Board.malformed_count``, kept in the
  snapshot), never raised. (A board rebuilt without any snapshot counts those after its
  latest ``clear`` only.)
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from protocol import chat_pb2 as pb
from tui.client.history import HistoryEntry
from tui.client.store import LocalStore
from tui.state.board import Board, Cell

log = logging.getLogger(__name__)

BOARD_WIDTH = 80  # a classic terminal: the whole board fits a 120x40 window
BOARD_HEIGHT = 24
SNAPSHOT_EVERY = 500  # applied entries between two snapshots of a board
REPLAY_PAGE = 1_000  # history rows read per query while replaying
GRAPHICS_TYPES = (pb.Message.GRAPHICS,)
CLEAR = "clear"


def snapshot_key(peer: int) -> str:
    return f"board:{peer}"


@dataclass
class _Loaded:
    board: Board
    loaded_upto: int  # every entry <= this was in the store when the board was built
    applied_upto: int  # the newest local id whose effect the board contains
    saved_upto: int  # upto of the snapshot in the store (-1: none)
    unsaved: int = 0  # entries applied since that snapshot


@dataclass(frozen=True)
class _Replay:
    entries: list[HistoryEntry]  # to apply, oldest first
    after_clear: bool  # they follow a "clear": start from a blank board
    newest: int  # the newest GRAPHICS local id in the store (0: none)


@dataclass(frozen=True)
class LoadReport:
    """How a board was opened (for tests and the benchmark)."""

    from_snapshot: bool
    replayed: int


class BoardBook:
    """Boards per peer, loaded lazily from ``store``; see the module docstring."""

    def __init__(
        self,
        store: LocalStore,
        width: int = BOARD_WIDTH,
        height: int = BOARD_HEIGHT,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self.store = store
        self.width = width
        self.height = height
        self.snapshot_every = snapshot_every
        self._boards: dict[int, _Loaded] = {}
        self.last_load: LoadReport | None = None

    # --- reading ------------------------------------------------------------------------

    def loaded(self, peer: int) -> bool:
        return peer in self._boards

    def board(self, peer: int) -> Board:
        """The board of the conversation with ``peer`` (built from the store on first use)."""
        loaded = self._boards.get(peer)
        if loaded is None:
            loaded = self._load(peer)
            self._boards[peer] = loaded
        return loaded.board

    def _load(self, peer: int) -> _Loaded:
        board, upto = self._from_snapshot(peer)
        saved_upto = upto if board is not None else -1
        if board is None:
            board, upto = Board(self.width, self.height), 0
        replay = self._entries_after(peer, upto)
        if replay.after_clear:
            malformed = board.malformed_count
            board = Board(self.width, self.height)
            board.malformed_count = malformed
        for entry in replay.entries:
            self._apply(board, entry)
        newest = max(upto, replay.newest)
        loaded = _Loaded(board, newest, newest, saved_upto, unsaved=len(replay.entries))
        self.last_load = LoadReport(from_snapshot=saved_upto >= 0, replayed=len(replay.entries))
        if replay.newest > upto and (
            saved_upto < 0 or len(replay.entries) >= self.snapshot_every // 4
        ):
            self._save(peer, loaded)
        return loaded

    def _from_snapshot(self, peer: int) -> tuple[Board | None, int]:
        try:
            found = self.store.snapshot(snapshot_key(peer))
            if found is None:
                return None, 0
            upto, text = found
            data = json.loads(text)
            board = Board.from_snapshot(data["board"])
            malformed = data.get("malformed", 0)
            if isinstance(malformed, int) and malformed >= 0:
                board.malformed_count = malformed
        except (ValueError, TypeError, KeyError, AttributeError, sqlite3.Error) as exc:
            log.warning("board snapshot of peer %d ignored: %s", peer, exc)
            return None, 0
        if (board.width, board.height) != (self.width, self.height):
            board.resize(self.width, self.height)
        return board, upto

    def _entries_after(self, peer: int, upto: int) -> _Replay:
        """GRAPHICS entries newer than ``upto``, oldest first, starting after the newest
        ``clear`` if there is one (then the board starts blank)."""
        newest_first: list[HistoryEntry] = []
        newest = 0
        before: int | None = None
        while True:
            page = self.store.page(peer, before=before, limit=REPLAY_PAGE, types=GRAPHICS_TYPES)
            if page and not newest:
                newest = page[-1].local_id or 0
            for entry in reversed(page):
                if (entry.local_id or 0) <= upto:
                    return _Replay(newest_first[::-1], False, newest)
                if entry.text == CLEAR:
                    return _Replay(newest_first[::-1], True, newest)
                newest_first.append(entry)
            if len(page) < REPLAY_PAGE:
                return _Replay(newest_first[::-1], False, newest)
            before = page[0].local_id

    @staticmethod
    def _apply(board: Board, entry: HistoryEntry) -> set[Cell]:
        return board.apply_text(entry.text)

    # --- changes ------------------------------------------------------------------------

    def record(self, entry: HistoryEntry) -> set[Cell] | None:
        """An incoming GRAPHICS entry was stored: apply it to its board unless the board
        already contains it. The board is loaded first if needed, so that boards with
        traffic stay loaded and their snapshots stay fresh (opening one later is instant).
        Returns the changed cells, or None when there is nothing to redraw (the entry was
        already in the board, or it is ours)."""
        if entry.outgoing or entry.type != pb.Message.GRAPHICS or entry.local_id is None:
            return None
        self.board(entry.peer)
        loaded = self._boards[entry.peer]
        if entry.local_id <= loaded.loaded_upto:
            return None
        changed = self._apply(loaded.board, entry)
        self._note(entry.peer, loaded, entry.local_id)
        return changed

    def drawn(self, peer: int, local_id: int | None) -> None:
        """Our own stroke (already on the board) was stored as ``local_id``."""
        loaded = self._boards.get(peer)
        if loaded is not None and local_id is not None:
            self._note(peer, loaded, local_id)

    def _note(self, peer: int, loaded: _Loaded, local_id: int) -> None:
        late = local_id <= loaded.saved_upto
        loaded.applied_upto = max(loaded.applied_upto, local_id)
        loaded.unsaved += 1
        if late or loaded.unsaved >= self.snapshot_every:
            self._save(peer, loaded)

    # --- snapshots ----------------------------------------------------------------------

    def save(self, peer: int) -> None:
        """Save the snapshot of ``peer``'s board now if it changed since the last one."""
        loaded = self._boards.get(peer)
        if loaded is not None and loaded.unsaved:
            self._save(peer, loaded)

    def save_all(self) -> None:
        for peer in list(self._boards):
            self.save(peer)

    def _save(self, peer: int, loaded: _Loaded) -> None:
        board = loaded.board
        data = {"board": board.snapshot(), "malformed": board.malformed_count}
        try:
            self.store.save_snapshot(
                snapshot_key(peer), loaded.applied_upto, json.dumps(data, ensure_ascii=False)
            )
        except sqlite3.Error as exc:  # e.g. the session closed the store first
            log.warning("board snapshot of peer %d not saved: %s", peer, exc)
            return
        loaded.saved_upto = loaded.applied_upto
        loaded.unsaved = 0

    def forget(self, peers: Iterable[int] | None = None) -> None:
        """Drop loaded boards (all by default): the next :meth:`board` reloads them.
        Used when events were lost, so that the board is rebuilt from the store."""
        for peer in list(self._boards if peers is None else peers):
            self._boards.pop(peer, None)
