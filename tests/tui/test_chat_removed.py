"""A buddy ending the relation, without Textual: who ended it decides what the user sees
(``ChatState``); the TUI against a real relay is in ``test_app_removed_by_buddy``."""

from __future__ import annotations

from protocol import chat_pb2 as pb
from tui.client.events import Buddy, BuddyListChanged, ConnectionState
from tui.client.history import Conversation
from tui.state.chat import ChatState

BOB, CAROL, DAVE = 2, 3, 4


def buddy(uid: int, name: str, relation: int = pb.User.BUDDY) -> Buddy:
    return Buddy(uid, name, True, relation, protocol_version=2)


def make_chat() -> ChatState:
    return ChatState(
        [buddy(BOB, "bob"), buddy(CAROL, "carol")], ConnectionState.CONNECTED, peer_name=str
    )


def test_a_buddy_removing_you_is_told_and_their_open_chat_stays() -> None:
    chat = make_chat()
    chat.open(BOB)
    update = chat.apply(BuddyListChanged((buddy(CAROL, "carol"),)), now=0.0)
    assert not update.close_conversation and chat.active == BOB
    assert [n.text for n in update.notices] == [
        "bob removed you from their buddies. Your chat history stays: Ctrl+O opens it."
    ]
    # A later list (a presence change) neither closes it nor repeats the notice.
    again = chat.apply(BuddyListChanged((buddy(CAROL, "carol"),)), now=1.0)
    assert not again.close_conversation and again.notices == []


def test_ending_it_yourself_is_no_news_and_closes_the_chat() -> None:
    chat = make_chat()
    chat.open(BOB)
    chat.removing_buddy(BOB)
    # A presence change before the removal lands keeps the marker.
    chat.apply(BuddyListChanged((buddy(BOB, "bob"), buddy(CAROL, "carol"))), now=0.0)
    update = chat.apply(BuddyListChanged((buddy(CAROL, "carol"),)), now=0.1)
    assert update.close_conversation and update.notices == []
    assert chat.removing == set()
    # Blocking (the relation becomes BLOCKED) is the user's doing too.
    chat.open(CAROL)
    blocked = chat.apply(BuddyListChanged((buddy(CAROL, "carol", pb.User.BLOCKED),)), now=0.2)
    assert blocked.close_conversation and blocked.notices == []


def test_past_chats_are_the_conversations_with_no_buddy() -> None:
    chat = make_chat()
    chat.apply(BuddyListChanged((buddy(CAROL, "carol"),)), now=0.0)  # bob removed us
    stored = [
        Conversation(BOB, "bob", 9, 0),
        Conversation(-5, None, 8, 0),  # a room: Ctrl+O lists rooms elsewhere
        Conversation(CAROL, "carol", 7, 0),
        Conversation(DAVE, "dave\x1b[31m", 6, 0),
    ]
    assert chat.past_chats(stored) == [(BOB, "bob"), (DAVE, "dave[31m")]
