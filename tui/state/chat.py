"""``ChatState``: what the chat screen knows, and how each session event changes it.

The main screen feeds every client-session event to :meth:`ChatState.apply` and gets back a
:class:`ChatUpdate` saying what changed and what to tell the user; the screen then only
routes that to its widgets. No Textual and no I/O here (the store is reached only through
the ``peer_name`` callable given at construction), so the whole event handling is
unit-tested without an app.

State owned here: the buddies as last reported by the session, the unread counts, the
typing markers (ours and theirs), the open conversation, the connection state as last
reported, whether we were ever connected, the per-peer count of backlog messages not
yet summed up, whether the chat pane is on screen, and the current burst of live messages.

Invariants:
- Events are applied in the order the session emitted them; time is passed in (``now``,
  monotonic seconds), never read here.
- What the user sent from another device (an ``outgoing`` MessageReceived) is shown as
  their own message, like one sent here: never unread, never a notice.
- Only chat messages (:data:`~tui.state.roster.CHAT_TYPES`) reach the conversation or the
  unread counts; board strokes go to the board, transfer traffic is ignored (the Files pane
  follows the transfer engine).
- Notice texts contain hostile names and message previews: they are plain text, shown with
  ``markup=False``.
- Backlog messages (replayed after a login) are summed up in one notice at ``SyncCompleted``
  instead of one notice each.
- Live messages nobody is looking at give one toast per burst: every message notice has the
  key :data:`MESSAGES_KEY` (the screen replaces the toast with the same key), and while
  messages keep coming less than :data:`BURST_WINDOW` apart it sums the burst up (opening
  a chat or showing the chat pane ends the burst).
- A message of the open conversation is "seen" only while the chat pane is shown
  (:meth:`ChatState.show_chat`); with the Board or Files tab in front it counts as unread
  and is announced like any other, until the chat is shown again.
- The open conversation is with a buddy, a former buddy or a room (its negative id). When
  a buddy's relation ends because this user removed or blocked them (the uids announced by
  :meth:`ChatState.removing_buddy`, or relation BLOCKED), the update says to close their
  chat. When it ends from the other side (they removed us, or blocked us, which looks the
  same: PROTOCOL.md section 12), a notice says so and their chat stays open; its history
  stays in the store and reachable (:meth:`ChatState.past_chats`, offered by Ctrl+O).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from protocol import chat_pb2 as pb
from tui.client.events import (
    Buddy,
    BuddyListChanged,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    EventsLost,
    MessageReceived,
    OutgoingStateChanged,
    ResetReceived,
    SyncCompleted,
)
from tui.client.history import Conversation, HistoryEntry, MessageState, describe_failure
from tui.client.trust import FingerprintMismatch
from tui.display import preview, safe_name
from tui.state.roster import CHAT_TYPES, RosterRow, UnreadCounts, build_roster
from tui.state.typing import TypingThrottle, TypingTracker

Severity = Literal["information", "warning", "error"]

MESSAGES_KEY = "messages"  # the one toast that announces new messages
BURST_WINDOW = 5.0  # seconds between messages of one burst (as long as a toast shows)
BURST_NAMES = 5  # names listed in a burst summary


class Redraw(enum.IntEnum):
    """When the buddy list must be redrawn (a backlog of thousands of messages must not
    redraw it thousands of times)."""

    NONE = 0
    COALESCED = 1  # once, after the messages already queued
    NOW = 2


@dataclass(frozen=True)
class Notice:
    """A toast for the user: plain text (never markup)."""

    text: str
    title: str = ""
    severity: Severity = "information"
    timeout: float | None = None
    key: str = ""  # a new notice replaces the toast of the previous one with this key


@dataclass
class ChatUpdate:
    """What one event changed, for the screen to show."""

    roster: Redraw = Redraw.NONE
    conversation_line: HistoryEntry | None = None  # add to (or update in) the open chat
    mark_read: bool = False  # the open chat got a message: mark it read (coalesced)
    board_incoming: HistoryEntry | None = None
    board_outgoing: HistoryEntry | None = None
    connection: ConnectionStateChanged | None = None  # the status bar shows it
    close_conversation: bool = False
    fingerprint_changed: FingerprintMismatch | None = None
    reload: bool = False  # events were lost: reload unread counts, boards, the open chat
    notices: list[Notice] = field(default_factory=list)


class ChatState:
    """See the module docstring."""

    def __init__(
        self,
        buddies: Iterable[Buddy],
        connection: ConnectionState,
        *,
        peer_name: Callable[[int], str | None],
        unread: UnreadCounts | None = None,
    ) -> None:
        self.buddies: dict[int, Buddy] = {buddy.uid: buddy for buddy in buddies}
        self.connection = connection
        self.unread = unread or UnreadCounts()
        self.typing = TypingTracker()
        self.throttle = TypingThrottle()
        self.room_typist: dict[int, int] = {}  # a room (its negative id) → who hinted last
        self.active: int | None = None
        self.backlog: dict[int, int] = {}
        self.burst: dict[int, int] = {}  # live messages of the current burst, per peer
        self.burst_at = float("-inf")  # when its last message came
        self.chat_shown = True  # the chat pane (not Board or Files) is in front
        self.was_connected = False
        self.removing: set[int] = set()  # buddies this user is removing (not news)
        self._peer_name = peer_name
        self.muted: Callable[[int], bool] = lambda peer: False  # no toast (tui/screens/attention)

    # --- queries ------------------------------------------------------------------------------

    def name_of(self, uid: int) -> str:
        """The display name of ``uid``: the buddy's, else the stored one, else ``#uid``."""
        buddy = self.buddies.get(uid)
        name = buddy.username if buddy is not None else self._peer_name(uid)
        return safe_name(name, uid)

    def roster(self, now: float) -> list[RosterRow]:
        return build_roster(self.buddies.values(), self.unread, self.typing.typing(now))

    def relations(self) -> dict[int, int]:
        return {uid: buddy.relation for uid, buddy in self.buddies.items()}

    def past_chats(self, conversations: Iterable[Conversation]) -> list[tuple[int, str]]:
        """The one-to-one conversations with history whose peer is not a buddy (any more):
        ``(uid, name)``, most recent first (``conversations`` comes that way)."""
        return [
            (c.peer, safe_name(c.username, c.peer))
            for c in conversations
            if c.peer > 0 and self._relation(c.peer) != pb.User.BUDDY
        ]

    def _relation(self, uid: int) -> int | None:
        buddy = self.buddies.get(uid)
        return buddy.relation if buddy is not None else None

    def typing_in_open_chat(self, now: float) -> str | None:
        """The name of the open chat's peer while they are typing, else None."""
        peer = self.active
        if peer is not None and self.typing.is_typing(peer, now):
            return self.name_of(self.room_typist.get(peer, peer) if peer < 0 else peer)
        return None

    # --- changes from the user ------------------------------------------------------------------

    def open(self, uid: int) -> bool:
        """``uid``'s chat is now the open one; True if it had unread messages (now read)."""
        self.active = uid
        self.burst.clear()  # the user is looking: the next message starts a new toast
        return self.unread.clear(uid)

    def close(self) -> None:
        self.active = None

    def removing_buddy(self, uid: int) -> None:
        """This user asked the relay to remove ``uid``: the end of that relation is theirs,
        not news (see the module docstring)."""
        self.removing.add(uid)

    def read_open_chat(self) -> int | None:
        """The open chat was seen: its unread count goes; returns its peer (None: no chat,
        or the chat pane is not shown)."""
        if self.active is None or not self.chat_shown:
            return None
        self.unread.clear(self.active)
        return self.active

    def show_chat(self, shown: bool) -> int | None:
        """The chat pane came to the front (``shown``) or went behind another tab. Returns
        the open chat's peer when its unread messages are now seen (mark them read)."""
        self.chat_shown = shown
        if shown:
            self.burst.clear()
        if shown and self.active is not None and self.unread.clear(self.active):
            return self.active
        return None

    @property
    def unseen_in_open_chat(self) -> int:
        """Unread messages of the open chat (non-zero only while the chat is not shown)."""
        return self.unread.get(self.active) if self.active is not None else 0

    def replace_unread(self, unread: UnreadCounts) -> None:
        self.unread = unread

    def may_hint_typing(self, peer: int, now: float) -> bool:
        """May we send ``peer`` a typing hint now (at most one per interval)?"""
        return self.throttle.should_send(peer, now)

    def message_sent(self, peer: int) -> None:
        self.throttle.reset(peer)

    def expire_typing(self, now: float) -> bool:
        """Drop typing markers that timed out; True if one did (the roster changed)."""
        return bool(self.typing.expire(now))

    # --- changes from the session ---------------------------------------------------------------

    def apply(self, event: Event, now: float) -> ChatUpdate:
        """Apply one session event; returns what changed."""
        update = ChatUpdate()
        if isinstance(event, MessageReceived):
            self._message_received(event, now, update)
        elif isinstance(event, OutgoingStateChanged):
            self._outgoing_changed(event.entry, update)
        elif isinstance(event, ConnectionStateChanged):
            self._connection_changed(event, update)
        elif isinstance(event, BuddyListChanged):
            self._buddies_changed(event.buddies, now, update)
        elif isinstance(event, SyncCompleted):
            self._synced(update)
        elif isinstance(event, ResetReceived):
            self._reset_received(event, update)
        elif isinstance(event, EventsLost):
            update.reload = True
            update.roster = Redraw.NOW
        return update

    def _connection_changed(self, event: ConnectionStateChanged, update: ChatUpdate) -> None:
        previous, self.connection = self.connection, event.state
        update.connection = event
        if event.state is ConnectionState.CONNECTED:
            if self.was_connected and previous is not ConnectionState.CONNECTED:
                update.notices.append(Notice("Connected to the relay again."))
            self.was_connected = True
        elif event.state is ConnectionState.RECONNECTING and previous is ConnectionState.CONNECTED:
            update.notices.append(
                Notice(f"Connection lost ({event.reason}); reconnecting…", severity="warning")
            )
        elif event.state is ConnectionState.OFFLINE and event.error is not None:
            if isinstance(event.error, FingerprintMismatch):
                update.fingerprint_changed = event.error
            else:
                update.notices.append(
                    Notice(
                        f"Disconnected: {event.reason}. F5 tries again.",
                        severity="error",
                        timeout=15,
                    )
                )

    def _message_received(self, event: MessageReceived, now: float, update: ChatUpdate) -> None:
        entry = event.entry
        peer = entry.peer
        if entry.outgoing:  # the user sent it from another device (PROTOCOL.md section 9)
            if entry.type == pb.Message.GRAPHICS:
                # Not on this canvas yet (the board skips our own strokes: the canvas drew
                # them), so it is applied like a peer's.
                update.board_incoming = replace(entry, outgoing=False)
                return
            self._outgoing_changed(entry, update)
            update.roster = Redraw.COALESCED
            return
        if entry.type == pb.Message.INPUTING:
            if entry.room:  # a room's marker names who typed last
                self.room_typist[peer] = entry.sender
            if (peer in self.buddies or entry.room) and self.typing.hint(peer, now):
                update.roster = Redraw.NOW
            return
        if entry.type == pb.Message.GRAPHICS:
            update.board_incoming = entry  # no notice, no chat line, no unread count
            return
        if entry.type not in CHAT_TYPES:
            return  # file transfer traffic belongs to another pane
        if not entry.room or self.room_typist.get(peer) == entry.sender:
            self.typing.stop(peer)
        update.roster = Redraw.COALESCED
        if peer == self.active:
            update.conversation_line = entry
            if self.chat_shown:
                update.mark_read = True
                return
        self.unread.bump(peer, entry.local_id)
        if event.backlog:
            self.backlog[peer] = self.backlog.get(peer, 0) + 1
        elif not self.muted(peer):  # a muted chat counts, silently
            update.notices.append(self._burst_notice(entry, now))

    def _burst_notice(self, entry: HistoryEntry, now: float) -> Notice:
        """The toast for a live message: its preview, or the sum of the burst it is in."""
        if now - self.burst_at > BURST_WINDOW:
            self.burst.clear()
        self.burst_at = now
        self.burst[entry.peer] = self.burst.get(entry.peer, 0) + 1
        total = sum(self.burst.values())
        if total == 1:
            return Notice(_preview(entry), title=self.name_of(entry.peer), key=MESSAGES_KEY)
        peers = sorted(self.burst.items())
        who = ", ".join(f"{self.name_of(peer)} ({count})" for peer, count in peers[:BURST_NAMES])
        if len(peers) > BURST_NAMES:
            who += f" and {len(peers) - BURST_NAMES} more"
        return Notice(f"{total} new messages: {who}", title="New messages", key=MESSAGES_KEY)

    def _outgoing_changed(self, entry: HistoryEntry, update: ChatUpdate) -> None:
        if entry.type == pb.Message.GRAPHICS:
            update.board_outgoing = entry
            return
        if entry.type not in CHAT_TYPES:
            return
        if entry.peer == self.active:
            update.conversation_line = entry
        if entry.state is MessageState.FAILED:
            name = self.name_of(entry.peer)
            update.notices.append(
                Notice(
                    f"Message to {name} not sent: {describe_failure(entry, name)}. "
                    "Ctrl+R (or a click on its !) re-sends.",
                    severity="error",
                    timeout=10,
                )
            )

    def _buddies_changed(self, buddies: tuple[Buddy, ...], now: float, update: ChatUpdate) -> None:
        old = self.buddies
        new = {buddy.uid: buddy for buddy in buddies}
        for buddy in buddies:
            before = old.get(buddy.uid)
            name = safe_name(buddy.username, buddy.uid)
            if buddy.relation == pb.User.REQUEST_RECEIVED and (
                before is None or before.relation != pb.User.REQUEST_RECEIVED
            ):
                update.notices.append(
                    Notice(
                        f"{name} wants to be your buddy. Select the request: a accepts, "
                        "d declines.",
                        title="Buddy request",
                        timeout=10,
                    )
                )
            elif (
                buddy.relation == pb.User.BUDDY
                and before is not None
                and before.relation == pb.User.REQUEST_SENT
            ):
                update.notices.append(Notice(f"{name} accepted your buddy request."))
        self.buddies = new
        ended_here = self._relations_ended(old, new, update)
        for uid in self.typing.typing(now):
            if uid > 0 and uid not in new:  # a room's marker (negative id) is not a buddy's
                self.typing.stop(uid)
        if self.active is not None and self.active in ended_here:
            self.active = None  # a room (its negative id) closes on RoomRemoved, not here
            update.close_conversation = True
        update.roster = Redraw.NOW

    def _relations_ended(
        self, old: dict[int, Buddy], new: dict[int, Buddy], update: ChatUpdate
    ) -> set[int]:
        """Buddies of ``old`` who are no buddies in ``new``: a notice for those who ended it
        from their side; returns those this user ended (removed or blocked)."""
        ended_here: set[int] = set()
        for uid, before in old.items():
            after = new.get(uid)
            if before.relation != pb.User.BUDDY or (
                after is not None and after.relation == pb.User.BUDDY
            ):
                continue
            if uid in self.removing or (after is not None and after.relation == pb.User.BLOCKED):
                ended_here.add(uid)
                continue
            name = safe_name(before.username, uid)
            update.notices.append(
                Notice(
                    f"{name} removed you from their buddies. Your chat history stays: Ctrl+O "
                    "opens it.",
                    title="Buddy removed",
                    severity="warning",
                    timeout=15,
                )
            )
        self.removing = {uid for uid in self.removing if self._relation(uid) == pb.User.BUDDY}
        return ended_here

    def _synced(self, update: ChatUpdate) -> None:
        if not self.backlog:
            return
        total = sum(self.backlog.values())
        who = ", ".join(
            f"{self.name_of(peer)} ({count})" for peer, count in sorted(self.backlog.items())
        )
        self.backlog.clear()
        update.notices.append(
            Notice(
                f"{total} new message{'s' if total != 1 else ''}: {who}",
                title="While you were away",
            )
        )
        update.roster = Redraw.NOW

    @staticmethod
    def _reset_received(event: ResetReceived, update: ChatUpdate) -> None:
        if event.code == pb.Reset.KICKED:
            update.notices.append(
                Notice(
                    "You logged in from somewhere else: this session was disconnected.",
                    severity="error",
                    timeout=15,
                )
            )
        elif event.code == pb.Reset.SERVER_SHUTDOWN:
            update.notices.append(Notice("The relay is shutting down.", severity="warning"))


def _preview(entry: HistoryEntry) -> str:
    if entry.type == pb.Message.MESSAGE:
        return preview(entry.text) or "(empty message)"
    return f"offers a file: {preview(entry.text, 60)}"
