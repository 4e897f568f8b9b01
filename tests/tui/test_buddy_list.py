"""``BuddyList`` alone (issue 15): the cursor stays on the same person when the rows change
(a request that became a buddy included) and Enter then opens that row; a long name is cut
to one line with the unread count still visible."""

from __future__ import annotations

from textual.app import App, ComposeResult

from protocol import chat_pb2 as pb
from tests.tui.conftest import screen_text
from tui.client.events import Buddy
from tui.state.roster import RosterRow, RowKind, UnreadCounts, build_roster
from tui.widgets.buddy_list import BuddyList, fit_name, row_prompt

LONG = "abcdefghijklmnopqrstuvwxyz012345"  # 32 characters


def buddy(uid: int, name: str, relation: int = pb.User.BUDDY, online: bool = True) -> Buddy:
    return Buddy(uid, name, online, relation, 2)


class ListApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.actions: list[tuple[str, int]] = []

    def compose(self) -> ComposeResult:
        yield BuddyList(id="buddies")

    def on_buddy_list_row_action(self, message: BuddyList.RowAction) -> None:
        self.actions.append((message.action, message.row.uid))


def roster(*buddies: Buddy, unread: dict[int, int] | None = None) -> list[RosterRow]:
    return build_roster(buddies, UnreadCounts((unread or {}).items()), frozenset())


async def test_cursor_follows_the_person_and_enter_opens_the_chat() -> None:
    app = ListApp()
    async with app.run_test(size=(40, 12)) as pilot:
        widget = app.query_one(BuddyList)
        widget.focus()
        widget.set_rows(roster(buddy(2, "bob"), buddy(3, "carol", pb.User.REQUEST_SENT)))
        widget.highlight_uid(3)
        await pilot.pause()
        # Carol accepts (her row moves from "Waiting" to "Buddies"), dave asks: the cursor
        # stays on carol, and Enter opens her chat.
        widget.set_rows(
            roster(buddy(2, "bob"), buddy(3, "carol"), buddy(4, "dave", pb.User.REQUEST_RECEIVED))
        )
        await pilot.pause()
        row = widget.highlighted_row
        assert row is not None and (row.uid, row.kind) == (3, RowKind.BUDDY)
        await pilot.press("enter")
        await pilot.pause()
        assert app.actions == [("open", 3)]

        # The highlighted person goes away: the cursor lands on another person, not nowhere.
        widget.set_rows(roster(buddy(2, "bob"), buddy(4, "dave", pb.User.REQUEST_RECEIVED)))
        await pilot.pause()
        row = widget.highlighted_row
        assert row is not None and row.kind is not RowKind.HEADER
        await pilot.press("enter")
        await pilot.pause()
        assert len(app.actions) == 2 and app.actions[1][1] == row.uid


async def test_a_long_name_stays_on_one_line_with_its_unread_count() -> None:
    app = ListApp()
    async with app.run_test(size=(30, 8)) as pilot:
        widget = app.query_one(BuddyList)
        widget.set_rows(roster(buddy(2, LONG), buddy(3, "bob"), unread={2: 7}))
        await pilot.pause()
        lines = [line.strip(" ▊▎") for line in screen_text(app).splitlines()]
        lines = [line for line in lines if line and any(ch.isalnum() for ch in line)]
        assert lines[0] == "Buddies"
        assert "(7)" in lines[1] and "…" in lines[1] and LONG[:10] in lines[1]
        assert "bob" in lines[2]  # the next row, not the rest of the long name
        widget.highlight_uid(2)
        await pilot.pause()
        assert widget.tooltip == LONG  # the full name
        # Wider: the whole name fits again.
        await pilot.resize_terminal(60, 8)
        await pilot.pause()
        assert f"{LONG} (7)" in screen_text(app)


def test_fit_name_and_prompt_widths() -> None:
    assert fit_name("alice", 5) == "alice"
    assert fit_name("alice", 4) == "ali…"
    assert fit_name("alice", 1) == "…"
    row = RosterRow(RowKind.INCOMING, uid=5, name=LONG)
    assert len(row_prompt(row, width=20).plain) <= 20
    row = RosterRow(RowKind.BUDDY, uid=5, name=LONG, unread=12, typing=True)
    fitted = row_prompt(row, width=28).plain
    assert len(fitted) == 28 and fitted.endswith(" (12) typing…")
