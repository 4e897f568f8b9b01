"""``SearchDialog``: search the local history, in the open chat or in all chats.

Invariants:
- Local only (the store, :class:`~tui.search.HistorySearch`); searching runs as the text
  changes and when the scope is toggled (Ctrl+A, or the checkbox).
- Every hostile text (chat names, message text) is shown as ``Content`` built from plain
  strings: a message reading ``[b]x[/b]`` shows those characters, highlighted where they
  match.
- Hits are listed newest first, at most :data:`~tui.search.MAX_HITS`; a line under the list
  says how many and whether there were more.
- Returns the chosen :class:`Jump` (Enter on a hit, or Enter in the field for the highlighted
  one) or None (Escape).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, OptionList, Static
from textual.widgets.option_list import Option

from tui.display import day_of, format_clock, format_day
from tui.search import HIT, MAX_HITS, HistorySearch, SearchHit, SearchResult, snippet

_STYLES = {HIT: "bold reverse", "": ""}


@dataclass(frozen=True)
class Jump:
    """Open ``hit``'s chat at its message; highlight ``query`` there."""

    hit: SearchHit
    query: str


def hit_prompt(
    hit: SearchHit, query: str, chat: str, who: str, when: str, width: int = 60
) -> Content:
    """Two lines: the chat (who wrote, when not the chat's buddy) and when; the message's
    text around the hit, cut to ``width`` characters, the hit highlighted."""
    writer = ("  ", (who, "italic")) if who != chat else ()
    head = Content.assemble((chat, "bold"), *writer, "  ", (when, "dim"))
    spans = snippet(hit.text, query, max(width, 10))
    line = Content.assemble(*((text, _STYLES.get(key, "")) for text, key in spans if text))
    return Content.assemble(head, "\n  ", line)


class SearchDialog(ModalScreen[Jump | None]):
    """See the module docstring."""

    DEFAULT_CSS = """
    SearchDialog {
        align: center middle;
        & > #dialog {
            width: 90%;
            max-width: 100;
            height: 90%;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #hits { height: 1fr; }
        & #search-status { color: $text-muted; height: 1; }
        & #search-scope { height: auto; border: none; padding: 0; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+a", "toggle_scope", "This chat / all chats", priority=True),
        Binding("down", "focus_hits", "Hits", show=False),
    ]

    def __init__(
        self,
        search: HistorySearch,
        *,
        open_chat: int | None,
        chat_name: Callable[[int], str],
        sender_name: Callable[[SearchHit], str],
        query: str = "",
    ) -> None:
        super().__init__()
        self.search = search
        self.open_chat = open_chat  # None: no chat open, all chats are searched
        self.chat_name = chat_name
        self.sender_name = sender_name
        self.initial = query
        self.result = SearchResult("", None, (), False)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.assemble(("Search history", "bold")))
            yield Input(self.initial, placeholder="text to find (any case)", id="query")
            yield Checkbox(self._scope_label(), self.open_chat is None, id="search-scope")
            yield OptionList(id="hits")
            yield Static("", id="search-status")

    def on_mount(self) -> None:
        scope = self.query_one("#search-scope", Checkbox)
        scope.disabled = self.open_chat is None
        self.call_after_refresh(self.run_search)  # once the list has its width

    def _scope_label(self, all_chats: bool = False) -> str:
        if self.open_chat is None:
            return "All chats (no chat is open)"
        if all_chats:
            return "All chats (Ctrl+A: this chat only)"
        return "All chats (Ctrl+A) — now: this chat only"

    @property
    def all_chats(self) -> bool:
        return self.open_chat is None or self.query_one("#search-scope", Checkbox).value

    def run_search(self) -> None:
        query = self.query_one("#query", Input).value
        peer = None if self.all_chats else self.open_chat
        self.result = result = self.search.run(query, peer)
        options = []
        today = datetime.date.today()
        width = self.query_one("#hits", OptionList).scrollable_content_region.width - 4
        for index, hit in enumerate(result.hits):
            when = f"{format_day(day_of(hit.timestamp), today)} {format_clock(hit.timestamp)}"
            chat, who = self.chat_name(hit.peer), self.sender_name(hit)
            prompt = hit_prompt(hit, query, chat, who, when, width)
            options.append(Option(prompt, id=f"hit-{index}"))
        hits = self.query_one("#hits", OptionList)
        hits.set_options(options)
        if options:
            hits.highlighted = 0
        self.query_one("#search-status", Static).update(self._status(result))

    @staticmethod
    def _status(result: SearchResult) -> Content:
        where = "all chats" if result.peer is None else "this chat"
        if not result.query:
            return Content(f"Type to search {where}.")
        count = len(result.hits)
        if result.more:
            return Content(f"{MAX_HITS} newest hits in {where}; more… (type more to narrow)")
        plural = "hit" if count == 1 else "hits"
        return Content(f"{count} {plural} in {where}" + (": Enter jumps" if count else ""))

    # --- events --------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.run_search()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = self._scope_label(event.value)
        self.run_search()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        index = self.query_one("#hits", OptionList).highlighted
        if index is not None and index < len(self.result.hits):
            self._choose(index)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._choose(event.option_index)

    def _choose(self, index: int) -> None:
        self.dismiss(Jump(self.result.hits[index], self.result.query))

    def action_toggle_scope(self) -> None:
        scope = self.query_one("#search-scope", Checkbox)
        if not scope.disabled:
            scope.toggle()

    def action_focus_hits(self) -> None:
        self.query_one("#hits", OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
