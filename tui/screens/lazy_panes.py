"""``LazyPanes``: the workspace's Board and Files panes, built the first time they are needed.

:class:`~tui.screens.main.MainScreen` derives from it (over
:class:`~tui.screens.attention.AttentionScreen`). The workspace shows its Chat, Board and
Files tabs from login on, but the Board and Files tabs hold an empty ``TabPane`` each: their
widgets (:class:`~tui.widgets.board_pane.BoardPane`, :class:`~tui.widgets.files_pane.FilesPane`)
and their modules are imported and mounted into that pane the first time it is needed — its
tab shown (F2, F3, a click on the tab, the palette) or an action that needs it (Ctrl+T, a
click on a file offer, the palette's board commands). Reason: the client's memory (issue 15
item 7, docs/BENCHMARKS.md).

State owned here, outside the widgets, so that nothing waits for them to exist:
- the transfers the Files pane shows (a :class:`~tui.state.transfers.TransferBook`), fed with
  every transfer item of the feed; the toasts for transfers that ended and the tab's
  "Files (N)" label (open offers) come from it, the pane built or not;
- the board the Board pane is to show (the open chat, by the name it was opened or renamed
  with) and the count of our strokes the relay refused, per chat.

Invariants:
- A chat's board is read from the store (snapshot, then replay) only when the Board pane is
  shown for it, or a board command (clear, export) needs it. Strokes that arrive before are
  in the history: the board built then replays them (:class:`~tui.state.board_book.BoardBook`
  reads the store first and applies only newer entries afterwards), so none is lost or
  applied twice. A stroke for a board not loaded is left to that replay.
- A pane is shown, focused or acted on only once mounted: what asked for it while it was
  being built runs afterwards, in the order asked (:meth:`LazyPanes.when_built`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from textual.widgets import TabbedContent, TabPane

from tui.client.history import HistoryEntry, MessageState
from tui.client.transfer import TransferManager
from tui.client.transfer.events import (
    TransferCancelled,
    TransferCompleted,
    TransferDeclined,
    TransferEvent,
    TransferFailed,
)
from tui.client.transfer.store import TransferState
from tui.feed import TransfersLoaded
from tui.screens.attention import AttentionScreen
from tui.settings import AppConfig
from tui.state.transfers import TransferBook
from tui.transfers_view import clip, clip_path

if TYPE_CHECKING:
    from tui.widgets.board_pane import BoardPane
    from tui.widgets.files_pane import FilesPane

BOARD = "board"
FILES = "files"


class LazyPanes(AttentionScreen):
    """The Board and Files panes of the main screen; see the module docstring."""

    config: AppConfig
    transfers: TransferManager | None  # None: no Files tab (file transfer unavailable)

    def __init__(
        self, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name, id, classes)
        self.transfer_book = TransferBook()
        self.board_unsent: dict[int, int] = {}  # our strokes the relay refused, per chat
        self._board_wanted: tuple[int, str] | None = None  # (peer, name) of the open chat
        self._board_stale = False  # events were lost: reload the shown board from the store
        self._board: BoardPane | None = None
        self._files: FilesPane | None = None
        self._waiting: dict[str, list[Callable[[], None]]] = {}  # panes being built

    # --- provided by the main screen --------------------------------------------------------

    def name_of(self, uid: int) -> str:
        raise NotImplementedError

    # --- the panes --------------------------------------------------------------------------

    def lazy_panes(self) -> Iterable[TabPane]:
        """The Board and Files tabs, empty until :meth:`when_built` fills them."""
        yield TabPane("Board", id=BOARD)
        if self.transfers is not None:
            yield TabPane("Files", id=FILES)

    @property
    def board_pane(self) -> BoardPane:
        """The Board pane; only once built (shown at least once)."""
        if self._board is None:
            raise LookupError("the Board pane is not built yet")
        return self._board

    @property
    def files_pane(self) -> FilesPane | None:
        """The Files pane once built (None before, and without file transfer)."""
        return self._files

    def pane_ready(self, pane_id: str) -> bool:
        """Whether workspace pane ``pane_id`` can be shown now (the chat always can)."""
        if pane_id == BOARD:
            return self._board is not None
        if pane_id == FILES:
            return self._files is not None or self.transfers is None
        return True

    def when_built(self, pane_id: str, then: Callable[[], None]) -> None:
        """Run ``then`` once pane ``pane_id`` is mounted: at once if it is, else after the
        build (started here if need be), after whatever asked for it before."""
        if self.pane_ready(pane_id):
            then()
            return
        waiting = self._waiting.get(pane_id)
        if waiting is not None:
            waiting.append(then)
            return
        self._waiting[pane_id] = [then]
        self.call_later(self._build, pane_id)

    async def _build(self, pane_id: str) -> None:
        holder = self.query_one("#workspace", TabbedContent).get_pane(pane_id)
        if pane_id == BOARD:
            from tui.widgets.board_pane import BoardPane  # first use (module docstring)

            board = BoardPane(self.session, self.config.export_dir, unsent=self.board_unsent)
            await holder.mount(board)
            self._board = board
            self._sync_board()
        else:
            from tui.widgets.files_pane import FilesPane  # first use (module docstring)

            assert self.transfers is not None  # pane_ready() is true without transfers
            files = FilesPane(
                self.transfers,
                self.transfer_book,
                name_of=self.name_of,
                active_peer=lambda: self.chat.active,
            )
            await holder.mount(files)
            self._files = files
        for then in self._waiting.pop(pane_id, []):
            then()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A click on a tab (or F2/F3): build its pane, and the board follows the chat."""
        if event.tabbed_content.id == "workspace":
            if event.pane.id == BOARD:
                self.when_built(BOARD, self._sync_board)
            elif event.pane.id == FILES:
                self.when_built(FILES, lambda: None)

    # --- the board --------------------------------------------------------------------------

    def _board_shown(self) -> bool:
        return self.query_one("#workspace", TabbedContent).active == BOARD

    def board_follows(self, peer: int | None, name: str = "") -> None:
        """The open chat is now ``peer`` (None: none), shown as ``name`` (made safe): the
        Board pane shows its board now if it is in front, else when it comes to the front."""
        self._board_wanted = None if peer is None else (peer, name)
        if self._board_shown():
            self._sync_board()

    def board_renamed(self, peer: int, name: str) -> None:
        """Chat ``peer`` (a room) has a new name: its board's title follows if it is open."""
        if self._board_wanted is not None and self._board_wanted[0] == peer:
            self.board_follows(peer, name)

    def _sync_board(self) -> None:
        board = self._board
        if board is None:
            return
        wanted = self._board_wanted
        if wanted is None:
            if board.peer is not None:
                board.close_peer()
        elif self._board_stale or (board.peer, board.peer_name) != wanted:
            board.open_peer(*wanted)  # loads the board from the store if it is not loaded
        self._board_stale = False

    def board_action(self, act: Callable[[BoardPane], object]) -> None:
        """Run ``act`` (the palette's clear, export) on the Board pane showing the open chat's
        board, building the pane first if need be."""

        def run() -> None:
            self._sync_board()
            act(self.board_pane)

        self.when_built(BOARD, run)

    def board_incoming(self, entry: HistoryEntry) -> None:
        """A stroke from a peer was stored: drawn if its board is loaded (else its board
        replays it from the store when loaded)."""
        board = self._board
        if board is not None and board.book.loaded(entry.peer):
            board.incoming(entry)

    def board_outgoing(self, entry: HistoryEntry) -> None:
        """One of our strokes changed state: count those the relay refused."""
        if entry.state is MessageState.FAILED:
            self.board_unsent[entry.peer] = self.board_unsent.get(entry.peer, 0) + 1
            if self._board is not None:
                self._board.unsent_changed(entry.peer)

    def board_reload(self) -> None:
        """Events were lost: every board is read from the store again when next shown."""
        if self._board is not None:
            self._board.book.forget()
            self._board_stale = True
            if self._board_shown():
                self._sync_board()

    def save_boards(self) -> None:
        """Save the snapshots of the loaded boards (on quit: the next start opens them fast)."""
        if self._board is not None:
            self._board.book.save_all()

    # --- file transfers ---------------------------------------------------------------------

    def files_event(self, event: TransfersLoaded | TransferEvent) -> None:
        """One transfer item of the feed: into the book, a toast if it ended, and into the
        Files pane if it is built."""
        if self.transfers is None:
            return
        book = self.transfer_book
        if isinstance(event, TransfersLoaded):  # newest first
            changed = [book.put(transfer)[0] for transfer in reversed(event.transfers)]
        else:
            changed = [book.apply(event)[0]]
            self._toast_transfer(event)
        if self._files is not None:
            self._files.show_transfers(changed)
        offers = sum(
            1 for t in book.ordered() if not t.outgoing and t.state is TransferState.OFFERED
        )
        tab = self.query_one("#workspace", TabbedContent).get_tab(FILES)
        tab.label = f"Files ({offers})" if offers else "Files"

    def files_action(self, act: Callable[[FilesPane], object]) -> None:
        """Run ``act`` on the Files pane, building it first if need be (no-op without file
        transfer)."""

        def run() -> None:
            if self._files is not None:
                act(self._files)

        if self.transfers is not None:
            self.when_built(FILES, run)

    def _toast_transfer(self, event: TransferEvent) -> None:
        transfer = event.transfer
        name, peer = clip(transfer.name, 60), self.name_of(transfer.peer)
        if isinstance(event, TransferCompleted):
            if transfer.outgoing:
                self.notify(f"{peer} received {name}.", title="File sent", markup=False)
            else:
                self.notify(
                    f"{name} saved to {clip_path(event.path)}", title="File received", markup=False
                )
        elif isinstance(event, TransferFailed):
            self.notify(
                f"{name}: {clip(event.reason, 200)}",
                title="File transfer failed",
                severity="error",
                timeout=10,
                markup=False,
            )
        elif isinstance(event, TransferCancelled) and event.by_peer:
            self.notify(
                f"{name}: {clip(event.reason, 200)}",
                title="File transfer cancelled",
                severity="warning",
                markup=False,
            )
        elif isinstance(event, TransferDeclined) and event.by_peer:
            self.notify(f"{peer} declined {name}.", severity="warning", markup=False)
