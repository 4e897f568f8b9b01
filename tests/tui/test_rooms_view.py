"""The room list rows and a room's timeline lines, without a relay: invitations first,
unread counts per room, sender names and membership events, hostile names kept literal."""

from __future__ import annotations

from protocol import chat_pb2 as pb
from tui.client.events import ConnectionState, MessageReceived
from tui.client.history import HistoryEntry, MessageState
from tui.client.rooms import RoomInfo, RoomMember, describe_event
from tui.state.chat import ChatState
from tui.state.rooms import room_rows
from tui.state.roster import UnreadCounts
from tui.timeline import Timeline
from tui.widgets.room_list import room_prompt

Role = pb.Member
HOSTILE = "[b]x[/b] [@click=app.quit]"


def room(room_id: int, name: str, role: int = Role.MEMBER) -> RoomInfo:
    members = (RoomMember(1, "alice", True, Role.OWNER), RoomMember(2, "bob", False, Role.MEMBER))
    return RoomInfo(room_id, name, members, role)


def test_rows_put_invitations_first_and_count_unread_per_room() -> None:
    rooms = [room(1, "zeta"), room(2, "Alpha"), room(3, "ops", Role.INVITED)]
    rows = room_rows(rooms, UnreadCounts([(-1, 4), (-3, 2)]))
    assert [(r.name, r.invited, r.unread) for r in rows] == [
        ("ops", True, 0),
        ("Alpha", False, 0),
        ("zeta", False, 4),
    ]
    assert rows[2].peer == -1 and rows[2].members == 2 and rows[2].online == 1


def test_prompts_show_hostile_room_names_literally() -> None:
    [row] = room_rows([room(1, HOSTILE)], UnreadCounts([(-1, 3)]))
    assert room_prompt(row).plain == f"# {HOSTILE} (3)"
    [invite] = room_rows([room(2, HOSTILE, Role.INVITED)], UnreadCounts())
    assert room_prompt(invite).plain == f"✉ {HOSTILE} invites you"


def entry(local_id: int, text: str, sender: int, kind: int = pb.Message.MESSAGE) -> HistoryEntry:
    return HistoryEntry(
        local_id, -7, False, 0, None, kind, text, b"", None, 1_700_000_000,
        MessageState.RECEIVED, sender=sender,
    )  # fmt: skip


def test_a_room_timeline_names_each_sender_and_tells_events() -> None:
    names = {1: "alice", 2: "bob", 3: HOSTILE}
    timeline = Timeline("me", "the room", sender_name=names.__getitem__)
    timeline.prepend(
        [
            entry(1, "invite 2", 1, pb.Message.ROOM_EVENT),
            entry(2, "join", 2, pb.Message.ROOM_EVENT),
            entry(3, "hi all", 2),
            entry(4, "hello", 3),
            entry(5, "rename new name", 1, pb.Message.ROOM_EVENT),
        ]
    )
    lines = [line.plain for line in timeline.lines if line.local_id is not None]
    assert lines[0].endswith("— alice invited bob")
    assert lines[1].endswith("— bob joined")
    assert lines[2].endswith("bob: hi all")
    assert lines[3].endswith(f"{HOSTILE}: hello")
    assert lines[4].endswith("— alice renamed the room to new name")


def test_describe_event_covers_every_event() -> None:
    def name(uid: int) -> str:
        return f"u{uid}"

    assert describe_event("leave", "a", name) == "a left"
    assert describe_event("decline", "a", name) == "a declined the invitation"
    assert describe_event("kick 5", "a", name) == "a removed u5"
    assert describe_event("kick five", "a", name) == "a: kick five"  # not a uid: as it is


def test_typing_in_a_room_names_who_types() -> None:
    names = {2: "bob", 3: "carol", -7: "dev team"}
    chat = ChatState([], ConnectionState.CONNECTED, peer_name=names.get)
    chat.open(-7)
    typing = HistoryEntry(
        None, -7, False, 0, None, pb.Message.INPUTING, "", b"", None, 0,
        MessageState.RECEIVED, sender=2,
    )  # fmt: skip
    chat.apply(MessageReceived(typing, backlog=False), 10.0)
    assert chat.typing_in_open_chat(10.5) == "bob"
    # carol's message does not end bob's marker; bob's does.
    chat.apply(MessageReceived(entry(1, "hi", 3), backlog=False), 10.6)
    assert chat.typing_in_open_chat(10.7) == "bob"
    chat.apply(MessageReceived(entry(2, "done", 2), backlog=False), 10.8)
    assert chat.typing_in_open_chat(10.9) is None


def test_mentions_need_the_whole_name_after_an_at_sign() -> None:
    from tui.state.mentions import MentionCounts, mentions

    assert mentions("hey @alice", "alice") and mentions("@Alice, look", "alice")
    assert mentions("(@alice)", "alice") and mentions("@zoë.Ж-9 hi", "zoë.Ж-9")
    assert not mentions("@alicea", "alice") and not mentions("mail@alice", "alice")
    assert not mentions("alice", "alice") and not mentions("@@alice", "alice")
    assert not mentions("hey @a.b", "a-b")  # the name is literal, not a pattern
    counts = MentionCounts()
    counts.add(-7)
    counts.add(-7)
    assert counts.get(-7) == 2 and counts.get(-8) == 0
    assert counts.clear(-7) and not counts.clear(-7) and counts.get(-7) == 0


def test_rows_show_mentions_apart_and_who_types() -> None:
    rooms = [room(1, "dev"), room(2, "ops", Role.INVITED)]
    typing = {-1: HOSTILE, -2: "bob"}
    rows = room_rows(rooms, UnreadCounts([(-1, 3)]), {-1: 1, -2: 4}.get, typing.get)  # type: ignore[arg-type]
    assert room_prompt(rows[1]).plain == f"# dev (3, @1) {HOSTILE} typing…"
    assert room_prompt(rows[0]).plain == "✉ ops invites you"  # an invitation: no counts
    [quiet] = room_rows([room(1, "dev")], UnreadCounts([(-1, 2)]))
    assert room_prompt(quiet).plain == "# dev (2)"


def test_the_member_pane_lists_owner_members_invitees_literally() -> None:
    from tui.widgets.member_pane import member_lines

    members = (
        RoomMember(3, "carol", False, Role.INVITED),
        RoomMember(2, HOSTILE, True, Role.MEMBER),
        RoomMember(1, "zoë.Ж-9", True, Role.OWNER),
        RoomMember(4, "Bob", False, Role.MEMBER),
    )
    lines = member_lines(RoomInfo(1, "dev", members, Role.MEMBER)).plain.split("\n")
    assert lines == ["● zoë.Ж-9 (owner)", f"● {HOSTILE}", "○ Bob", "○ carol (invited)"]


def test_a_room_timeline_highlights_mentions_of_this_user_only() -> None:
    timeline = Timeline("me", "the room", sender_name={2: "bob"}.__getitem__)
    timeline.prepend([entry(1, "hi @me", 2), entry(2, "hi @meg", 2), entry(3, "hi me", 2)])
    styles = [
        {key for _, key in line.spans} for line in timeline.lines if line.local_id is not None
    ]
    assert ["mention" in s for s in styles] == [True, False, False]
    buddy = Timeline("me", "bob")  # a 1:1 chat: no mention style
    buddy.prepend([entry(1, "hi @me", 2)])
    assert all("mention" not in {k for _, k in line.spans} for line in buddy.lines)
