"""``AttentionScreen``: the attention and presence half of the main screen (issue 15).

:class:`~tui.screens.main.MainScreen` derives from it (and it from
:class:`~tui.screens.finding.HistoryFinding`, over :class:`~tui.screens.rooms.RoomScreen`).
It adds:

- Alt+1 … Alt+9: open the chat with that number (the first nine chats in sidebar order,
  :func:`tui.state.attention.numbered_chats`), composer focused. The bindings have
  ``priority``: a terminal sends Alt+1 as ``ESC 1``, which Textual reports as ``alt+1``
  *with* the character ``1``, and the composer (a TextArea) would insert that ``1`` and
  stop the key before any ordinary binding saw it.
- The bell (:meth:`App.bell`) and the window title (OSC 2, ``Parley (3)``, back to
  ``Parley`` when everything is read): a live 1:1 message, or a room message mentioning
  the user, in a chat the user is not looking at rings once per burst
  (:class:`~tui.state.attention.BellThrottle`). "Looking at" is the open chat with the
  chat pane in front and the terminal in front: Textual learns the latter only from
  terminals that report focus (``app_focus`` stays True otherwise), so without such
  reports the open chat counts as seen.
- Mute per chat (``m`` on a buddy or room row, ``/mute`` and ``/unmute``, the palette):
  no bell, title count or toast; unread and mentions still count. Persisted in the
  account's local store (:class:`~tui.state.attention.MutedChats`).
- Presence (:class:`~tui.state.presence.Presence`): unknown (``◌``) while the own
  connection is not logged in; when each user was last seen online, in the buddy row's
  tooltip, the open chat's title and the member pane.
- The unread and mention totals in the status bar.

Invariants:
- Session events reach it through :meth:`room_event` (the main screen's one route for
  them) before the chat state applies them; it never consumes one (returns what the room
  half returned).
- The terminal's own title is saved before the first title is set and restored when the
  screen goes (quit, back to the login form).
- The title sequence is written only by :func:`write_to_terminal`, only to a real
  terminal driver (never in headless tests), only when the title changed; its text is
  made of digits and a constant (and :func:`~tui.state.attention.title_sequence` strips
  controls anyway).
- What it draws is refreshed with the room list (:meth:`refresh_rooms`), which the main
  screen calls from every roster refresh.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.widgets import TabbedContent

from protocol import chat_pb2 as pb
from tui.client.events import BuddyListChanged, ConnectionState, ConnectionStateChanged, Event
from tui.client.events import MessageReceived as MessageReceivedEvent
from tui.client.rooms import RoomChanged
from tui.display import safe_name
from tui.screens.finding import HistoryFinding
from tui.state.attention import (
    NUMBERED,
    BellThrottle,
    MutedChats,
    numbered_chats,
    title_sequence,
    window_title,
)
from tui.state.chat import Notice
from tui.state.mentions import mentions
from tui.state.presence import STAMP_EVERY, Presence, seen_text
from tui.state.roster import CHAT_TYPES, RosterRow
from tui.widgets.buddy_list import BuddyList
from tui.widgets.room_list import RoomList
from tui.widgets.status_bar import StatusBar


class MuteRequested(Message):
    """``/mute`` or ``/unmute`` in the composer: (un)mute the open chat."""

    def __init__(self, muted: bool) -> None:
        super().__init__()
        self.muted = muted


SAVE_TITLE = "\x1b[22;0t"  # XTWINOPS: push the terminal's title (xterm; others ignore it)
RESTORE_TITLE = "\x1b[23;0t"  # ... and pop it


def write_to_terminal(app: App[object], data: str) -> None:
    """Write an escape sequence to the terminal, if there is a real one."""
    driver = app._driver
    if driver is not None and not app.is_headless:
        driver.write(data)


class AttentionScreen(HistoryFinding):
    """Attention and presence on the main screen; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # No description: the help lists them as one row (tui/keymap.py).
        Binding(f"alt+{n}", f"open_numbered({n})", show=False, priority=True)
        for n in range(1, NUMBERED + 1)
    ]

    def __init__(
        self, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name, id, classes)
        self.bell_throttle = BellThrottle()
        self.window_title: str | None = None  # as last written (None: not yet)

    # --- provided by the main screen --------------------------------------------------------

    @property
    def buddy_list(self) -> BuddyList:
        raise NotImplementedError

    def refresh_roster(self) -> None:
        raise NotImplementedError

    # --- state (the session exists once the main screen's __init__ ran) ---------------------

    @cached_property
    def muted(self) -> MutedChats:
        return MutedChats(self.session.store)

    @cached_property
    def presence(self) -> Presence:
        presence = Presence(
            self.session.store, connected=self.session.state is ConnectionState.CONNECTED
        )
        presence.buddies(self.session.buddies.values(), time.time())
        return presence

    def on_mount(self) -> None:
        self.chat.muted = self.muted  # no toast for a muted chat
        buddies = self.buddy_list
        buddies.is_muted = self.room_list.is_muted = self.muted
        buddies.describe = self._describe
        buddies.presence_known = self.presence.known
        self.set_interval(STAMP_EVERY, lambda: self.presence.stamp_online(time.time()))
        self.refresh_roster()

    # --- Alt+1 … Alt+9 ----------------------------------------------------------------------

    def numbered_chats(self) -> list[int]:
        return numbered_chats(self.buddy_list.numbered_uids(), self.room_list.joined_peers())

    def action_open_numbered(self, number: int) -> None:
        """Open chat ``number`` with the chat pane in front and the composer focused."""
        chats = self.numbered_chats()
        if not 1 <= number <= len(chats):
            self.notify(f"No chat {number}: the numbers stand before buddies and rooms.")
            return
        self.query_one("#workspace", TabbedContent).active = "chat"
        self.open_conversation(chats[number - 1])

    # --- mute -------------------------------------------------------------------------------

    def set_muted(self, peer: int, muted: bool) -> None:
        """Mute or unmute ``peer``'s chat (a room: its negative id) and say so."""
        self.muted.set(peer, muted)
        name = self.room_name(-peer) if peer < 0 else self.chat.name_of(peer)
        what = "muted: no bell, title or toast" if muted else "unmuted"
        self.show_notice(Notice(f"{name} {what}.", title="Mute"))
        self.refresh_roster()

    def toggle_mute(self, peer: int | None = None) -> None:
        """Mute or unmute ``peer``'s chat, by default the open one."""
        peer = self.chat.active if peer is None else peer
        if peer is None:
            self.notify("Open a chat first (or press m on a buddy or room).")
            return
        self.set_muted(peer, not self.muted(peer))

    def on_mute_requested(self, message: MuteRequested) -> None:
        peer = self.chat.active
        if peer is None:
            self.notify("Open a chat first (or press m on a buddy or room).")
        else:
            self.set_muted(peer, message.muted)

    def on_buddy_list_row_action(self, message: BuddyList.RowAction) -> None:
        if message.action == "mute":
            self.toggle_mute(message.row.uid)

    def on_room_list_row_action(self, message: RoomList.RowAction) -> None:
        if message.action == "mute":
            self.toggle_mute(message.row.peer)

    # --- session events ---------------------------------------------------------------------

    def room_event(self, event: Event) -> bool:
        handled = super().room_event(event)
        now = time.time()
        if isinstance(event, MessageReceivedEvent):
            self._maybe_ring(event)
        elif isinstance(event, ConnectionStateChanged):
            connected = event.state is ConnectionState.CONNECTED
            if self.presence.connection(connected, now):
                self._show_presence()
        elif isinstance(event, BuddyListChanged):
            if self.presence.buddies(event.buddies, now):
                self._show_presence()
        elif isinstance(event, RoomChanged):
            self.presence.members_online((m.uid for m in event.room.members if m.online), now)
        return handled

    def _maybe_ring(self, event: MessageReceivedEvent) -> None:
        """The bell for a live 1:1 message or a mention in a chat not looked at."""
        entry = event.entry
        if event.backlog or entry.outgoing or entry.type not in CHAT_TYPES:
            return
        if self.muted(entry.peer):
            return
        if entry.room and (
            self.session.is_blocked(entry.sender) or not mentions(entry.text, self.session.username)
        ):
            return
        chat = self.chat
        if entry.peer == chat.active and chat.chat_shown and self.app.app_focus:
            return
        if self.bell_throttle.ring(time.monotonic()):
            self.app.bell()

    def _show_presence(self) -> None:
        self.buddy_list.presence_known = self.presence.known
        self.refresh_roster()

    # --- drawing ----------------------------------------------------------------------------

    def refresh_rooms(self) -> None:
        self.room_list.first_number = len(self.buddy_list.numbered_uids()) + 1
        super().refresh_rooms()
        unread = self.chat.unread
        rooms = self.session.rooms.rooms.values()
        mention_total = sum(self.mentions.get(room.peer) for room in rooms)
        self.query_one("#status", StatusBar).set_attention(unread.total, mention_total)
        self._set_title(window_title(unread.total_where(lambda peer: not self.muted(peer))))
        self._show_last_seen()

    def _set_title(self, title: str) -> None:
        if title != self.window_title:
            if self.window_title is None:
                write_to_terminal(self.app, SAVE_TITLE)  # restored when the screen goes
            self.window_title = title
            write_to_terminal(self.app, title_sequence(title))

    def on_unmount(self) -> None:
        if self.window_title is not None:
            write_to_terminal(self.app, RESTORE_TITLE)

    def _describe(self, row: RosterRow) -> str:
        return self.presence.describe(row.uid, row.online, time.time())

    def _show_last_seen(self) -> None:
        """The open 1:1 chat's title says when an offline buddy was last seen."""
        peer = self.chat.active
        buddy = self.chat.buddies.get(peer) if peer is not None and peer > 0 else None
        if buddy is None or buddy.relation != pb.User.BUDDY:
            return
        name = safe_name(buddy.username, buddy.uid)
        title = Content.assemble("Chat with ", (name, "bold"))
        if not self.presence.known:
            title = Content.assemble(title, (" · presence unknown", "$text-muted"))
        elif not buddy.online:
            when = seen_text(self.presence.last_seen(buddy.uid), time.time())
            title = Content.assemble(title, (f" · {when}", "$text-muted"))
        self.view.border_title = title

    def _show_members(self) -> None:
        pane = self.member_pane
        if pane is not None:
            pane.presence_known = self.presence.known
            pane.seen = self._member_seen
        super()._show_members()

    def _member_seen(self, uid: int) -> str:
        return seen_text(self.presence.last_seen(uid), time.time()).removeprefix("last seen ")
