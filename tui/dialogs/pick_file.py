"""``PickFileDialog``: choose one or more files to send — a directory tree and a path input.

Returns the chosen paths (absolute, in the order they were picked) or None when cancelled.

Invariants:
- Every file-system question (is it a file? how large? completion) is answered in a worker
  thread; the tree reads directories in its own worker (:class:`~tui.widgets.file_tree.
  FileTree`). The dialog never blocks the event loop.
- Picking a file twice un-picks it; the list holds each path once.
- Names shown (tree, picked list, completions) are local but still arbitrary bytes: they are
  shown as ``Content`` text with controls removed, never as markup.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Static

from tui.display import format_size
from tui.path_completion import resolve_dir
from tui.transfers_view import clip
from tui.widgets.file_tree import FileTree
from tui.widgets.path_input import PathInput

PICKED_SHOWN = 8


def _inspect(path: Path) -> tuple[str, int]:
    """("file", size) / ("dir", 0) / ("missing", 0) / ("other", 0). Blocking."""
    try:
        info = path.stat()
    except OSError:
        return "missing", 0
    if path.is_dir():
        return "dir", 0
    if path.is_file():
        return "file", info.st_size
    return "other", 0


class PickFileDialog(ModalScreen[list[Path] | None]):
    """Files to send to ``peer_name``; see the module docstring."""

    DEFAULT_CSS = """
    PickFileDialog {
        align: center middle;
        & > #dialog {
            width: 90%;
            max-width: 110;
            height: 90%;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #pick-title { text-style: bold; margin-bottom: 1; }
        & #pick-completions { color: $text-muted; height: auto; max-height: 4; }
        & #pick-tree { height: 1fr; border: round $panel-lighten-2; }
        & #pick-tree:focus { border: round $accent; }
        & #pick-picked { height: auto; max-height: 10; margin-top: 1; }
        & #pick-buttons { height: auto; align-horizontal: right; }
        & Button { margin-left: 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "send", "Send", priority=True),
    ]

    def __init__(self, peer_name: str, start: Path) -> None:
        super().__init__()
        self.peer_name = peer_name
        self.start = start
        self.picked: dict[Path, int] = {}  # path → size, in pick order

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                Content.assemble("Send files to ", (clip(self.peer_name, 40), "bold")),
                id="pick-title",
            )
            yield PathInput(
                base=self.start,
                placeholder="Path of a file — Tab completes, Enter picks it",
                id="pick-path",
            )
            yield Static("", id="pick-completions")
            yield FileTree(self.start, id="pick-tree")
            yield Static("", id="pick-picked")
            with Horizontal(id="pick-buttons"):
                yield Button("Send (Ctrl+S)", id="pick-send", variant="primary", disabled=True)
                yield Button("Cancel (Esc)", id="pick-cancel")

    def on_mount(self) -> None:
        self._show_picked()
        self.query_one("#pick-path", PathInput).focus()

    @property
    def path_input(self) -> PathInput:
        return self.query_one("#pick-path", PathInput)

    # --- picking ----------------------------------------------------------------------------

    def on_path_input_completed(self, message: PathInput.Completed) -> None:
        completion = message.completion
        line = self.query_one("#pick-completions", Static)
        if completion.unique or not completion.candidates:
            line.update("")
            return
        shown = "  ".join(clip(name, 40) for name in completion.candidates)
        line.update(Content(shown + ("  …" if completion.more else "")))

    def on_input_changed(self, message: Input.Changed) -> None:
        self.query_one("#pick-completions", Static).update("")

    async def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        text = message.value.strip()
        if not text:
            return
        path = resolve_dir(text, self.start)  # ~ expanded, relative to the start folder
        kind, size = await asyncio.to_thread(_inspect, path)
        if kind == "file":
            self._toggle(path, size)
            self.path_input.value = ""
        elif kind == "dir":
            self.query_one("#pick-tree", FileTree).path = path
            self.path_input.value = text if text.endswith(os.sep) else text + os.sep
            self.path_input.cursor_position = len(self.path_input.value)
        else:
            what = "no such file" if kind == "missing" else "not a regular file"
            self.notify(f"{clip(text, 80)}: {what}", severity="warning", markup=False)

    async def on_directory_tree_file_selected(self, message: DirectoryTree.FileSelected) -> None:
        message.stop()
        kind, size = await asyncio.to_thread(_inspect, message.path)
        if kind == "file":
            self._toggle(message.path, size)

    def _toggle(self, path: Path, size: int) -> None:
        path = path.absolute()
        if path in self.picked:
            del self.picked[path]
        else:
            self.picked[path] = size
        self._show_picked()

    def _show_picked(self) -> None:
        count = len(self.picked)
        self.query_one("#pick-send", Button).disabled = count == 0
        box = self.query_one("#pick-picked", Static)
        if not count:
            box.update(
                Content("No file picked yet: Enter on a file in the tree, or type its path.")
            )
            return
        total = format_size(sum(self.picked.values()))
        lines: list[Content] = [
            Content.assemble(
                (f"{count} file{'s' if count != 1 else ''} picked", "bold"),
                f" ({total}) — Ctrl+S sends; Enter on a picked file again un-picks it",
            )
        ]
        for path, size in list(self.picked.items())[:PICKED_SHOWN]:
            lines.append(Content(f"  {clip(path.name, 60)} ({format_size(size)})"))
        if count > PICKED_SHOWN:
            lines.append(Content(f"  … and {count - PICKED_SHOWN} more"))
        box.update(Content("\n").join(lines))

    # --- answers ----------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "pick-send":
            self.action_send()
        else:
            self.action_cancel()

    def action_send(self) -> None:
        if self.picked:
            self.dismiss(list(self.picked))

    def action_cancel(self) -> None:
        self.dismiss(None)
