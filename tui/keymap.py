"""Every key binding of the TUI in one table, read from the classes that define them.

Used by the help screen and to produce the README's table, so neither can drift from the
code. Invariant: rows come from the ``BINDINGS`` of the classes listed in
:func:`key_rows` plus :data:`EXTRA_ROWS` for keys Textual itself provides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from textual.binding import Binding, BindingType

from tui.commands import command_lines

_KEY_NAMES = {
    "escape": "Esc",
    "enter": "Enter",
    "delete": "Del",
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "tab": "Tab",
}


@dataclass(frozen=True)
class KeyRow:
    where: str
    keys: str
    action: str


EXTRA_ROWS = (
    KeyRow("Everywhere", "Tab / Shift+Tab", "Next / previous pane (composer: Tab completes)"),
    KeyRow("Everywhere", "Ctrl+C", "Copy the selection; with none, a reminder that Ctrl+Q quits"),
    KeyRow("Everywhere", "Ctrl+P", "Command palette: add buddy, search users, switch chat, quit"),
    KeyRow("Buddies", "↑ / ↓, Enter", "Move; open the chat (or answer a buddy request)"),
    KeyRow("Conversation", "↑ ↓ PgUp PgDn Home End", "Scroll (older history loads at the top)"),
    KeyRow("Board", "← ↑ → ↓ (Shift: 5 cells)", "Move the cursor; draws while the pen is down"),
    KeyRow("Board", "mouse: press, drag, release", "Draw a stroke with the current brush"),
    KeyRow("Mouse", "click, wheel", "Pick a buddy; click a message's ! to re-send; scroll"),
    KeyRow("Dialogs", "Y / N / Esc", "Answer, or cancel"),
)


def format_key(key: str) -> str:
    """``ctrl+n`` → ``Ctrl+N``, ``f1`` → ``F1``, ``escape`` → ``Esc``."""
    parts = key.split("+")
    words = [part.capitalize() for part in parts[:-1]]
    last = parts[-1]
    if last in _KEY_NAMES:
        words.append(_KEY_NAMES[last])
    elif len(last) == 1 or (last.startswith("f") and last[1:].isdigit()):
        words.append(last.upper())
    else:
        words.append(last.capitalize())
    return "+".join(words)


def format_keys(keys: str) -> str:
    return " / ".join(format_key(key.strip()) for key in keys.split(","))


def rows_of(where: str, bindings: Iterable[BindingType]) -> list[KeyRow]:
    """Rows for the bindings that have a description; beyond two keys, the others are
    named in the action column (keeps the keys column narrow on small terminals)."""
    rows = []
    for binding in bindings:
        if isinstance(binding, Binding) and binding.description:
            keys = [key.strip() for key in binding.key.split(",")]
            action = binding.description
            if len(keys) > 2:
                action += f" (also {format_keys(','.join(keys[2:]))})"
            rows.append(KeyRow(where, format_keys(",".join(keys[:2])), action))
    return rows


def key_rows(app_bindings: Sequence[BindingType]) -> list[KeyRow]:
    """The whole table, in the order a newcomer reads it."""
    from tui.dialogs.search import SearchDialog
    from tui.screens.finding import HistoryFinding
    from tui.screens.main import MainScreen
    from tui.screens.rooms import RoomScreen
    from tui.widgets.board_canvas import BoardCanvas
    from tui.widgets.board_pane import BoardPane
    from tui.widgets.buddy_list import BuddyList
    from tui.widgets.composer import Composer
    from tui.widgets.conversation import ConversationView
    from tui.widgets.room_list import RoomList

    rows = rows_of("Everywhere", app_bindings) + [
        row for row in EXTRA_ROWS if row.where == "Everywhere"
    ]
    rows += rows_of("Main screen", MainScreen.BINDINGS)
    rows += rows_of("Main screen", RoomScreen.BINDINGS)
    rows += rows_of("Main screen", HistoryFinding.BINDINGS)
    rows += [KeyRow("Main screen", "Alt+1 … Alt+9", "Open chat 1…9 (its number in the lists)")]
    rows += rows_of("Buddies", BuddyList.BINDINGS)
    rows += [row for row in EXTRA_ROWS if row.where == "Buddies"]
    rows += rows_of("Rooms", RoomList.BINDINGS)
    rows += rows_of("Composer", Composer.BINDINGS)
    rows += [KeyRow("Composer commands", use, text) for use, text in command_lines()]
    rows += rows_of("Conversation", ConversationView.BINDINGS)
    rows += [row for row in EXTRA_ROWS if row.where == "Conversation"]
    rows += rows_of("Search dialog", SearchDialog.BINDINGS)
    rows += rows_of("Board", BoardCanvas.BINDINGS) + rows_of("Board", BoardPane.BINDINGS)
    early = ("Everywhere", "Buddies", "Conversation")
    rows += [row for row in EXTRA_ROWS if row.where not in early]
    rows += file_rows()
    return rows


FILES_EXTRA_ROWS = (
    KeyRow("Files", "↑ / ↓, Enter", "Move; Enter on an offer accepts it (asks where to save)"),
    KeyRow("Files", "mouse: click an offer in the chat", "Show it in the Files pane"),
)


def file_rows() -> list[KeyRow]:
    """The Files pane and its dialogs (sending: pick files; receiving: where to save)."""
    from tui.dialogs.pick_file import PickFileDialog
    from tui.dialogs.save_file import SaveFileDialog
    from tui.widgets.files_pane import FilesPane
    from tui.widgets.path_input import PathInput

    rows = rows_of("Files", FilesPane.BINDINGS) + list(FILES_EXTRA_ROWS)
    rows += rows_of("Send files dialog", PathInput.BINDINGS)
    rows += [KeyRow("Send files dialog", "Enter", "Pick the file (path or tree); again: un-pick")]
    rows += rows_of("Send files dialog", PickFileDialog.BINDINGS)
    rows += rows_of("Save file dialog", PathInput.BINDINGS)
    rows += rows_of("Save file dialog", SaveFileDialog.BINDINGS)
    return rows


def markdown_table(rows: Iterable[KeyRow]) -> str:
    lines = ["| Where | Keys | Action |", "|---|---|---|"]
    lines += [f"| {r.where} | {r.keys} | {r.action} |" for r in rows]
    return "\n".join(lines)
