"""``MainScreen``: buddies on the left, the workspace (conversation) on the right, status bar.

Layout: ``#body`` is a Horizontal of the ``#sidebar`` (``BuddyList`` over ``RoomList``; rooms:
the base class :class:`~tui.screens.rooms.RoomScreen`) and the ``#workspace``
``TabbedContent``, whose panes come from :meth:`MainScreen.workspace_panes` (more panes:
more ``TabPane`` s there). The Board and Files panes are built when first needed and the
board follows the open conversation (:class:`~tui.screens.lazy_panes.LazyPanes`).

The screen composes and routes only: the chat's state (buddies, unread counts, typing
markers, the open conversation) is a :class:`~tui.state.chat.ChatState`, which consumes the
session's events and reports what changed; the screen passes that on to its widgets.

Invariants:
- The client library's events (chat and file transfers) arrive by one path, as
  :class:`~tui.messages.SessionEvent` in the order of the net worker's feed, and are the
  only source of truth for what the panes show (plus the store for history pages).
- Redraws of the buddy list for incoming messages are coalesced (a backlog of thousands
  redraws it once), and so is marking the open conversation read.
- Hostile text (names, messages, relay reasons) reaches the screen only through ``Content``
  objects or ``notify(..., markup=False)``.
- Requests to the relay (add/remove buddy, :class:`~tui.buddy_requests.BuddyRequests`) run
  in this screen's workers; their outcomes, failures included, are toasts, never crashes.
  The connection itself belongs to the App's ``net`` worker.
- Kicked by another login on this device, it says so and offers to take the session back
  (:class:`~tui.dialogs.kicked.KickedDialog`).
- Typing hints (:mod:`tui.state.typing`, in the chat state): sent at most once a second while
  editing; a peer's marker shows ``TYPING_VISIBLE_FOR`` after each hint, gone with their message.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static, TabbedContent, TabPane

from protocol.validation import text_within_limit
from tui.buddy_requests import BuddyRequests
from tui.client.events import ConnectionState, ConnectionStateChanged, UserInfo
from tui.client.history import HistoryEntry, MessageState
from tui.client.login import RelayReset, SessionError
from tui.client.session import ClientSession
from tui.client.transfer import TransferManager
from tui.client.transfer.events import TransferEvent
from tui.command_runner import CommandRunner
from tui.dialogs.confirm import answer_request, confirm_remove
from tui.dialogs.fingerprint_changed import FingerprintChangedDialog
from tui.dialogs.kicked import KickedDialog, is_kick
from tui.dialogs.switch_conversation import SwitchConversationDialog
from tui.dialogs.user_search import UserSearchDialog
from tui.display import safe_name
from tui.feed import TransfersLoaded
from tui.memory import release_free_memory
from tui.messages import SessionEvent
from tui.relogin import remember_chat
from tui.screens.lazy_panes import LazyPanes
from tui.settings import AppConfig
from tui.state.chat import ChatState, ChatUpdate, Notice, Redraw
from tui.state.roster import RosterRow, RowKind, stored_unread
from tui.toasts import Toasts
from tui.widgets.buddy_list import BuddyList
from tui.widgets.composer import Composer
from tui.widgets.conversation import ConversationView
from tui.widgets.footer import Footer
from tui.widgets.room_list import RoomList
from tui.widgets.status_bar import StatusBar


class MainScreen(LazyPanes):  # over AttentionScreen, HistoryFinding, RoomScreen
    """The chat screen; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "add_buddy", "Add buddy"),
        Binding("ctrl+o", "switch_conversation", "Switch chat"),
        Binding("ctrl+r", "resend_failed", "Re-send failed"),
        Binding("f5", "reconnect", "Reconnect"),
        Binding("f2", "show_pane('board')", "Board"),
        Binding("f3", "show_pane('files')", "Files"),
        Binding("ctrl+t", "send_file", "Send files"),
    ]

    def __init__(
        self,
        session: ClientSession,
        config: AppConfig | None = None,
        *,
        transfers: TransferManager | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.config = config or AppConfig()
        self.transfers = transfers  # None: no Files pane (file transfer unavailable)
        self.chat = ChatState(
            session.buddies.values(), session.state, peer_name=session.store.peer_name
        )
        self.requests = BuddyRequests(session, on_remove=self.chat.removing_buddy)
        self.toasts = Toasts()  # one toast per notice key (a burst of messages: one)
        self._roster_dirty = False
        self._read_dirty = False
        self.commands = CommandRunner(self)  # the composer's /commands (tui/commands.py)

    # --- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield BuddyList(id="buddies")
                yield RoomList(id="rooms")
            with TabbedContent(id="workspace"):
                yield from self.workspace_panes()
        yield StatusBar(id="status")
        yield Footer()

    def workspace_panes(self) -> Iterable[TabPane]:
        """The panes of the workspace, in tab order (extend here for more panes)."""
        yield TabPane(
            "Chat",
            ConversationView(id="conversation"),
            Static("", id="typing"),
            Composer(names=self.commands.names, id="composer"),
            id="chat",
        )
        yield from self.lazy_panes()  # Board, Files: filled when first shown

    def on_mount(self) -> None:
        workspace = self.query_one("#workspace", TabbedContent)
        workspace.set_class(workspace.tab_count <= 1, "-single-pane")
        self.query_one("#buddies", BuddyList).border_title = "Buddies"
        self.room_list.border_title = "Rooms"
        self.view.border_title = "Conversation"
        session = self.session
        status = self.query_one("#status", StatusBar)
        status.set_identity(
            safe_name(session.username),
            str(session.endpoint),
            session.fingerprint,
            plaintext=not session.trust.uses_tls,
        )
        status.set_state(session.state)
        self.chat.replace_unread(stored_unread(session.store))
        self.refresh_roster()
        self.set_interval(0.25, self._expire_typing)
        self.run_worker(self.requests.refresh(), group="requests", exit_on_error=False)
        self.query_one("#buddies", BuddyList).focus()

    @property
    def view(self) -> ConversationView:
        return self.query_one("#conversation", ConversationView)

    @property
    def composer(self) -> Composer:
        return self.query_one("#composer", Composer)

    @property
    def buddy_list(self) -> BuddyList:
        return self.query_one("#buddies", BuddyList)

    def name_of(self, uid: int) -> str:
        return self.chat.name_of(uid)

    def refresh_roster(self) -> None:
        self.buddy_list.set_rows(self.chat.roster(time.monotonic()), self.chat.active)
        self.refresh_rooms()
        self._show_typing_line()
        unseen = self.chat.unseen_in_open_chat  # the Board or Files tab is in front
        chat_tab = self.query_one("#workspace", TabbedContent).get_tab("chat")
        chat_tab.label = f"Chat ({unseen})" if unseen else "Chat"

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The chat pane came to the front (its messages are seen) or went behind."""
        if event.tabbed_content.id == "workspace":
            unseen = self.chat.unseen_in_open_chat  # came while Board or Files was in front
            peer = self.chat.show_chat(event.pane.id == "chat")
            if peer is not None:
                self.session.store.mark_read(peer)
                self.view.mark_new_messages(unseen)  # the "new messages" line before them
            self.refresh_roster()

    def _show_typing_line(self) -> None:
        line = self.query_one("#typing", Static)
        name = self.chat.typing_in_open_chat(time.monotonic())
        typing = Content.assemble((name, "bold"), (" is typing…", "italic")) if name else ""
        line.update(typing)

    def _expire_typing(self) -> None:
        if self.chat.expire_typing(time.monotonic()):
            self.refresh_roster()

    # --- conversation -----------------------------------------------------------------------

    def open_conversation(self, uid: int, *, focus: bool = True) -> None:
        unread = self.chat.unread.get(uid)  # the "new messages" line goes before these
        self.chat.open(uid)
        store = self.session.store
        name = self.name_of(uid)
        load, sender_name = self.history_loader(uid)  # a room: its events and senders too
        self.view.open(uid, safe_name(self.session.username), name, load, sender_name)
        self.view.mark_new_messages(unread)
        title = "Room " if uid < 0 else "Chat with "
        self.view.border_title = Content.assemble(title, (name, "bold"))
        self.board_follows(uid, name)
        if unread:
            store.mark_read(uid)
        remember_chat(self.session, uid)  # reopened after the next login (tui/relogin.py)
        composer = self.composer
        composer.disabled = False
        composer.placeholder = Content.assemble("Message ", name, " — Enter sends, Ctrl+J new line")
        self.refresh_roster()
        self.buddy_list.highlight_uid(uid)
        if focus:
            composer.focus()
        self.call_after_refresh(release_free_memory)  # after the scans, layout (tui/memory.py)

    def close_conversation(self) -> None:
        self.chat.close()
        self.view.close()
        self.board_follows(None)
        self.view.border_title = "Conversation"
        self.composer.placeholder = self.commands.PLACEHOLDER  # /commands work without a chat
        self.refresh_roster()

    def on_composer_send(self, message: Composer.Send) -> None:
        text = self.commands.run(message.text, message.composer)  # None: a command, done
        peer = self.chat.active
        if peer is None or text is None or not text.strip():
            return
        if not text_within_limit(text):
            self.notify("Message too long: the limit is 64 KiB.", severity="error")
            return
        try:
            entry = self.session.send_text(peer, text)
        except ValueError as exc:
            self.notify(f"Cannot send: {exc}", severity="error", markup=False)
            return
        message.composer.sent()
        self.chat.message_sent(peer)
        self.view.add(entry)

    def on_composer_edited(self, message: Composer.Edited) -> None:
        peer, now = self.chat.active, time.monotonic()
        if peer is not None and self.session.connected and self.chat.may_hint_typing(peer, now):
            with contextlib.suppress(SessionError, ConnectionError):
                self.session.send_typing(peer)  # a hint is best effort

    def on_conversation_view_resend_requested(
        self, message: ConversationView.ResendRequested
    ) -> None:
        self._resend([message.entry])

    def on_conversation_view_file_clicked(self, message: ConversationView.FileClicked) -> None:
        """A click on a file offer in the chat: show it in the Files pane."""
        if self.transfers is not None:
            self.action_show_pane("files")
            self.files_action(lambda files: files.select_entry(message.entry))

    def action_send_file(self) -> None:
        if self.transfers is None:
            self.notify("File transfer is not available.", severity="warning")
        else:
            self.files_action(lambda files: files.action_send_files())

    def action_resend_failed(self) -> None:
        failed = self.session.store.failed(self.chat.active) if self.chat.active else []
        if not failed:
            self.notify("No failed messages in this conversation.")
            return
        self._resend(failed)

    def _resend(self, entries: list[HistoryEntry]) -> None:
        count = 0
        for entry in entries:
            if entry.state is not MessageState.FAILED:
                continue
            try:
                self.view.add(self.session.resend(entry.msg_id))
                count += 1
            except KeyError:
                continue  # no longer FAILED (a late Ack arrived)
        if count:
            self.notify(f"Re-sending {count} message{'s' if count > 1 else ''}.")

    # --- buddy list actions -----------------------------------------------------------------

    def on_buddy_list_row_action(self, message: BuddyList.RowAction) -> None:
        row, action = message.row, message.action
        if action == "open":
            if row.kind is RowKind.BUDDY:
                self.open_conversation(row.uid)
            elif row.kind is RowKind.INCOMING:
                self.app.push_screen(answer_request(row.name), self._answered(row))
            else:
                self.notify(f"Waiting for {row.name} to accept your buddy request.", markup=False)
        elif action == "accept":
            self._request(self.requests.add(row.uid, row.name))
        elif action == "decline":
            self._request(self.requests.remove(row.uid, row.name, declined=True))
        elif action == "remove":
            self.app.push_screen(
                confirm_remove(row.name),
                lambda answer: (
                    self._request(self.requests.remove(row.uid, row.name))
                    if answer == "remove"
                    else None
                ),
            )

    def _answered(self, row: RosterRow) -> Callable[[str | None], None]:
        def answered(answer: str | None) -> None:
            if answer == "accept":
                self._request(self.requests.add(row.uid, row.name))
            elif answer == "decline":
                self._request(self.requests.remove(row.uid, row.name, declined=True))

        return answered

    def _request(self, call: Awaitable[Notice]) -> None:
        """Run a buddy request in a worker and show its outcome."""

        async def run() -> None:
            self.show_notice(await call)

        self.run_worker(run(), group="requests", exit_on_error=False)

    # --- screen actions ---------------------------------------------------------------------

    def action_add_buddy(self) -> None:
        relations = self.chat.relations()
        dialog = UserSearchDialog(
            self.session.list_users, own_uid=self.session.uid, relations=relations
        )

        def chosen(user: UserInfo | None) -> None:
            if user is not None:
                self._request(self.requests.add(user.uid, safe_name(user.username, user.uid)))

        self.app.push_screen(dialog, chosen)

    def action_switch_conversation(self) -> None:
        rows = [row for row in self.chat.roster(time.monotonic()) if row.kind is RowKind.BUDDY]
        past = self.chat.past_chats(self.session.store.conversations())  # former buddies
        if not rows and not past:
            self.notify("No buddies yet: Ctrl+N finds people to add.")
            return
        self.app.push_screen(
            SwitchConversationDialog(rows, past, presence_known=self.presence.known),
            lambda uid: self.open_conversation(uid) if uid is not None else None,
        )

    def action_show_pane(self, pane: str) -> None:
        """Show workspace pane ``pane`` and focus it; if it is already shown, go back to
        the chat."""
        if not self.pane_ready(pane):  # built first, then shown (tui/screens/lazy_panes.py)
            self.when_built(pane, lambda: self.action_show_pane(pane))
            return
        workspace = self.query_one("#workspace", TabbedContent)
        if workspace.active == pane:
            pane = "chat"
        workspace.active = pane
        target: Widget = self.buddy_list
        if pane == "chat":
            target = self.composer if not self.composer.disabled else target
        else:
            target = next((w for w in workspace.get_pane(pane).query("*") if w.can_focus), target)
        # At once (widget.focus() defers): the focused widget is being hidden and would
        # otherwise hand the focus to a hidden neighbour, which switches the tab back.
        self.set_focus(target)

    def action_reconnect(self) -> None:
        if self.session.state is ConnectionState.CONNECTED:
            self.notify("Already connected.")
            return
        self.session.reconnect_now()

    def action_focus_pane(self, pane: str) -> None:
        if pane == "buddies":
            self.buddy_list.focus()
        elif pane == "composer" and not self.composer.disabled:
            self.composer.focus()
        else:
            self.view.focus()

    # --- session events -----------------------------------------------------------------------

    def on_session_event(self, message: SessionEvent) -> None:
        """Route one item of the client feed: transfers to the Files pane, the rest through
        the chat state."""
        event = message.event
        if isinstance(event, TransfersLoaded | TransferEvent):
            self.files_event(event)
            return
        if not self.room_event(event):
            self.show_update(self.chat.apply(event, time.monotonic()))

    def show_update(self, update: ChatUpdate) -> None:
        """Route what one event changed to the widgets that show it."""
        if update.connection is not None:
            self._show_connection(update.connection)
        if update.fingerprint_changed is not None:
            self.app.push_screen(FingerprintChangedDialog(update.fingerprint_changed))
        if update.close_conversation:
            self.close_conversation()
        if update.reload:
            self._reload()
        if update.board_incoming is not None:
            self.board_incoming(update.board_incoming)
        if update.board_outgoing is not None:
            self.board_outgoing(update.board_outgoing)
        if update.conversation_line is not None:
            self.view.add(update.conversation_line)
        if update.mark_read:
            self.schedule_mark_read()
        for notice in update.notices:
            self.show_notice(notice)
        if update.roster is Redraw.NOW:
            self.refresh_roster()
        elif update.roster is Redraw.COALESCED:
            self.schedule_roster_refresh()

    def show_notice(self, notice: Notice) -> None:
        self.toasts.show(self.app, notice)

    def _show_connection(self, event: ConnectionStateChanged) -> None:
        status = self.query_one("#status", StatusBar)
        status.set_state(event.state, retry_in=event.retry_in, reason=event.reason)
        if event.state is ConnectionState.CONNECTED:
            status.set_identity(
                status.user, status.relay, self.session.fingerprint, plaintext=status.plaintext
            )
        elif event.state is ConnectionState.OFFLINE and is_kick(event.error):
            self.offer_take_back(event.error)

    def offer_take_back(self, error: BaseException | None) -> None:
        """Another login on this device took the session: say so, offer to log in again
        (which disconnects the other one)."""
        if isinstance(self.app.screen, KickedDialog):
            return
        session = self.session
        reason = error.reason if isinstance(error, RelayReset) else ""

        def answered(take_back: bool | None) -> None:
            if take_back:
                session.reconnect_now()

        self.app.push_screen(KickedDialog(session.username, session.device, reason), answered)

    def _reload(self) -> None:
        """We fell behind the session's event stream: reload what the store has."""
        self.chat.replace_unread(stored_unread(self.session.store))
        self.board_reload()
        if self.chat.active is not None:
            self.open_conversation(self.chat.active, focus=False)

    # --- coalesced updates ----------------------------------------------------------------------

    def schedule_roster_refresh(self) -> None:
        if not self._roster_dirty:
            self._roster_dirty = True
            self.call_later(self._flush_roster)

    def _flush_roster(self) -> None:
        self._roster_dirty = False
        self.refresh_roster()

    def schedule_mark_read(self) -> None:
        if not self._read_dirty:
            self._read_dirty = True
            self.set_timer(0.3, self._flush_read)

    def _flush_read(self) -> None:
        self._read_dirty = False
        peer = self.chat.read_open_chat()
        if peer is not None:
            self.session.store.mark_read(peer)
