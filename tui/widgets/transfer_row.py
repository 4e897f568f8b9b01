"""``TransferRow``: one transfer in the Files pane — title, progress bar, state.

Invariant: it only shows a :class:`~tui.transfers_view.TransferRowView` (texts already
made safe, as ``Content``); it never talks to the engine. Updating it repaints its own
three widgets and nothing else. Title and state wrap (a narrow terminal shows all of a
saved path and of the totals, on more lines); the state sits under the bar, and a finished
row shows no bar.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ListItem, ProgressBar, Static

from tui.transfers_view import TransferRowView

_STATE_CLASSES = (
    "-offered",
    "-active",
    "-completed",
    "-declined",
    "-cancelled",
    "-failed",
    "-preparing",
)


class TransferRow(ListItem):
    """A row of the Files pane for transfer ``transfer_id`` (< 0: an offer being prepared)."""

    DEFAULT_CSS = """
    TransferRow {
        height: auto;
        padding: 0 1;
        & > .transfer-title { height: auto; }
        & > .transfer-line { height: auto; layout: vertical; }
        & ProgressBar { width: auto; margin-right: 1; }
        & ProgressBar > Bar { width: 24; }
        & .transfer-status { width: 1fr; height: auto; color: $text-muted; }
        &.-offered .transfer-status { color: $text-accent; text-style: bold; }
        &.-active .transfer-status { color: $foreground; }
        &.-completed .transfer-status { color: $text-success; }
        &.-failed .transfer-status { color: $text-error; }
        &.-cancelled .transfer-status, &.-declined .transfer-status { color: $text-warning; }
    }
    """

    def __init__(self, transfer_id: int, view: TransferRowView) -> None:
        super().__init__(id=f"transfer-{transfer_id}" if transfer_id >= 0 else None)
        self.transfer_id = transfer_id
        self.view = view

    def compose(self) -> ComposeResult:
        yield Static(self.view.title, classes="transfer-title")
        with Horizontal(classes="transfer-line"):
            yield ProgressBar(total=1, show_eta=False, id="bar")
            yield Static(self.view.status, classes="transfer-status")

    def on_mount(self) -> None:
        self._apply()

    @property
    def bar(self) -> ProgressBar:
        return self.query_one("#bar", ProgressBar)

    def show(self, view: TransferRowView) -> None:
        self.view = view
        if self.is_mounted:
            self._apply()

    def _apply(self) -> None:
        view = self.view
        self.remove_class(*_STATE_CLASSES)
        self.add_class(view.state_class)
        self.query_one(".transfer-title", Static).update(view.title)
        self.query_one(".transfer-status", Static).update(view.status)
        bar = self.bar
        if view.progress is None:
            bar.display = False
        else:
            done, total = view.progress
            bar.display = view.bar_visible
            if total <= 0:
                done = total = 1
            bar.update(total=total, progress=min(done, total))
