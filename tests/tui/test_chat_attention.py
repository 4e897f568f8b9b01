"""``ChatState`` and ``UnreadCounts`` without Textual (issue 15): a message is counted once
whether the store or the event stream reports it first, the open chat is "seen" only while
the chat pane is in front, and live messages give one toast per burst."""

from __future__ import annotations

import dataclasses

import pytest

from tests.tui.test_state import BOB, CAROL, STORED_NAMES, buddy, entry
from tui.client.events import ConnectionState, MessageReceived
from tui.state.chat import BURST_WINDOW, MESSAGES_KEY, ChatState, Notice
from tui.state.roster import UnreadCounts


@pytest.fixture
def chat() -> ChatState:
    return ChatState(
        [buddy(BOB, "bob"), buddy(CAROL, "carol")],
        ConnectionState.CONNECTED,
        peer_name=STORED_NAMES.get,
    )


def message(
    peer: int, local_id: int, text: str = "hello", backlog: bool = False
) -> MessageReceived:
    return MessageReceived(dataclasses.replace(entry(peer, text=text), local_id=local_id), backlog)


def test_messages_already_in_the_stored_counts_are_not_counted_again(chat: ChatState) -> None:
    # The store already holds (and counts) bob's five messages, local ids 1..5, when the
    # screen reads it; the session's events for them come afterwards.
    chat.replace_unread(UnreadCounts([(BOB, 5)], counted_through=5))
    for local_id in range(1, 6):
        chat.apply(message(BOB, local_id, backlog=True), now=0.0)
    assert chat.unread.get(BOB) == 5
    chat.apply(message(BOB, 6), now=0.0)  # a new one counts
    assert chat.unread.get(BOB) == 6
    assert UnreadCounts().bump(BOB) == 1  # no store snapshot: everything counts


def test_the_open_chat_behind_another_tab_counts_and_toasts(chat: ChatState) -> None:
    chat.open(BOB)
    shown = chat.apply(message(BOB, 1), now=0.0)
    assert shown.mark_read and shown.conversation_line is not None and not shown.notices
    assert chat.unread.get(BOB) == 0

    assert chat.show_chat(False) is None  # the Board tab comes to the front
    hidden = chat.apply(message(BOB, 2, "on the board?"), now=1.0)
    assert hidden.conversation_line is not None and not hidden.mark_read
    assert hidden.notices == [Notice("on the board?", title="bob", key=MESSAGES_KEY)]
    assert chat.unread.get(BOB) == 1 and chat.unseen_in_open_chat == 1
    assert chat.read_open_chat() is None  # a late "mark read" does not read it
    assert chat.unread.get(BOB) == 1

    assert chat.show_chat(True) == BOB  # back to the chat: read (the screen marks the store)
    assert chat.unread.get(BOB) == 0 and chat.unseen_in_open_chat == 0
    assert chat.show_chat(True) is None  # nothing new


def test_a_burst_is_one_toast_summed_up(chat: ChatState) -> None:
    first = chat.apply(message(BOB, 1, "one"), now=0.0).notices
    assert first == [Notice("one", title="bob", key=MESSAGES_KEY)]
    notices = [chat.apply(message(BOB, n), now=n * 0.01).notices for n in range(2, 150)]
    notices.append(chat.apply(message(CAROL, 150), now=2.0).notices)
    assert all(len(n) == 1 and n[0].key == MESSAGES_KEY for n in notices)
    assert notices[-1][0] == Notice(
        "150 new messages: bob (149), carol (1)", title="New messages", key=MESSAGES_KEY
    )
    # A pause longer than a toast shows: a new burst, shown with its preview again.
    later = chat.apply(message(CAROL, 151, "later"), now=2.0 + BURST_WINDOW + 1).notices
    assert later == [Notice("later", title="carol", key=MESSAGES_KEY)]
    # Backlog messages are summed up at SyncCompleted as before, not in the burst toast.
    assert not chat.apply(message(BOB, 152, backlog=True), now=9.0).notices
