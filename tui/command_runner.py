"""``CommandRunner``: carries out the composer's slash commands (:mod:`tui.commands`) on the
main screen (its room half, :class:`~tui.screens.rooms.RoomScreen`, is all it needs).

Invariants:
- :meth:`CommandRunner.run` returns the text to send in the open chat (a plain message,
  ``//text`` as ``/text``, ``/me`` as ``* name action``, ``/msg``'s text after opening that
  chat) or None when nothing is to be sent; a refused command keeps the composer's text.
- Requests to the relay (join, invite, leave, block, user look-ups) run in the screen's
  workers; their outcomes, failures included, are toasts (plain text), never crashes.
- Away is local: the protocol has no status field. While away, the first live 1:1 message
  from each buddy gets one automatic reply; ``/back`` ends it.
- Names are matched as the relay matches usernames (case and width folded).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from protocol import chat_pb2 as pb
from protocol.validation import username_key
from tui.client.events import Event, MessageReceived
from tui.client.login import SessionError
from tui.client.rooms import RoomResult
from tui.commands import PLACEHOLDER, Command, Refused, Send, parse
from tui.display import safe_name
from tui.screens.attention import MuteRequested
from tui.screens.finding import SearchRequested
from tui.screens.rooms import RoomScreen
from tui.state.chat import Notice
from tui.widgets.composer import Composer

ERRORS = (SessionError, TimeoutError, ConnectionError, RuntimeError)


class CommandRunner:
    """See the module docstring."""

    PLACEHOLDER = PLACEHOLDER

    def __init__(self, screen: RoomScreen) -> None:
        self.screen = screen
        self.away: str | None = None  # the away message while away
        self._replied: set[int] = set()  # buddies auto-answered in this away period
        self._unlisten: Callable[[], None] | None = None

    # --- the composer's entry points -------------------------------------------------------

    def names(self) -> Iterable[str]:
        """Tab completion: buddies, the members of every room, the rooms."""
        screen = self.screen
        names = {b.username for b in screen.chat.buddies.values() if b.username}
        for room in screen.session.rooms.rooms.values():
            names.add(room.name)
            names.update(m.username for m in room.members if m.username)
        names.discard(screen.session.username)
        return names

    def run(self, text: str, composer: Composer) -> str | None:
        parsed = parse(text)
        if isinstance(parsed, Send):
            if self.screen.chat.active is None:
                self._say("Open a chat first (select a buddy or room), or /msg NAME text.")
                return None
            return parsed.text
        if isinstance(parsed, Refused):
            self.screen.notify(parsed.reason, severity="warning", markup=False)
            return None
        if parsed.name in ("me", "msg"):
            return self._me(parsed) if parsed.name == "me" else self._msg(parsed)
        composer.sent()
        getattr(self, f"_{parsed.name}")(parsed)
        return None

    # --- the commands ----------------------------------------------------------------------

    def _me(self, command: Command) -> str | None:
        if self.screen.chat.active is None:
            self.screen.notify("Open a chat first.", severity="warning")
            return None
        return f"* {self.screen.session.username} {command.rest}"

    def _msg(self, command: Command) -> str | None:
        name, text = command.args
        uid = self._buddy(name)
        if uid is None:
            rooms = [r for r in self.screen.session.rooms.named(name) if not r.invited]
            if not rooms:
                self._say(f"{safe_name(name)} is not one of your buddies or rooms.", "warning")
                return None
            uid = rooms[0].peer
        self.screen.open_conversation(uid)
        return text

    def _join(self, command: Command) -> None:
        rooms = self.screen.session.rooms.named(command.rest)
        if not rooms:
            self._say(f"No room called {safe_name(command.rest)}: you need an invitation.")
            return
        room = rooms[0]
        if not room.invited:
            self.screen.open_conversation(room.peer)
            return
        name = safe_name(room.name, room.id)
        self._room(self.screen.session.join(room.id), f"You joined {name}.", open_room=True)

    def _invite(self, command: Command) -> None:
        room = self._open_room()
        if room is None:
            return
        screen = self.screen

        async def run() -> None:
            uid = await self._user(command.rest)
            if uid is not None:
                who, where = safe_name(command.rest), screen.room_name(room)
                await self._room_call(
                    screen.session.invite(room, uid), f"{who} invited to {where}."
                )

        self._work(run())

    def _leave(self, command: Command) -> None:
        room = self._open_room()
        if room is not None:
            name = self.screen.room_name(room)
            self._room(self.screen.session.leave(room), f"You left {name}.")

    def _away(self, command: Command) -> None:
        self.away = command.rest or "I am away."
        self._replied.clear()
        if self._unlisten is None:
            self._unlisten = self.screen.session.add_listener(self._on_event)
        self._say(
            f"You are away ({self.away}): buddies who write get one auto-reply. /back ends it."
        )

    def _back(self, command: Command) -> None:
        if self.away is None:
            self._say("You were not away.")
            return
        self.stop()
        self._say("Welcome back: auto-replies are off.")

    def _ignore(self, command: Command) -> None:
        self._block(command.rest, blocked=True)

    def _unignore(self, command: Command) -> None:
        self._block(command.rest, blocked=False)

    def _clear(self, command: Command) -> None:
        """Empty the view; the history stays (reopen the chat or scroll to see it again)."""
        screen = self.screen
        peer = screen.chat.active
        if peer is None:
            return
        _, sender_name = screen.history_loader(peer)
        own, name = safe_name(screen.session.username), screen.chat.name_of(peer)
        screen.view.open(peer, own, name, lambda before, limit: [], sender_name)

    def _search(self, command: Command) -> None:
        self.screen.post_message(SearchRequested(command.rest))  # tui/screens/finding.py

    def _mute(self, command: Command) -> None:
        self.screen.post_message(MuteRequested(True))  # tui/screens/attention.py

    def _unmute(self, command: Command) -> None:
        self.screen.post_message(MuteRequested(False))

    def _help(self, command: Command) -> None:
        # The app's own action (F1): importing the help screen here would close an import
        # cycle (help -> keymap -> main -> this module).
        self.screen.app.call_later(self.screen.app.run_action, "help")

    def _quit(self, command: Command) -> None:
        self.screen.app.call_later(self.screen.app.action_quit)

    # --- away ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """No longer away (also when the screen goes)."""
        self.away = None
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, MessageReceived) or event.backlog or self.away is None:
            return
        entry = event.entry
        if entry.outgoing or entry.peer <= 0 or entry.type != pb.Message.MESSAGE:
            return
        if entry.peer in self._replied:
            return
        self._replied.add(entry.peer)
        reply = f"[auto-reply] {self.away}"
        # Not from inside the session's dispatch: on the next turn of the app's loop.
        self.screen.call_later(self._auto_reply, entry.peer, reply)

    def _auto_reply(self, peer: int, text: str) -> None:
        try:
            self.screen.view.add(self.screen.session.send_text(peer, text))
        except ValueError:
            return

    # --- helpers ---------------------------------------------------------------------------

    def _say(self, text: str, severity: str = "information") -> None:
        self.screen.show_notice(Notice(text, severity=severity))  # type: ignore[arg-type]

    def _buddy(self, name: str) -> int | None:
        key = username_key(name)
        for buddy in self.screen.chat.buddies.values():
            if buddy.relation == pb.User.BUDDY and username_key(buddy.username) == key:
                return buddy.uid
        return None

    async def _user(self, name: str) -> int | None:
        """``name``'s uid: a buddy's, else the relay's answer (a toast if unknown)."""
        key = username_key(name)
        for buddy in self.screen.chat.buddies.values():
            if username_key(buddy.username) == key:
                return buddy.uid
        user = await self.screen.session.find_user(name)
        if user is None:
            self._say(f"No user called {safe_name(name)}.", "warning")
            return None
        return user.uid

    def _open_room(self) -> int | None:
        active = self.screen.chat.active
        if active is None or active >= 0:
            self._say("Open a room first (rooms are listed under your buddies).", "warning")
            return None
        return -active

    def _block(self, name: str, *, blocked: bool) -> None:
        session = self.screen.session

        async def run() -> None:
            uid = await self._user(name)
            if uid is None:
                return
            call = session.block(uid) if blocked else session.unblock(uid)
            if await call != pb.BlockResponse.SUCCESS:
                self._say(f"The relay refused to change {safe_name(name)}.", "error")
            elif blocked:
                self._say(f"{safe_name(name)} is blocked: nothing from them is shown.")
            else:
                self._say(f"{safe_name(name)} is no longer blocked.")

        self._work(run())

    def _room(self, call: Awaitable[RoomResult], success: str, *, open_room: bool = False) -> None:
        self._work(self._room_call(call, success, open_room=open_room))

    async def _room_call(
        self, call: Awaitable[RoomResult], success: str, *, open_room: bool = False
    ) -> None:
        result = await call
        if not result.ok:
            self._say(f"Not done: {result.reason}.", "error")
            return
        self._say(success)
        self.screen.refresh_rooms()
        if open_room and result.room is not None:
            self.screen.open_conversation(result.room.peer)

    def _work(self, call: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await call
            except ERRORS as exc:
                self._say(f"Command failed: {exc}", "error")

        self.screen.run_worker(run(), group="commands", exit_on_error=False)
