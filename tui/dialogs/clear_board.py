"""The confirmation asked before clearing a drawing board (it clears the peer's board too).

Invariant: answers ``"clear"`` or ``"keep"`` (None on Escape); "Keep" has the focus, so an
absent-minded Enter clears nothing. The peer's name stays literal (``Content``).
"""

from __future__ import annotations

from textual.content import Content

from tui.dialogs.confirm import Choice, ChoiceDialog


def confirm_clear(name: str) -> ChoiceDialog:
    """ "Clear the board you share with NAME?" — Clear / Keep (Keep focused)."""
    question = Content.assemble(
        "Clear the board you share with ",
        (name, "bold"),
        "? It is cleared on their side too, and this cannot be undone.",
    )
    return ChoiceDialog(
        question,
        [Choice("clear", "Clear", "y", "error"), Choice("keep", "Keep", "n")],
        focus="keep",
    )
