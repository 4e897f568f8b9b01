"""``ChatState`` without Textual: each session event's effect on the chat's state and what
the screen is told to show (roster redraws, conversation lines, notices, board routing);
and the proof that nothing under ``tui/state`` imports Textual."""

from __future__ import annotations

import subprocess
import sys

import pytest

from protocol import chat_pb2 as pb
from tui.client.events import (
    Buddy,
    BuddyListChanged,
    ConnectionState,
    ConnectionStateChanged,
    EventsLost,
    MessageReceived,
    OutgoingStateChanged,
    ResetReceived,
    SyncCompleted,
)
from tui.client.history import HistoryEntry, MessageState
from tui.client.trust import FingerprintMismatch
from tui.state.chat import MESSAGES_KEY, ChatState, ChatUpdate, Notice, Redraw
from tui.state.roster import RowKind, UnreadCounts
from tui.state.typing import TYPING_VISIBLE_FOR

BOB, CAROL, STRANGER = 2, 3, 9
STORED_NAMES = {STRANGER: "stranger"}


def buddy(uid: int, name: str, relation: int = pb.User.BUDDY, online: bool = True) -> Buddy:
    return Buddy(uid, name, online, relation, protocol_version=2)


def entry(
    peer: int,
    kind: int = pb.Message.MESSAGE,
    text: str = "hello",
    *,
    outgoing: bool = False,
    state: MessageState = MessageState.RECEIVED,
    code: int = 0,
) -> HistoryEntry:
    return HistoryEntry(
        local_id=1,
        peer=peer,
        outgoing=outgoing,
        msg_id=7,
        seq=None,
        type=kind,
        text=text,
        data=b"",
        file=None,
        timestamp=1_700_000_000,
        state=state,
        code=code,
    )


def received(
    peer: int, kind: int = pb.Message.MESSAGE, text: str = "hello", *, backlog: bool = False
) -> MessageReceived:
    return MessageReceived(entry(peer, kind, text), backlog=backlog)


@pytest.fixture
def chat() -> ChatState:
    return ChatState(
        [buddy(BOB, "bob"), buddy(CAROL, "carol")],
        ConnectionState.CONNECTED,
        peer_name=STORED_NAMES.get,
    )


def test_a_message_from_a_peer_whose_chat_is_closed_counts_as_unread_and_toasts(
    chat: ChatState,
) -> None:
    update = chat.apply(received(BOB, text="hi there\nsecond line"), now=0.0)
    assert chat.unread.get(BOB) == 1
    assert update.notices == [Notice("hi there…", title="bob", key=MESSAGES_KEY)]
    assert update.roster is Redraw.COALESCED
    assert update.conversation_line is None and not update.mark_read
    offer = chat.apply(received(BOB, pb.Message.FILE_OFFER, "report.pdf"), now=60.0)
    assert offer.notices == [Notice("offers a file: report.pdf", title="bob", key=MESSAGES_KEY)]
    assert chat.unread.get(BOB) == 2


def test_a_message_in_the_open_chat_is_shown_and_marked_read_not_counted(
    chat: ChatState,
) -> None:
    assert not chat.open(BOB)
    message = received(BOB)
    update = chat.apply(message, now=0.0)
    assert update.conversation_line is message.entry
    assert update.mark_read
    assert update.notices == []
    assert chat.unread.get(BOB) == 0
    assert chat.read_open_chat() == BOB


def test_opening_a_chat_reads_its_unread_messages(chat: ChatState) -> None:
    chat.apply(received(CAROL), now=0.0)
    assert chat.open(CAROL)
    assert chat.unread.get(CAROL) == 0
    assert chat.active == CAROL
    chat.close()
    assert chat.active is None
    assert chat.read_open_chat() is None


def test_backlog_messages_are_summed_up_in_one_notice_when_the_sync_completes(
    chat: ChatState,
) -> None:
    for peer in (CAROL, BOB, CAROL):
        update = chat.apply(received(peer, backlog=True), now=0.0)
        assert update.notices == []
    done = chat.apply(SyncCompleted(head_seq=3), now=0.0)
    assert done.notices == [Notice("3 new messages: bob (1), carol (2)", "While you were away")]
    assert done.roster is Redraw.NOW
    assert chat.unread.get(CAROL) == 2
    again = chat.apply(SyncCompleted(head_seq=3), now=0.0)
    assert again.notices == [] and again.roster is Redraw.NONE


def test_typing_hints_from_buddies_show_a_marker_until_it_expires_or_they_send(
    chat: ChatState,
) -> None:
    chat.open(BOB)
    first = chat.apply(received(BOB, pb.Message.INPUTING, ""), now=10.0)
    assert first.roster is Redraw.NOW
    assert chat.typing_in_open_chat(10.0) == "bob"
    repeated = chat.apply(received(BOB, pb.Message.INPUTING, ""), now=10.5)
    assert repeated.roster is Redraw.NONE  # already shown: nothing to redraw
    row = next(r for r in chat.roster(10.5) if r.uid == BOB)
    assert row.typing
    assert not chat.expire_typing(10.5 + TYPING_VISIBLE_FOR - 0.1)
    assert chat.expire_typing(10.5 + TYPING_VISIBLE_FOR)
    assert chat.typing_in_open_chat(20.0) is None
    chat.apply(received(BOB, pb.Message.INPUTING, ""), now=30.0)
    chat.apply(received(BOB), now=30.1)
    assert chat.typing_in_open_chat(30.1) is None  # their message ends the marker


def test_typing_hints_from_strangers_are_ignored(chat: ChatState) -> None:
    update = chat.apply(received(STRANGER, pb.Message.INPUTING, ""), now=0.0)
    assert update.roster is Redraw.NONE
    assert not chat.typing.is_typing(STRANGER, 0.0)


def test_board_strokes_go_to_the_board_and_transfer_traffic_is_ignored(
    chat: ChatState,
) -> None:
    stroke = received(BOB, pb.Message.GRAPHICS, "1,1,2,2")
    update = chat.apply(stroke, now=0.0)
    assert update.board_incoming is stroke.entry
    assert update.notices == [] and update.roster is Redraw.NONE
    ours = entry(BOB, pb.Message.GRAPHICS, outgoing=True, state=MessageState.FAILED)
    assert chat.apply(OutgoingStateChanged(ours), now=0.0).board_outgoing is ours
    chunk = chat.apply(received(BOB, pb.Message.FILE_CHUNK, ""), now=0.0)
    assert chunk == ChatUpdate()  # nothing changed
    assert chat.unread.get(BOB) == 0


def test_a_failed_message_is_reported_with_its_reason(chat: ChatState) -> None:
    chat.open(BOB)
    failed = entry(BOB, outgoing=True, state=MessageState.FAILED, code=pb.Ack.NOT_BUDDY)
    update = chat.apply(OutgoingStateChanged(failed), now=0.0)
    assert update.conversation_line is failed
    [notice] = update.notices
    assert notice.severity == "error" and notice.timeout == 10
    assert notice.text.startswith("Message to bob not sent: bob ")
    assert notice.text.endswith("Ctrl+R (or a click on its !) re-sends.")
    sent = entry(CAROL, outgoing=True, state=MessageState.SENT)
    quiet = chat.apply(OutgoingStateChanged(sent), now=0.0)
    assert quiet.conversation_line is None and quiet.notices == []


def test_buddy_list_changes_announce_requests_and_acceptances(chat: ChatState) -> None:
    chat.apply(BuddyListChanged((buddy(BOB, "bob"), buddy(4, "dave", pb.User.REQUEST_SENT))), 0.0)
    update = chat.apply(
        BuddyListChanged(
            (
                buddy(BOB, "bob"),
                buddy(4, "dave"),
                buddy(5, "eve\x1b[31m", pb.User.REQUEST_RECEIVED),
            )
        ),
        now=0.0,
    )
    texts = [notice.text for notice in update.notices]
    assert texts == [
        "dave accepted your buddy request.",
        "eve[31m wants to be your buddy. Select the request: a accepts, d declines.",
    ]
    assert update.roster is Redraw.NOW
    kinds = [(row.kind, row.name) for row in chat.roster(0.0) if row.kind is not RowKind.HEADER]
    assert kinds == [
        (RowKind.INCOMING, "eve[31m"),
        (RowKind.BUDDY, "bob"),
        (RowKind.BUDDY, "dave"),
    ]
    assert chat.relations() == {BOB: pb.User.BUDDY, 4: pb.User.BUDDY, 5: pb.User.REQUEST_RECEIVED}


def test_the_open_chat_closes_when_the_user_removes_its_buddy(chat: ChatState) -> None:
    chat.open(CAROL)
    chat.apply(received(CAROL, pb.Message.INPUTING, ""), now=0.0)
    chat.removing_buddy(CAROL)
    update = chat.apply(BuddyListChanged((buddy(BOB, "bob"),)), now=0.1)
    assert update.close_conversation and update.notices == []
    assert chat.active is None
    assert not chat.typing.is_typing(CAROL, 0.1)
    kept = chat.apply(BuddyListChanged((buddy(BOB, "bob"),)), now=0.2)
    assert not kept.close_conversation


def test_connection_changes_report_losses_returns_and_fatal_errors() -> None:
    chat = ChatState([], ConnectionState.CONNECTING, peer_name=STORED_NAMES.get)
    first = chat.apply(ConnectionStateChanged(ConnectionState.CONNECTED), 0.0)
    assert first.connection == ConnectionStateChanged(ConnectionState.CONNECTED)
    assert first.notices == []  # the first connection is not news
    lost = chat.apply(
        ConnectionStateChanged(ConnectionState.RECONNECTING, retry_in=1.0, reason="EOF"), 0.0
    )
    assert lost.notices == [Notice("Connection lost (EOF); reconnecting…", severity="warning")]
    back = chat.apply(ConnectionStateChanged(ConnectionState.CONNECTED), 0.0)
    assert back.notices == [Notice("Connected to the relay again.")]
    mismatch = FingerprintMismatch("relay:1", "aa", "bb", "--fingerprint")
    refused = chat.apply(
        ConnectionStateChanged(ConnectionState.OFFLINE, reason="refused", error=mismatch), 0.0
    )
    assert refused.fingerprint_changed is mismatch and refused.notices == []
    failed = chat.apply(
        ConnectionStateChanged(ConnectionState.OFFLINE, reason="boom", error=OSError("x")), 0.0
    )
    assert failed.notices == [
        Notice("Disconnected: boom. F5 tries again.", severity="error", timeout=15)
    ]
    assert chat.connection is ConnectionState.OFFLINE


def test_resets_from_the_relay_are_explained(chat: ChatState) -> None:
    kicked = chat.apply(ResetReceived(pb.Reset.KICKED, ""), now=0.0)
    assert [n.severity for n in kicked.notices] == ["error"]
    assert "logged in from somewhere else" in kicked.notices[0].text
    shutdown = chat.apply(ResetReceived(pb.Reset.SERVER_SHUTDOWN, ""), now=0.0)
    assert shutdown.notices == [Notice("The relay is shutting down.", severity="warning")]


def test_lost_events_ask_for_a_reload_from_the_store(chat: ChatState) -> None:
    update = chat.apply(EventsLost(count=5), now=0.0)
    assert update.reload and update.roster is Redraw.NOW
    chat.replace_unread(UnreadCounts([(BOB, 4)]))
    assert next(r for r in chat.roster(0.0) if r.uid == BOB).unread == 4


def test_names_come_from_buddies_then_the_store_then_the_uid(chat: ChatState) -> None:
    assert chat.name_of(BOB) == "bob"
    assert chat.name_of(STRANGER) == "stranger"
    assert chat.name_of(77) == "#77"


def test_typing_hints_we_send_are_throttled_until_a_message_goes_out(chat: ChatState) -> None:
    assert chat.may_hint_typing(BOB, 0.0)
    assert not chat.may_hint_typing(BOB, 0.5)
    chat.message_sent(BOB)
    assert chat.may_hint_typing(BOB, 0.6)


def test_the_state_package_imports_no_textual() -> None:
    modules = ["board", "board_book", "chat", "roster", "transfers", "typing"]
    imports = "; ".join(f"import tui.state.{name}" for name in modules)
    check = f"{imports}; import sys; print('textual' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
