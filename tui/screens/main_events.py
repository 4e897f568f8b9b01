"""How :class:`~tui.screens.main.MainScreen` reacts to session events.

Split from ``main.py`` to keep both short; these functions act only on the screen they get.

Invariants:
- One function per event type, called in the order the session emitted the events.
- Toast texts contain hostile names and message previews: always ``markup=False``.
- Backlog messages (replayed after a login) are summed up in one toast at ``SyncCompleted``
  instead of one toast each; redraws of the buddy list are coalesced.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

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
from tui.client.scripting import describe_failure
from tui.client.store import HistoryEntry, MessageState
from tui.client.trust import FingerprintMismatch
from tui.dialogs.fingerprint_changed import FingerprintChangedDialog
from tui.models import CHAT_TYPES, preview, safe_name
from tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from tui.screens.main import MainScreen


def handle_event(screen: MainScreen, event: Event) -> None:
    if isinstance(event, MessageReceived):
        message_received(screen, event)
    elif isinstance(event, OutgoingStateChanged):
        outgoing_changed(screen, event.entry)
    elif isinstance(event, ConnectionStateChanged):
        connection_changed(screen, event)
    elif isinstance(event, BuddyListChanged):
        buddies_changed(screen, event.buddies)
    elif isinstance(event, SyncCompleted):
        synced(screen)
    elif isinstance(event, ResetReceived):
        reset_received(screen, event)
    elif isinstance(event, EventsLost):
        events_lost(screen)


def connection_changed(screen: MainScreen, event: ConnectionStateChanged) -> None:
    previous, screen.state = screen.state, event.state
    status = screen.query_one("#status", StatusBar)
    status.set_state(event.state, retry_in=event.retry_in, reason=event.reason)
    if event.state is ConnectionState.CONNECTED:
        status.set_identity(
            status.user, status.relay, screen.session.fingerprint, plaintext=status.plaintext
        )
        if screen.was_connected and previous is not ConnectionState.CONNECTED:
            screen.notify("Connected to the relay again.")
        screen.was_connected = True
    elif event.state is ConnectionState.RECONNECTING and previous is ConnectionState.CONNECTED:
        screen.notify(
            f"Connection lost ({event.reason}); reconnecting…", severity="warning", markup=False
        )
    elif event.state is ConnectionState.OFFLINE and event.error is not None:
        if isinstance(event.error, FingerprintMismatch):
            screen.app.push_screen(FingerprintChangedDialog(event.error))
        else:
            screen.notify(
                f"Disconnected: {event.reason}. F5 tries again.",
                severity="error",
                timeout=15,
                markup=False,
            )


def message_received(screen: MainScreen, event: MessageReceived) -> None:
    entry = event.entry
    peer = entry.peer
    if entry.type == pb.Message.INPUTING:
        if peer in screen.buddies and screen.typing.hint(peer, time.monotonic()):
            screen.refresh_roster()
        return
    if entry.type == pb.Message.GRAPHICS:
        screen.board_pane.incoming(entry)  # no toast, no chat line, no unread count
        return
    if entry.type not in CHAT_TYPES:
        return  # file transfer traffic belongs to another pane
    screen.typing.stop(peer)
    if peer == screen.active:
        screen.view.add(entry)
        screen.schedule_mark_read()
    else:
        screen.unread.bump(peer)
        if event.backlog:
            screen.backlog[peer] = screen.backlog.get(peer, 0) + 1
        else:
            screen.notify(_preview(entry), title=screen.name_of(peer), markup=False)
    screen.schedule_roster_refresh()


def _preview(entry: HistoryEntry) -> str:
    if entry.type == pb.Message.MESSAGE:
        return preview(entry.text) or "(empty message)"
    return f"offers a file: {preview(entry.text, 60)}"


def outgoing_changed(screen: MainScreen, entry: HistoryEntry) -> None:
    if entry.type == pb.Message.GRAPHICS:
        screen.board_pane.outgoing(entry)
        return
    if entry.type not in CHAT_TYPES:
        return
    if entry.peer == screen.active:
        screen.view.add(entry)
    if entry.state is MessageState.FAILED:
        name = screen.name_of(entry.peer)
        screen.notify(
            f"Message to {name} not sent: {describe_failure(entry, name)}. "
            "Ctrl+R (or a click on its !) re-sends.",
            severity="error",
            timeout=10,
            markup=False,
        )


def buddies_changed(screen: MainScreen, buddies: tuple[Buddy, ...]) -> None:
    old = screen.buddies
    new = {buddy.uid: buddy for buddy in buddies}
    for buddy in buddies:
        before = old.get(buddy.uid)
        name = safe_name(buddy.username, buddy.uid)
        if buddy.relation == pb.User.REQUEST_RECEIVED and (
            before is None or before.relation != pb.User.REQUEST_RECEIVED
        ):
            screen.notify(
                f"{name} wants to be your buddy. Select the request: a accepts, d declines.",
                title="Buddy request",
                timeout=10,
                markup=False,
            )
        elif (
            buddy.relation == pb.User.BUDDY
            and before is not None
            and before.relation == pb.User.REQUEST_SENT
        ):
            screen.notify(f"{name} accepted your buddy request.", markup=False)
    screen.buddies = new
    for uid in screen.typing.typing(time.monotonic()):
        if uid not in new:
            screen.typing.stop(uid)
    active = screen.active
    if active is not None and (active not in new or new[active].relation != pb.User.BUDDY):
        screen.close_conversation()
    screen.refresh_roster()


def synced(screen: MainScreen) -> None:
    if not screen.backlog:
        return
    total = sum(screen.backlog.values())
    who = ", ".join(
        f"{screen.name_of(peer)} ({count})" for peer, count in sorted(screen.backlog.items())
    )
    screen.backlog.clear()
    screen.notify(
        f"{total} new message{'s' if total != 1 else ''}: {who}",
        title="While you were away",
        markup=False,
    )
    screen.refresh_roster()


def reset_received(screen: MainScreen, event: ResetReceived) -> None:
    if event.code == pb.Reset.KICKED:
        screen.notify(
            "You logged in from somewhere else: this session was disconnected.",
            severity="error",
            timeout=15,
        )
    elif event.code == pb.Reset.SERVER_SHUTDOWN:
        screen.notify("The relay is shutting down.", severity="warning")


def events_lost(screen: MainScreen) -> None:
    """We fell behind the session's event stream: reload what the store has."""
    from tui.screens.main import stored_unread

    screen.unread = stored_unread(screen.session)
    screen.board_pane.reload()
    if screen.active is not None:
        screen.open_conversation(screen.active, focus=False)
    screen.refresh_roster()
