"""Attention and presence as data (issue 15, items 3 and 4): chat numbers, one bell per
burst, the window title, mute and last seen persisted in the local store, the rows."""

from __future__ import annotations

import datetime
from pathlib import Path

from protocol import chat_pb2 as pb
from tui.client.events import Buddy
from tui.client.store import LocalStore
from tui.state.attention import (
    BellThrottle,
    MutedChats,
    numbered_chats,
    title_sequence,
    window_title,
)
from tui.state.presence import STAMP_EVERY, Presence, seen_text
from tui.state.rooms import RoomRow
from tui.state.roster import RosterRow, RowKind, UnreadCounts
from tui.terminal_keys import ParleyXTermParser
from tui.widgets.buddy_list import row_prompt
from tui.widgets.room_list import room_prompt


def buddy(uid: int, online: bool) -> Buddy:
    return Buddy(uid, f"user{uid}", online, pb.User.BUDDY, 2)


def test_numbered_chats_are_the_first_nine_buddies_then_rooms() -> None:
    assert numbered_chats([5, 3], [-1, -2]) == [5, 3, -1, -2]
    assert numbered_chats(range(1, 8), [-1, -2, -3, -4]) == [1, 2, 3, 4, 5, 6, 7, -1, -2]


def test_one_bell_per_burst() -> None:
    bell = BellThrottle(window=5.0)
    rings = [bell.ring(t) for t in (100.0, 101.0, 104.0, 108.0, 108.5)]
    assert rings == [True, False, False, False, False]  # each message within 5 s of the last
    assert bell.ring(114.0) is True  # a quiet gap: a new burst


def test_window_title_and_its_sequence_keep_controls_out() -> None:
    assert window_title(0) == "Parley"
    assert window_title(3) == "Parley (3)"
    assert title_sequence("Parley (3)") == "\x1b]2;Parley (3)\x07"
    hostile = title_sequence("x\x07\x1b]2;owned\x1b\\\x9c" + "y" * 500)
    assert hostile.count("\x07") == 1 and hostile.endswith("\x07")
    assert hostile.count("\x1b") == 1 and "\x9c" not in hostile
    assert len(hostile) <= len("\x1b]2;\x07") + 80


def test_unread_total_without_muted_chats() -> None:
    unread = UnreadCounts([(2, 3), (-7, 4), (5, 1)])
    assert unread.total == 8
    assert unread.total_where(lambda peer: peer != -7) == 4


def test_muted_chats_persist_per_account(tmp_path: Path) -> None:
    store = LocalStore.open(tmp_path / "history.sqlite3")
    muted = MutedChats(store)
    assert not muted(2)
    muted.set(2, True)
    muted.set(-7, True)
    muted.set(-7, False)
    store.close()
    store = LocalStore.open(tmp_path / "history.sqlite3")
    again = MutedChats(store)
    assert again(2) and not again(-7) and not again(3)
    store.close()


def test_presence_unknown_from_disconnect_to_the_next_buddy_list(tmp_path: Path) -> None:
    store = LocalStore.open(tmp_path / "h.sqlite3")
    presence = Presence(store, connected=True)
    assert presence.buddies([buddy(2, True), buddy(3, False)], 1000.0) is False
    assert presence.known
    assert presence.connection(False, 1010.0) is True  # down: unknown
    assert not presence.known
    assert presence.describe(2, True, 1010.0).startswith("presence unknown")
    # A (stale) list while down changes nothing; connected again: still unknown until the
    # new connection's list arrives.
    assert presence.buddies([buddy(2, True)], 1020.0) is False
    assert presence.connection(True, 1030.0) is False and not presence.known
    assert presence.buddies([buddy(2, False), buddy(3, False)], 1040.0) is True
    assert presence.known
    store.close()


def test_last_seen_is_stamped_and_persisted(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = LocalStore.open(path)
    presence = Presence(store, connected=True)
    assert presence.describe(2, False, 0.0) == "never seen"
    presence.buddies([buddy(2, True), buddy(3, False)], 1000.0)
    assert presence.last_seen(2) == 1000 and presence.last_seen(3) is None
    presence.buddies([buddy(2, True)], 1000.0 + STAMP_EVERY / 2)  # still online
    presence.buddies([buddy(2, False)], 1000.0 + STAMP_EVERY * 2)  # went offline: stamped
    assert presence.last_seen(2) == 1000 + STAMP_EVERY * 2
    presence.buddies([buddy(3, True)], 5000.0)
    presence.connection(False, 5005.0)  # our connection dropped while 3 was online
    store.close()

    store = LocalStore.open(path)
    again = Presence(store, connected=True)
    assert again.last_seen(2) == 1000 + STAMP_EVERY * 2
    assert again.last_seen(3) == 5005
    again.members_online([4], 6000.0)  # seen in a room's member list
    assert again.last_seen(4) == 6000
    again.buddies([buddy(2, False)], 100.0)  # never backwards
    assert again.last_seen(2) == 1000 + STAMP_EVERY * 2
    store.close()


def test_seen_text_in_local_time() -> None:
    now = datetime.datetime(2026, 11, 27, 15, 30).timestamp()

    def at(day: int, hour: int, minute: int) -> int:
        return int(datetime.datetime(2026, 11, day, hour, minute).timestamp())

    assert seen_text(None, now) == "never seen"
    assert seen_text(at(27, 14, 2), now) == "last seen 14:02"
    assert seen_text(at(26, 23, 59), now) == "last seen yesterday 23:59"
    assert seen_text(at(24, 9, 5), now) == "last seen Tue 09:05"
    assert seen_text(at(3, 9, 5), now) == "last seen 3 Nov 2026"


def test_rows_show_numbers_unknown_presence_and_muted_counts() -> None:
    row = RosterRow(RowKind.BUDDY, uid=2, name="bob", online=True, unread=3)
    assert row_prompt(row, number=1).plain == "1 ● bob (3)"
    assert row_prompt(row, number=0).plain == "  ● bob (3)"  # the tenth buddy: no number
    assert row_prompt(row, number=2, presence_known=False).plain == "2 ◌ bob (3)"
    loud = row_prompt(row, number=1)
    quiet = row_prompt(row, number=1, muted=True)
    assert loud.plain == quiet.plain and loud.spans != quiet.spans
    room = RoomRow(7, "ops", unread=2, mentions=1)
    assert room_prompt(room, number=4).plain == "4 # ops (2, @1)"
    assert room_prompt(RoomRow(8, "x", invited=True)).plain == "✉ x invites you"


def test_a_terminal_s_alt_digit_is_read_as_alt_digit() -> None:
    """ESC 3 is what xterm, tmux and screen send for Alt+3; Textual's own table reads it
    as the macOS Option character "£", which the composer would insert."""
    keys = [(k.key, k.character) for k in ParleyXTermParser().feed("\x1b3")]  # type: ignore[attr-defined]
    assert keys == [("alt+3", None)]
    typed = [(k.key, k.character) for k in ParleyXTermParser().feed("£")]  # type: ignore[attr-defined]
    assert typed == [("pound_sign", "£")]  # a typed £ stays a £
