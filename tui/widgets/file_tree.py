"""``FileTree``: a ``DirectoryTree`` that shows file names literally and hides dot files.

Textual's ``DirectoryTree`` passes each file name to ``Tree.process_label``, which parses a
``str`` as markup: a file called ``[/]x`` would crash the app and ``[@click=app.quit]x``
would become a clickable action — and received files land on disk with names the peer
chose. Invariant: every label here is a ``Text`` of the name with terminal controls
removed; nothing is parsed. Directory reading stays in ``DirectoryTree``'s worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.text import Text, TextType
from textual.widgets import DirectoryTree

from protocol.validation import printable_text


class FileTree(DirectoryTree):
    """See the module docstring."""

    DEFAULT_CSS = """
    FileTree {
        height: 1fr;
        background: $surface;
    }
    """

    def process_label(self, label: TextType) -> Text:
        plain = label.plain if isinstance(label, Text) else label
        return Text(printable_text(plain, keep_newlines=False))

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [path for path in paths if not path.name.startswith(".")]
