"""``RoomMemberDialog``: pick one member of a room (whom to remove from it).

Invariants:
- Returns the chosen member's uid, or None on Escape.
- Names are hostile: every option is a ``Content`` built from plain strings.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.client.rooms import RoomMember
from tui.display import safe_name


class RoomMemberDialog(ModalScreen[int | None]):
    """Choose one of ``members``; see the module docstring."""

    DEFAULT_CSS = """
    RoomMemberDialog {
        align: center middle;
        & > #dialog {
            width: 50;
            max-width: 100%;
            height: auto;
            max-height: 80%;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #title { margin: 1 0; }
        & OptionList { height: auto; max-height: 12; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, title: Content, members: list[RoomMember]) -> None:
        super().__init__()
        self.title_content = title
        self.members = members

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.title_content, id="title")
            yield OptionList(
                *(
                    Option(Content.assemble(safe_name(m.username, m.uid)), id=str(m.uid))
                    for m in self.members
                ),
                id="members",
            )

    def on_mount(self) -> None:
        members = self.query_one("#members", OptionList)
        members.highlighted = 0 if self.members else None
        members.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.members[event.option_index].uid)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
