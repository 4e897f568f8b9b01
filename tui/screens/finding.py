"""``HistoryFinding``: finding things in the history, a part of the main screen.

:class:`~tui.screens.main.MainScreen` derives from it (over
:class:`~tui.screens.rooms.RoomScreen`); it owns no state: the search runs on the session's
store, the jump and the "new messages" line are the conversation view's.

- Ctrl+F, ``/search [TEXT]`` (:class:`SearchRequested`) or the palette's "Search history"
  open :class:`~tui.dialogs.search.SearchDialog`; the hit chosen opens its chat with the chat
  pane in front and jumps to the message (:meth:`ConversationView.jump_to`, which loads the
  pages around it however far back), with the searched text highlighted.
- Ctrl+G jumps to the "new messages" line of the open chat. Where the user left off is the
  chat's unread count when it was opened (the count the buddy list shows, kept in the
  store across restarts): the line goes before the oldest of that many newest incoming
  chat messages (:meth:`ConversationView.mark_new_messages`, called by ``open_conversation``).

Invariants: hostile text reaches the screen only through ``Content`` and
``notify(..., markup=False)``; a hit whose message is gone (or a chat with no marker) gives a
toast, never an exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TabbedContent

from tui.client.history import HistoryEntry
from tui.display import safe_name
from tui.screens.rooms import ROOM_TYPES, RoomScreen
from tui.search import HistorySearch, SearchHit
from tui.state.roster import CHAT_TYPES
from tui.widgets.conversation import NewerLoader

if TYPE_CHECKING:
    from tui.dialogs.search import Jump


class SearchRequested(Message):
    """``/search TEXT`` in the composer: open the search dialog with ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class HistoryFinding(RoomScreen):
    """Search and the first-unread jump; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+f", "search_history", "Search the history (this chat or all)", show=False),
        Binding("ctrl+g", "first_unread", "Go to the new messages line", show=False),
    ]

    def action_search_history(self, query: str = "") -> None:
        from tui.dialogs.search import SearchDialog  # on first use (memory, as in tui/app.py)

        dialog = SearchDialog(
            HistorySearch(self.session.store),
            open_chat=self.chat.active,
            chat_name=self.chat_label,
            sender_name=self._sender_of,
            query=query,
        )
        self.app.push_screen(dialog, self.jump)

    def on_search_requested(self, message: SearchRequested) -> None:
        self.action_search_history(message.text)

    def chat_label(self, peer: int) -> str:
        """A buddy's name, or ``#room`` for a room (its negative id)."""
        return f"#{self.room_name(-peer)}" if peer < 0 else self.chat.name_of(peer)

    def _sender_of(self, hit: SearchHit) -> str:
        if hit.outgoing:
            return safe_name(self.session.username)
        return self.chat.name_of(hit.sender if hit.peer < 0 and hit.sender else hit.peer)

    def jump(self, jump: Jump | None) -> None:
        """Open the chat of ``jump``'s hit at its message."""
        if jump is None:
            return
        hit = jump.hit
        if self.chat.active != hit.peer:
            self.open_conversation(hit.peer, focus=False)
        self.query_one("#workspace", TabbedContent).active = "chat"
        view = self.view
        if not view.jump_to(hit.local_id, self.newer_loader(hit.peer)):
            self.notify("That message is no longer in the history.", severity="warning")
            return
        view.highlight(jump.query)
        view.focus()

    def newer_loader(self, peer: int) -> NewerLoader:
        """Pages forward through ``peer``'s history (the types its view shows)."""
        store = self.session.store
        types = ROOM_TYPES if peer < 0 else CHAT_TYPES

        def load(after: int, limit: int) -> list[HistoryEntry]:
            return store.page(peer, after=after, limit=limit, types=types)

        return load

    def action_first_unread(self) -> None:
        peer = self.chat.active
        if peer is None:
            self.notify("Open a chat first.")
        elif not self.view.jump_to_marker(self.newer_loader(peer)):
            self.notify("No new messages: the chat had none unread when you opened it.")
