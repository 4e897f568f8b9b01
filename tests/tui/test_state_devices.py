"""ChatState with what the user sent from another device (an ``outgoing`` MessageReceived,
PROTOCOL.md section 9): shown in the open chat as the user's own, never unread, no toast."""

from __future__ import annotations

from protocol import chat_pb2 as pb
from tui.client.events import Buddy, ConnectionState, MessageReceived
from tui.client.history import HistoryEntry, MessageState
from tui.state.chat import ChatState

BOB, CAROL = 7, 8


def copy(peer: int, text: str, local_id: int) -> HistoryEntry:
    return HistoryEntry.from_incoming(
        pb.Message(uid=peer, msg=text, id=local_id, seq=local_id, outgoing=True), local_id
    )


def test_outgoing_copies_are_own_messages() -> None:
    buddies = [
        Buddy(uid, name, True, pb.User.BUDDY, 2) for uid, name in ((BOB, "bob"), (CAROL, "carol"))
    ]
    chat = ChatState(buddies, ConnectionState.CONNECTED, peer_name=lambda _: None)
    chat.open(BOB)
    entry = copy(BOB, "sent from my script", 1)
    assert entry.outgoing and entry.state is MessageState.SENT
    update = chat.apply(MessageReceived(entry, backlog=False), now=0.0)
    assert update.conversation_line == entry and not update.notices
    elsewhere = chat.apply(MessageReceived(copy(CAROL, "to carol", 2), backlog=False), now=0.0)
    assert elsewhere.conversation_line is None and not elsewhere.notices
    assert chat.unread.get(BOB) == 0 and chat.unread.get(CAROL) == 0
    backlog = chat.apply(MessageReceived(copy(CAROL, "while away", 3), backlog=True), now=0.0)
    assert not backlog.notices and not chat.backlog  # not counted as "new messages"
    stroke = HistoryEntry.from_incoming(
        pb.Message(uid=BOB, type=pb.Message.GRAPHICS, msg="0,0,3,0", id=9, seq=4, outgoing=True), 4
    )
    drawn = chat.apply(MessageReceived(stroke, backlog=False), now=0.0)
    assert drawn.board_incoming is not None and drawn.board_incoming.text == "0,0,3,0"
    assert drawn.conversation_line is None and not drawn.notices
