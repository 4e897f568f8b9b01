"""``BoardPane``: the shared drawing board of the open conversation, in the workspace's Board tab.

It is not a ``TabPane``: :class:`~tui.screens.lazy_panes.LazyPanes` mounts it into the Board
tab's (empty) pane the first time that tab is needed, and tells it which board to show
(:meth:`BoardPane.open_peer`) when the tab is shown; until then this module is not imported.

It joins the pure pieces: the :class:`~tui.state.board_book.BoardBook` (boards per conversation,
kept in step with the history), the :class:`~tui.widgets.board_canvas.BoardCanvas` (what the
user sees and draws on) and the session (strokes go out as durable GRAPHICS messages).

Invariants:
- A stroke is drawn locally first, then persisted and sent with ``session.send`` (durable:
  retried, and delivered to a peer who is offline when they come back); its entry is
  reported to the book so that the board and its snapshots stay consistent.
- Incoming GRAPHICS reach :meth:`BoardPane.incoming` (from the main screen's event handler)
  when their board is loaded, and are drawn as they arrive on the board they belong to —
  shown or not; a board not loaded yet reads them from the store when it is. They never
  become toasts, chat lines or unread counts. Malformed ones are counted on the board and
  shown in the canvas's subtitle.
- "clear" asks first (:func:`tui.dialogs.clear_board.confirm_clear`), then clears both
  boards; a clear from the peer applies without asking.
- Texts shown to the user that contain names or paths go through ``Content`` or
  ``notify(..., markup=False)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widget import Widget

from protocol import chat_pb2 as pb
from protocol.validation import ClearBoard, format_graphics
from tui.board_export import export_text
from tui.client.history import HistoryEntry
from tui.client.session import ClientSession
from tui.dialogs.clear_board import confirm_clear
from tui.state.board_book import CLEAR, BoardBook
from tui.widgets.board_canvas import BoardCanvas


class BoardPane(Widget):
    """The "Board" tab's content; see the module docstring."""

    DEFAULT_CSS = """
    BoardPane {
        height: 1fr;
        padding: 0;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "clear_board", "Clear board"),
        Binding("x", "export_board", "Export"),
    ]

    def __init__(
        self,
        session: ClientSession,
        export_dir: Path | None = None,
        *,
        unsent: dict[int, int] | None = None,
        id: str = "board-pane",
    ) -> None:
        super().__init__(id=id)
        self.session = session
        self.book = BoardBook(session.store)
        self.export_dir = export_dir
        self.peer: int | None = None
        self.peer_name = ""
        self.unsent = {} if unsent is None else unsent  # our refused strokes, per peer

    def compose(self) -> ComposeResult:
        yield BoardCanvas(id="board-canvas")

    @property
    def canvas(self) -> BoardCanvas:
        return self.query_one("#board-canvas", BoardCanvas)

    # --- called by the main screen ------------------------------------------------------------

    def open_peer(self, peer: int, name: str) -> None:
        """Show the board shared with ``peer`` (display name ``name``, already made safe)."""
        if self.peer is not None and self.peer != peer:
            self.book.save(self.peer)
        self.peer, self.peer_name = peer, name
        self._show()

    def close_peer(self) -> None:
        if self.peer is not None:
            self.book.save(self.peer)
        self.peer = None
        self.canvas.show_none()

    def _show(self) -> None:
        peer = self.peer
        if peer is None:
            return
        title = Content.assemble(  # a room (negative id) or a buddy
            "Board of the room " if peer < 0 else "Board with ", (self.peer_name, "bold")
        )
        self.canvas.show(peer, self.book.board(peer), title)
        self._update_note()

    def incoming(self, entry: HistoryEntry) -> None:
        """A GRAPHICS message from a peer was stored: draw it if its board is loaded."""
        changed = self.book.record(entry)
        if changed is None or entry.peer != self.peer:
            return
        canvas = self.canvas
        canvas.cells_changed(changed)
        if not changed:  # nothing visible changed: maybe the ignored count did
            canvas.update_status()

    def unsent_changed(self, peer: int) -> None:
        """The count of ``peer``'s refused strokes (:attr:`unsent`, kept by the caller) grew."""
        if peer == self.peer:
            self._update_note()

    def _update_note(self) -> None:
        canvas = self.canvas
        count = self.unsent.get(self.peer or 0, 0)
        canvas.note = f"{count} not sent" if count else ""
        canvas.update_status()

    # --- strokes ------------------------------------------------------------------------------

    def on_board_canvas_drawn(self, message: BoardCanvas.Drawn) -> None:
        message.stop()
        self._send(message.peer, format_graphics(message.segment))

    def _send(self, peer: int, text: str) -> None:
        entry = self.session.send(peer, pb.Message.GRAPHICS, text=text)
        self.book.drawn(peer, entry.local_id)

    # --- actions ------------------------------------------------------------------------------

    def action_clear_board(self) -> None:
        peer = self.peer
        if peer is None:
            self.notify("Open a conversation first.")
            return

        def answered(answer: str | None) -> None:
            if answer == "clear" and self.peer == peer:
                board = self.book.board(peer)
                self.canvas.cells_changed(board.apply(ClearBoard()))
                self._send(peer, CLEAR)

        self.app.push_screen(confirm_clear(self.peer_name), answered)

    def action_export_board(self) -> None:
        peer = self.peer
        if peer is None:
            self.notify("Open a conversation first.")
            return
        text = self.book.board(peer).to_text()
        try:
            path = export_text(text, self.peer_name, self.export_dir)
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error", markup=False)
            return
        self.notify(f"Board saved to {path}", title="Board exported", markup=False)
