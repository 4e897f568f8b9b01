"""``RoomScreen``: the room half of the main screen (PROTOCOL.md section 10).

:class:`~tui.screens.main.MainScreen` derives from it; it owns no state of its own. The
rooms are the session's room table (:attr:`tui.client.session.ClientSession.rooms`), a
room's unread count is the chat state's count of its conversation (the room's negative id),
and a room opens in the same conversation view as a buddy, with a sender name on every
line and the membership events as timeline lines.

Invariants:
- Room requests (create, invite, join, decline, leave, kick, rename) run in this screen's
  workers; their outcomes, failures included, are toasts, never crashes.
- Hostile text (room and member names) reaches the screen only through ``Content``, plain
  ``Static`` s or ``notify(..., markup=False)`` (the toasts).
- The room list is redrawn from the room table on every room event and with the buddy
  list (unread counts); the open room closes when the user is no longer in it. A change
  of the open room (a rename) renames its title, its composer's placeholder and its board.
- Live room messages from a user this user blocked are not shown, counted or announced
  (the relay still delivers them: PROTOCOL.md section 12); history pages still hold them.
- The member pane (F4) shows the open room from the room table; while it is shown the
  screen asks MEMBERS when the open room changes and every ``members_refresh`` seconds
  (presence changes are not pushed per room; membership changes are, as RoomChanged).
- ``@name`` mentions of this user (:mod:`tui.state.mentions`) in a live message of a room
  the user is not looking at are counted apart from unread and announced by a toast; the
  count clears when the room is open with the chat in front.
- Out of the open room not by this session's own leave (kicked, the room deleted, or left
  on another device: ``RoomRemoved.by_me`` false) the room stays open read-only (history
  kept), the title, the composer and a toast say so; the room leaves the list either way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import TextArea

from protocol import chat_pb2 as pb
from tui.client.events import Event, MessageReceived, UserInfo
from tui.client.history import HistoryEntry
from tui.client.login import SessionError
from tui.client.rooms import RoomChanged, RoomInfo, RoomInvited, RoomRemoved, RoomResult
from tui.client.session import ClientSession
from tui.dialogs.confirm import Choice, ChoiceDialog
from tui.dialogs.room_member import RoomMemberDialog
from tui.dialogs.room_name import RoomNameDialog
from tui.dialogs.user_search import UserSearchDialog
from tui.display import safe_name
from tui.state.chat import ChatState, Notice
from tui.state.mentions import MentionCounts, mentions
from tui.state.rooms import RoomRow, room_rows
from tui.state.roster import CHAT_TYPES
from tui.widgets.conversation import ConversationView, PageLoader
from tui.widgets.member_pane import MEMBERS_REFRESH, MemberPane
from tui.widgets.room_list import RoomList

ROOM_ERRORS = (SessionError, TimeoutError, ConnectionError, RuntimeError)
# A room's conversation also shows its membership events.
ROOM_TYPES = CHAT_TYPES | {pb.Message.ROOM_EVENT}


class RoomScreen(Screen[None]):
    """Rooms on the main screen; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("f4", "toggle_members", "Room members")]

    session: ClientSession
    chat: ChatState

    def __init__(
        self, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name, id, classes)
        self.mentions = MentionCounts()
        self.members_refresh = MEMBERS_REFRESH  # seconds between MEMBERS while the pane shows
        self._members_timer: Timer | None = None
        self._members_asked: int | None = None  # the room the pane last asked MEMBERS for

    # --- provided by the main screen --------------------------------------------------------

    def open_conversation(self, uid: int, *, focus: bool = True) -> None:
        raise NotImplementedError

    def close_conversation(self) -> None:
        raise NotImplementedError

    def show_notice(self, notice: Notice) -> None:
        raise NotImplementedError

    @property
    def view(self) -> ConversationView:
        raise NotImplementedError

    def board_renamed(self, peer: int, name: str) -> None:
        raise NotImplementedError

    # --- the room list ----------------------------------------------------------------------

    @property
    def room_list(self) -> RoomList:
        return self.query_one("#rooms", RoomList)

    def history_loader(self, peer: int) -> tuple[PageLoader, Callable[[int], str] | None]:
        """How the conversation view loads ``peer``'s history, and names each sender (a
        room; None for a buddy, whose name heads every incoming line)."""
        store = self.session.store
        room = peer < 0
        types = ROOM_TYPES if room else CHAT_TYPES

        def load(before: int | None, limit: int) -> list[HistoryEntry]:
            return store.page(peer, before=before, limit=limit, types=types)

        return load, (self.chat.name_of if room else None)

    def refresh_rooms(self) -> None:
        active = self.chat.active
        if active is not None and active < 0 and self.chat.chat_shown:
            self.mentions.clear(active)  # looked at
        now = time.monotonic()
        typing = self.chat.typing.typing(now)

        def typist(peer: int) -> str | None:
            uid = self.chat.room_typist.get(peer)
            return self.chat.name_of(uid) if peer in typing and uid is not None else None

        rows = room_rows(
            self.session.rooms.rooms.values(), self.chat.unread, self.mentions.get, typist
        )
        self.room_list.set_rows(rows, active)
        self._show_members()

    # --- the member pane ----------------------------------------------------------------------

    @property
    def member_pane(self) -> MemberPane | None:
        return self.query_one_optional("#members", MemberPane)

    def action_toggle_members(self) -> None:
        """Show or hide the open room's members (asking the relay for their presence)."""
        pane = self.member_pane
        if pane is None:
            pane = MemberPane(id="members")
            self.query_one("#sidebar", Widget).mount(pane)
        elif pane.display:
            pane.display = False
            if self._members_timer is not None:
                self._members_timer.stop()
                self._members_timer = None
            return
        pane.display = True
        self._members_asked = None
        self._members_timer = self.set_interval(self.members_refresh, self._ask_members)
        self._show_members()

    def _show_members(self) -> None:
        pane = self.member_pane
        if pane is None or not pane.display:
            return
        active = self.chat.active
        room = self.session.rooms.get(-active) if active is not None and active < 0 else None
        pane.show_room(room)
        if room is not None and self._members_asked != room.id:
            self._ask_members()

    def _ask_members(self) -> None:
        """MEMBERS for the open room; the answer updates the room table (RoomChanged)."""
        active = self.chat.active
        if active is None or active >= 0 or self.session.rooms.get(-active) is None:
            return
        room = -active
        self._members_asked = room

        async def run() -> None:
            # On failure presence stays as last known; the next refresh asks again.
            with contextlib.suppress(*ROOM_ERRORS):
                await self.session.members(room)

        self.run_worker(run(), group="room-members", exit_on_error=False)

    def room_name(self, room: int) -> str:
        info = self.session.rooms.get(room)
        return safe_name(info.name if info is not None else None, room)

    def room_event(self, event: Event) -> bool:
        """Show a session event about rooms; True if nothing else needs it."""
        if isinstance(event, RoomInvited):
            name = safe_name(event.room.name, event.room.id)
            self.show_notice(
                Notice(
                    f"You are invited to the room {name}. Select it: a joins, d declines.",
                    title="Room invitation",
                    timeout=10,
                )
            )
        elif isinstance(event, RoomRemoved):
            self._removed(event)
        elif (
            isinstance(event, MessageReceived)
            and event.entry.room
            and not event.entry.outgoing
            and event.entry.type != pb.Message.ROOM_EVENT
            and self.session.is_blocked(event.entry.sender)
        ):
            return True  # PROTOCOL.md section 12: clients hide a blocked user's room messages
        elif isinstance(event, MessageReceived) and event.entry.type == pb.Message.ROOM_EVENT:
            if event.entry.peer == self.chat.active:
                self.view.add(event.entry)
            return True
        elif isinstance(event, MessageReceived) and event.entry.room:
            self._count_mention(event)
            return False  # the chat state shows and counts it as any message
        elif not isinstance(event, RoomChanged):
            return False
        elif self.chat.active == event.room.peer:  # maybe renamed: the open room follows
            self._retitle(event.room)
        self.refresh_rooms()
        return True

    def _retitle(self, room: RoomInfo) -> None:
        """Name the open room by its current name: the view's title, the composer's
        placeholder and the room's board."""
        name = safe_name(room.name, room.id)
        self.view.border_title = Content.assemble("Room ", (name, "bold"))
        composer = self.query_one("#composer", TextArea)
        if not composer.disabled:
            composer.placeholder = Content.assemble(
                "Message ", name, " — Enter sends, Ctrl+J new line"
            )
        self.board_renamed(room.peer, name)

    def _count_mention(self, event: MessageReceived) -> None:
        entry = event.entry
        if entry.outgoing or entry.type not in CHAT_TYPES:
            return
        if not mentions(entry.text, self.session.username):
            return
        if entry.peer == self.chat.active and self.chat.chat_shown:
            return  # looked at
        self.mentions.add(entry.peer)
        if self.chat.muted(entry.peer):
            return  # counted, silently (tui/screens/attention.py)
        who = safe_name(self.chat.name_of(entry.sender), entry.sender)
        self.show_notice(
            Notice(
                f"{who} mentioned you in {self.room_name(-entry.peer)}.",
                title="Mention",
                key=f"mention{entry.peer}",
            )
        )

    def _removed(self, event: RoomRemoved) -> None:
        """This user is out of a room: left here (the room closes) or removed otherwise (it
        stays open read-only, saying so)."""
        peer = -event.room_id
        self.mentions.clear(peer)
        if event.by_me:
            if self.chat.active == peer:
                self.close_conversation()
            return
        name = safe_name(event.name, event.room_id)
        self.show_notice(
            Notice(f"You are no longer in the room {name}.", title="Removed", severity="warning")
        )
        if self.chat.active == peer:
            self.view.border_title = Content.assemble(
                "Room ", (name, "bold"), (" — you are no longer a member", "$warning")
            )
            composer = self.query_one("#composer", TextArea)
            composer.disabled = True
            composer.placeholder = "You are no longer in this room: its history stays readable."
            self.view.focus()

    def on_room_list_row_action(self, message: RoomList.RowAction) -> None:
        row, action = message.row, message.action
        if action == "open" and row.invited:
            question = Content.assemble("You are invited to the room ", (row.name, "bold"), ".")
            choices = [
                Choice("join", "Join", "a", "success"),
                Choice("decline", "Decline", "d", "error"),
                Choice("later", "Later", "l"),
            ]
            self.app.push_screen(
                ChoiceDialog(question, choices),
                lambda answer: self._answer(row, answer) if answer else None,
            )
        elif action == "open":
            self.open_conversation(row.peer)
        else:
            self._answer(row, action)

    def _answer(self, row: RoomRow, answer: str) -> None:
        if answer == "join":
            self._room_request(
                self.session.join(row.room), f"You joined {row.name}.", open_room=True
            )
        elif answer == "decline":
            self._room_request(self.session.decline(row.room), f"You declined {row.name}.")

    # --- actions (keys and the command palette) -------------------------------------------------

    def action_create_room(self) -> None:
        def chosen(name: str | None) -> None:
            if name is not None:
                shown = safe_name(name)
                self._room_request(
                    self.session.create_room(name), f"Room {shown} created.", open_room=True
                )

        self.app.push_screen(RoomNameDialog("New room"), chosen)

    def _open_room(self) -> int | None:
        """The open conversation's room id, or None (with a toast saying so)."""
        active = self.chat.active
        if active is None or active >= 0:
            self.notify("Open a room first (rooms are listed under your buddies).")
            return None
        return -active

    def action_invite_to_room(self) -> None:
        room = self._open_room()
        if room is None:
            return
        name = self.room_name(room)
        dialog = UserSearchDialog(
            self.session.list_users,
            own_uid=self.session.uid,
            relations=self.chat.relations(),
            title=f"Invite to {name}: search users",
        )

        def chosen(user: UserInfo | None) -> None:
            if user is not None:
                who = safe_name(user.username, user.uid)
                self._room_request(
                    self.session.invite(room, user.uid), f"{who} is invited to {name}."
                )

        self.app.push_screen(dialog, chosen)

    def action_leave_room(self) -> None:
        room = self._open_room()
        if room is None:
            return
        name = self.room_name(room)
        question = Content.assemble("Leave the room ", (name, "bold"), "?")
        choices = [Choice("leave", "Leave", "y", "error"), Choice("stay", "Stay", "n")]

        def answered(answer: str | None) -> None:
            if answer == "leave":
                self._room_request(self.session.leave(room), f"You left {name}.")

        self.app.push_screen(ChoiceDialog(question, choices), answered)

    def action_room_members(self) -> None:
        """Ask the relay for the open room's members now and list them with presence."""
        room = self._open_room()
        if room is None:
            return

        async def run() -> None:
            try:
                result = await self.session.members(room)
            except ROOM_ERRORS as exc:
                self.show_notice(Notice(f"Room request failed: {exc}", severity="error"))
                return
            if result.room is None:
                self.show_notice(Notice(f"Not done: {result.reason}.", severity="error"))
                return
            self.show_notice(
                Notice(members_text(result.room), title=f"Members of {self.room_name(room)}")
            )

        self.run_worker(run(), group="rooms", exit_on_error=False)

    def action_kick_from_room(self) -> None:
        """Remove a member of the open room (its owner only; the relay says NOT_ALLOWED)."""
        room = self._open_room()
        if room is None:
            return
        info = self.session.rooms.get(room)
        others = [m for m in (info.members if info else ()) if m.uid != self.session.uid]
        if not others:
            self.notify("Nobody else is in this room.")
            return
        name = self.room_name(room)
        title = Content.assemble("Remove whom from ", (name, "bold"), "?")

        def chosen(uid: int | None) -> None:
            if uid is not None:
                who = safe_name(self.chat.name_of(uid), uid)
                self._room_request(self.session.kick(room, uid), f"{who} removed from {name}.")

        self.app.push_screen(RoomMemberDialog(title, others), chosen)

    def action_rename_room(self) -> None:
        room = self._open_room()
        if room is None:
            return
        info = self.session.rooms.get(room)

        def chosen(name: str | None) -> None:
            if name is not None:
                self._room_request(
                    self.session.rename(room, name), f"Room renamed to {safe_name(name)}."
                )

        self.app.push_screen(RoomNameDialog("Rename the room", info.name if info else ""), chosen)

    def _room_request(
        self, call: Awaitable[RoomResult], success: str, *, open_room: bool = False
    ) -> None:
        """Run a room request in a worker; toast its outcome (and open the room)."""

        async def run() -> None:
            try:
                result = await call
            except ROOM_ERRORS as exc:
                self.show_notice(Notice(f"Room request failed: {exc}", severity="error"))
                return
            if not result.ok:
                self.show_notice(Notice(f"Not done: {result.reason}.", severity="error"))
                return
            self.show_notice(Notice(success))
            self.refresh_rooms()
            if open_room and result.room is not None:
                self.open_conversation(result.room.peer)

        self.run_worker(run(), group="rooms", exit_on_error=False)


RoomCommand = tuple[str, str, Callable[[], None]]
_ROLE_WORDS: dict[int, str] = {pb.Member.OWNER: "owner", pb.Member.INVITED: "invited"}


def members_text(room: RoomInfo) -> str:
    """``alice (owner, online), bob, carol (invited)``: plain text, names made safe; the
    owner first, then members, then invitees, each by name."""
    parts = []
    order: dict[int, int] = {pb.Member.OWNER: 0, pb.Member.MEMBER: 1, pb.Member.INVITED: 2}
    for member in sorted(
        room.members, key=lambda m: (order.get(m.role, 1), m.username.casefold(), m.uid)
    ):
        notes = [_ROLE_WORDS[member.role]] if member.role in _ROLE_WORDS else []
        if member.online:
            notes.append("online")
        name = safe_name(member.username, member.uid)
        parts.append(f"{name} ({', '.join(notes)})" if notes else name)
    return ", ".join(parts)


def room_commands(screen: RoomScreen) -> list[RoomCommand]:
    """The command palette's room entries: (title, help, callback)."""
    return [
        ("Room: create", "Create a room and open it", screen.action_create_room),
        ("Room: invite", "Invite a user into the open room", screen.action_invite_to_room),
        ("Room: members", "List the open room's members", screen.action_room_members),
        ("Room: member pane", "Show or hide the member pane (F4)", screen.action_toggle_members),
        ("Room: rename", "Rename the open room (its owner only)", screen.action_rename_room),
        ("Room: remove a member", "Kick someone out (owner only)", screen.action_kick_from_room),
        ("Room: leave", "Leave the open room", screen.action_leave_room),
    ]
