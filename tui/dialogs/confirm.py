"""``ChoiceDialog``: a question with a few answers (confirm removal, answer a request).

Invariants:
- Returns the id of the chosen answer, or None on Escape; every answer has a one-letter key.
- The question is a ``Content`` built by the caller (names inside stay literal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static


@dataclass(frozen=True)
class Choice:
    id: str
    label: str
    key: str  # one letter
    variant: str = "default"  # Button variant: default, primary, success, warning, error


class ChoiceDialog(ModalScreen[str | None]):
    """Ask ``question``; dismiss with the chosen :class:`Choice` id (None: escaped)."""

    DEFAULT_CSS = """
    ChoiceDialog {
        align: center middle;
        & > #dialog {
            width: 64;
            max-width: 100%;
            height: auto;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #question { margin: 1 0; }
        & #buttons { height: auto; align-horizontal: right; }
        & Button { margin-left: 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, question: Content, choices: list[Choice], focus: str | None = None) -> None:
        super().__init__()
        self.question = question
        self.choices = choices
        self.initial_focus = focus or choices[-1].id

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")
            with Horizontal(id="buttons"):
                for choice in self.choices:
                    yield Button(
                        f"{choice.label} ({choice.key})",
                        id=f"choice-{choice.id}",
                        variant=choice.variant,  # type: ignore[arg-type]
                    )

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.initial_focus}", Button).focus()

    def on_key(self, event: events.Key) -> None:
        for choice in self.choices:
            if event.key == choice.key:
                event.stop()
                self.dismiss(choice.id)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def confirm_remove(name: str) -> ChoiceDialog:
    """ "Remove NAME from your buddies?" — Remove / Keep (Keep focused)."""
    question = Content.assemble(
        "Remove ",
        (name, "bold"),
        " from your buddies? You will no longer see each other "
        "online or be able to exchange messages until one of you adds the other again.",
    )
    return ChoiceDialog(
        question, [Choice("remove", "Remove", "y", "error"), Choice("keep", "Keep", "n")]
    )


def answer_request(name: str) -> ChoiceDialog:
    """ "NAME wants to be your buddy" — Accept / Decline / Later (Later focused)."""
    question = Content.assemble((name, "bold"), " wants to be your buddy.")
    return ChoiceDialog(
        question,
        [
            Choice("accept", "Accept", "a", "success"),
            Choice("decline", "Decline", "d", "error"),
            Choice("later", "Later", "l"),
        ],
    )
