"""``FilesPane``: the list of file transfers, both directions, with actions (the Files tab).

It is not a ``TabPane``: :class:`~tui.screens.lazy_panes.LazyPanes` mounts it into the Files
tab's (empty) pane the first time that tab (or an action of this pane) is needed; until then
this module is not imported.

Rows (:class:`~tui.widgets.transfer_row.TransferRow`, oldest first) show the file, the
peer, a progress bar with rate and ETA, and the state with its reason. Keys (shown in the
Footer while the pane has the focus; the buttons do the same): ``s`` send files to the
open chat's buddy, ``a`` accept (asks where to save), ``d`` decline, ``c`` cancel,
``Del`` remove a finished row.

Layout (usable from 60×20): one line of compact buttons, showing only what applies to the
selected row — Send, plus Accept and Decline for an offer we received (Decline is its
cancel), Cancel for anything else unfinished, Remove for a finished row — so the row of
buttons fits a narrow pane and Cancel is never pushed out of sight. Rows wrap their text.

Invariants:
- The engine (:class:`~tui.client.transfer.TransferManager`) is the only source of truth.
  The pane does not listen to it: the main screen keeps the
  :class:`~tui.state.transfers.TransferBook` (fed in the order of the net worker's
  :class:`~tui.feed.ClientFeed`: a snapshot of the transfers, offers that came in the
  backlog included, then every later event; toasts and the tab's "Files (N)" label are
  the screen's too); the pane shows what the book holds when it is mounted, then each
  transfer the screen hands it (:meth:`show_transfers`).
- Nothing here blocks the loop: offers (hashing), accepts and cancels run in workers and
  the engine does its disk work in threads; the dialogs do their file-system checks in
  threads too.
- Names and reasons from peers are shown through :mod:`tui.transfers_view` (``Content``,
  controls removed, bounded) and toasts with ``markup=False``.
- At most :data:`~tui.feed.LOADED` transfers are loaded at start (the newest); later ones
  are added.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import platformdirs
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Button, ListView, Static

from tui.client.history import HistoryEntry
from tui.client.transfer import TransferError, TransferManager
from tui.client.transfer.store import Transfer, TransferState
from tui.dialogs.pick_file import PickFileDialog
from tui.dialogs.save_file import SaveChoice, SaveFileDialog
from tui.state.transfers import TransferBook
from tui.transfers_view import (
    RowActions,
    TransferRowView,
    actions_for,
    describe,
    preparing_view,
)
from tui.widgets.transfer_row import TransferRow

_BUTTONS = {
    "files-send": "send_files",
    "files-accept": "accept",
    "files-decline": "decline",
    "files-cancel": "cancel_transfer",
    "files-forget": "forget",
}
_ACTION_NEEDS = {
    "accept": "accept",
    "decline": "decline",
    "cancel_transfer": "cancel",
    "forget": "forget",
}


class FilesPane(Widget):
    """The "Files" tab's content; see the module docstring."""

    DEFAULT_CSS = """
    FilesPane {
        height: 1fr;
        padding: 0;
        layout: vertical;
        & > #files-hint { height: auto; padding: 0 1; color: $text-muted; }
        & > #files-list {
            height: 1fr;
            border: round $panel-lighten-2;
            background: $surface;
        }
        & > #files-list:focus { border: round $accent; }
        & > #files-buttons { height: 1; padding: 0 1; }
        & > #files-buttons > Button { margin-right: 1; min-width: 0; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "send_files", "Send files…"),
        Binding("a", "accept", "Accept…"),
        Binding("d", "decline", "Decline"),
        Binding("c", "cancel_transfer", "Cancel transfer"),
        Binding("delete", "forget", "Remove from list"),
    ]

    def __init__(
        self,
        transfers: TransferManager,
        book: TransferBook,
        *,
        name_of: Callable[[int], str],
        active_peer: Callable[[], int | None],
        browse_dir: Path | None = None,
        id: str = "files-pane",
    ) -> None:
        super().__init__(id=id)
        self.transfers = transfers
        self.name_of = name_of
        self.active_peer = active_peer
        self.browse_dir = browse_dir or Path.cwd()
        self.book = book  # the screen's: it records the engine's events
        self.rows: dict[int, TransferRow] = {}
        self._preparing = itertools.count(-1, -1)

    def compose(self) -> ComposeResult:
        yield ListView(id="files-list")
        yield Static("", id="files-hint")
        with Horizontal(id="files-buttons"):
            yield Button("Send… (s)", id="files-send", variant="primary", compact=True)
            yield Button("Accept… (a)", id="files-accept", variant="success", compact=True)
            yield Button("Decline (d)", id="files-decline", compact=True)
            yield Button("Cancel (c)", id="files-cancel", variant="error", compact=True)
            yield Button("Remove (Del)", id="files-forget", compact=True)

    def on_mount(self) -> None:
        self.list_view.border_title = "File transfers"
        self.show_transfers(self.book.ordered())

    @property
    def list_view(self) -> ListView:
        return self.query_one("#files-list", ListView)

    # --- engine events --------------------------------------------------------------------

    def show_transfers(self, transfers: Sequence[Transfer]) -> None:
        """Show these transfers (oldest first) as the book now records them: their rows are
        added or updated."""
        for transfer in transfers:
            self._show(transfer)
        self._sync()

    # --- rows -------------------------------------------------------------------------------

    def _view(self, transfer: Transfer) -> TransferRowView:
        return describe(transfer, self.name_of(transfer.peer))

    def _show(self, transfer: Transfer) -> None:
        row = self.rows.get(transfer.id)
        view = self._view(transfer)
        if row is not None:
            row.show(view)
            return
        row = TransferRow(transfer.id, view)
        self.rows[transfer.id] = row
        list_view = self.list_view
        list_view.append(row)
        if list_view.index is None or (
            not transfer.outgoing and transfer.state is TransferState.OFFERED
        ):
            list_view.index = len(list_view) - 1  # a new offer gets the cursor

    def _remove_row(self, row_id: int) -> None:
        row = self.rows.pop(row_id, None)
        if row is not None and row.parent is not None:
            list_view = self.list_view
            list_view.remove_items([list_view.children.index(row)])

    @property
    def selected(self) -> Transfer | None:
        child = self.list_view.highlighted_child
        if isinstance(child, TransferRow):
            return self.book.get(child.transfer_id)
        return None

    def select(self, transfer_id: int) -> bool:
        row = self.rows.get(transfer_id)
        if row is None or row.parent is None:
            return False
        self.list_view.index = self.list_view.children.index(row)
        return True

    def select_entry(self, entry: HistoryEntry) -> bool:
        """Put the cursor on the transfer a conversation line (an offer) belongs to."""
        for transfer in self.book.ordered():
            if (not entry.outgoing and transfer.history_id == entry.local_id) or (
                entry.outgoing and transfer.outgoing and transfer.offer_msg_id == entry.msg_id
            ):
                return self.select(transfer.id)
        return False

    def _sync(self) -> None:
        """Buttons, Footer bindings and hint follow the selection and states."""
        selected = self.selected
        can = actions_for(selected) if selected is not None else RowActions()
        for button_id, action in _BUTTONS.items():
            need = _ACTION_NEEDS.get(action)
            enabled = need is None or getattr(can, need)
            if action == "cancel_transfer" and can.decline:
                enabled = False  # an offer we received: Decline is its cancel
            button = self.query_one(f"#{button_id}", Button)
            button.disabled = not enabled
            button.display = enabled
        self.refresh_bindings()
        open_offers = sum(
            1 for t in self.book.ordered() if not t.outgoing and t.state is TransferState.OFFERED
        )
        hint = self.query_one("#files-hint", Static)
        if not self.rows:
            hint.update(
                "No transfers yet. s (or Ctrl+T in a chat) sends files to the buddy "
                "of the open chat; offers you receive show up here."
            )
        elif open_offers:
            hint.update(
                f"{open_offers} offer{'s' if open_offers != 1 else ''} waiting: "
                "a accepts (you choose where to save), d declines."
            )
        else:
            hint.update("")

    def on_list_view_highlighted(self, message: ListView.Highlighted) -> None:
        message.stop()
        self._sync()

    def on_list_view_selected(self, message: ListView.Selected) -> None:
        message.stop()
        selected = self.selected
        if selected is not None and actions_for(selected).accept:
            self.action_accept()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        action = _BUTTONS.get(event.button.id or "")
        if action is not None:
            getattr(self, f"action_{action}")()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        need = _ACTION_NEEDS.get(action)
        if need is None:
            return True
        selected = self.selected
        return True if selected is not None and getattr(actions_for(selected), need) else None

    # --- actions ----------------------------------------------------------------------------

    def action_send_files(self) -> None:
        peer = self.active_peer()
        if peer is None:
            self.notify("Open a chat first: files go to the buddy of the open chat.")
            return
        name = self.name_of(peer)

        def picked(paths: list[Path] | None) -> None:
            if not paths:
                return
            self.browse_dir = paths[-1].parent
            for path in paths:
                self.run_worker(self._offer(peer, path), group="offers", exit_on_error=False)

        self.app.push_screen(PickFileDialog(name, self.browse_dir), picked)

    async def _offer(self, peer: int, path: Path) -> None:
        row_id = next(self._preparing)
        row = TransferRow(row_id, preparing_view(path.name, self.name_of(peer)))
        self.rows[row_id] = row
        self.list_view.append(row)
        self._sync()
        try:
            await self.transfers.offer(peer, path)
        except TransferError as exc:
            self.notify(str(exc), title="Cannot send", severity="error", markup=False)
        finally:
            self._remove_row(row_id)
            self._sync()

    def action_accept(self) -> None:
        transfer = self.selected
        if transfer is None or not actions_for(transfer).accept:
            return
        dialog = SaveFileDialog(
            transfer,
            self.name_of(transfer.peer),
            self.default_dir,
            self.transfers.reserved_targets,
        )

        def chosen(choice: SaveChoice | None) -> None:
            if choice is not None:
                self.run_worker(self._accept(transfer.id, choice), exit_on_error=False)

        self.app.push_screen(dialog, chosen)

    @property
    def default_dir(self) -> Path:
        """Where received files go unless the user says otherwise."""
        return self.transfers.downloads_dir or Path(platformdirs.user_downloads_dir())

    async def _accept(self, transfer_id: int, choice: SaveChoice) -> None:
        # None = the default folder, which the engine creates if it does not exist yet.
        directory = None if choice.directory == self.default_dir else choice.directory
        try:
            await self.transfers.accept(transfer_id, directory, choice.name)
        except TransferError as exc:
            self.notify(str(exc), title="Cannot accept", severity="error", markup=False)

    def action_decline(self) -> None:
        transfer = self.selected
        if transfer is None or not actions_for(transfer).decline:
            return
        try:
            self.transfers.decline(transfer.id)
        except TransferError as exc:
            self.notify(str(exc), severity="error", markup=False)

    def action_cancel_transfer(self) -> None:
        transfer = self.selected
        if transfer is not None and actions_for(transfer).cancel:
            self.run_worker(self._cancel(transfer.id), exit_on_error=False)

    async def _cancel(self, transfer_id: int) -> None:
        try:
            await self.transfers.cancel(transfer_id)
        except TransferError as exc:
            self.notify(str(exc), severity="error", markup=False)

    def action_forget(self) -> None:
        transfer = self.selected
        if transfer is None or not actions_for(transfer).forget:
            return
        if self.transfers.forget(transfer.id):
            self.book.forget(transfer.id)
            self._remove_row(transfer.id)
            self._sync()
