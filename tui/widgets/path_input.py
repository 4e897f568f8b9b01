"""``PathInput``: an ``Input`` for a file or directory path, where Tab completes the path.

Invariants:
- Completion reads one directory, bounded (:func:`tui.path_completion.complete_path`), in
  a worker thread: the event loop never waits on the file system.
- A completion is applied only if the text did not change while the directory was read.
- Tab with nothing to complete moves the focus on, as Tab does elsewhere; ambiguous
  completions are reported with :class:`PathInput.Completed` (the dialog lists them).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input

from tui.path_completion import Completion, complete_path


class PathInput(Input):
    """A path; Tab completes it from the file system (relative paths start at ``base``)."""

    DEFAULT_CSS = """
    PathInput {
        width: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete path"),
    ]

    class Completed(Message):
        """A Tab press was answered: ``completion`` (candidates, possibly several)."""

        def __init__(self, path_input: PathInput, completion: Completion) -> None:
            super().__init__()
            self.path_input = path_input
            self.completion = completion

        @property
        def control(self) -> PathInput:
            return self.path_input

    def __init__(
        self,
        value: str = "",
        *,
        base: Path,
        placeholder: str = "",
        id: str | None = None,
    ) -> None:
        super().__init__(value, placeholder=placeholder, id=id)
        self.base = base

    async def action_complete(self) -> None:
        typed = self.value
        completion = await asyncio.to_thread(complete_path, typed, self.base)
        if self.value != typed:
            return  # the user kept typing: this answer is stale
        if completion.text != typed:
            self.value = completion.text
            self.cursor_position = len(self.value)
        elif not completion.candidates:
            self.screen.focus_next()
            return
        self.post_message(self.Completed(self, completion))
