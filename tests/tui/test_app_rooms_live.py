"""Rooms in the TUI, the live parts (issue 14), against the real relay at 80x24: the member
pane (F4) with presence asked on opening and refreshed while open, typing hints on the
room's row and in the room, ``@name`` mentions (counted apart, a toast, highlighted), an
invitation answered from the room list with hostile-looking room and member names shown
literally, and being removed from the open room (it stays readable, off the list)."""

from __future__ import annotations

from pathlib import Path

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, wait_until
from tests.tui.test_app_rooms import conversation_text, device_peer
from tui.app import ParleyApp
from tui.screens.main import MainScreen
from tui.state.chat import Notice
from tui.widgets.member_pane import MemberPane
from tui.widgets.room_list import room_prompt

ROOM = "Ω.дев-ops"  # unicode, a dot, a dash: room names allow no markup-like characters
OWNER = "zoë.Ж-9"  # and a member name of the same kind


def row_text(screen: MainScreen, name: str) -> str:
    rows = [r for r in screen.room_list.rows if r.name == name]
    return room_prompt(rows[0]).plain if rows else ""


def members_text(screen: MainScreen) -> str:
    pane = screen.query_one_optional("#members", MemberPane)
    return str(pane.render()) if pane is not None and pane.display else ""


async def test_members_typing_mentions_invitation_and_removal(
    relay: RelayProcess, tmp_path: Path
) -> None:
    owner = await device_peer(relay, tmp_path, OWNER)
    carol = await device_peer(relay, tmp_path, "carol")
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await log_in(pilot, app, "alice")
            shown: list[Notice] = []
            show = screen.show_notice
            setattr(screen, "show_notice", lambda n: (shown.append(n), show(n)))  # noqa: B010
            alice = screen.session.uid
            assert alice is not None and carol.uid is not None

            # An invitation with a hostile-looking room name, answered with "a" in the list.
            made = await owner.create_room(ROOM)
            assert made.ok and made.room is not None
            room = made.room.id
            assert (await owner.invite(room, alice)).ok
            await wait_until(
                pilot, lambda: row_text(screen, ROOM) == f"✉ {ROOM} invites you", "row"
            )
            # The screen repaints after the model changes: wait for the drawing too.
            await wait_until(pilot, lambda: f"✉ {ROOM}" in screen_text(app), "row drawn")
            assert any(
                n.text == f"You are invited to the room {ROOM}. Select it: a joins, d declines."
                for n in shown
            )
            screen.room_list.focus()
            screen.room_list.highlighted = 0
            await pilot.press("a")
            await wait_until(pilot, lambda: screen.chat.active == -room, "the room open")
            await wait_until(pilot, lambda: f"Room {ROOM}" in screen_text(app), "title drawn")

            # F4: the members with presence; carol joining is pushed into the pane.
            screen.members_refresh = 0.3  # the periodic refresh (10 s), quick for the test
            await pilot.press("f4")
            await wait_until(pilot, lambda: f"● {OWNER} (owner)" in members_text(screen), "pane")
            assert "● alice" in members_text(screen)
            await wait_until(  # literally, at 80x24
                pilot, lambda: f"● {OWNER} (owner)" in screen_text(app), "pane drawn"
            )
            assert (await owner.invite(room, carol.uid)).ok
            assert (await carol.join(room)).ok
            await wait_until(pilot, lambda: "carol" in members_text(screen), "carol in the pane")
            # carol goes offline: not pushed per room, the periodic MEMBERS shows it.
            await wait_until(pilot, lambda: "● carol" in members_text(screen), "carol online")
            await carol.close()
            await wait_until(pilot, lambda: "○ carol" in members_text(screen), "carol offline")
            await pilot.press("f4")
            await wait_until(pilot, lambda: not members_text(screen), "the pane hidden")

            # Typing in the open room: under the timeline; in another room: on its row.
            owner.send_typing(-room)
            await wait_until(
                pilot, lambda: f"{OWNER} is typing…" in screen_text(app), "typing in the room"
            )
            screen.close_conversation()
            owner.send_typing(-room)
            await wait_until(
                pilot, lambda: f"{OWNER} typing…" in row_text(screen, ROOM), "typing on the row"
            )

            # A mention in a room not looked at: counted apart from unread, and a toast.
            for text in ("plain words", "hey @Alice, look", "mail@alice is no mention"):
                await owner.wait_outcome(owner.send_room_text(room, text).msg_id, timeout=20)
            await wait_until(
                pilot, lambda: row_text(screen, ROOM).startswith(f"# {ROOM} (3, @1)"), "counts"
            )
            mentions = [n for n in shown if n.title == "Mention"]
            assert [n.text for n in mentions] == [f"{OWNER} mentioned you in {ROOM}."]
            # Opened: the mention is drawn highlighted, the others are not; counts clear.
            screen.open_conversation(-room)
            await wait_until(pilot, lambda: "hey @Alice" in conversation_text(screen), "shown")
            styles = {
                "".join(t for t, _ in line.spans): {k for _, k in line.spans}
                for line in screen.view.timeline.lines
            }
            [mention] = [s for line, s in styles.items() if "hey @Alice" in line]
            [other] = [s for line, s in styles.items() if "mail@alice" in line]
            assert "mention" in mention and "mention" not in other
            await wait_until(pilot, lambda: row_text(screen, ROOM) == f"# {ROOM}", "cleared")

            # Removed by the owner: the room leaves the list, stays open and readable.
            assert (await owner.kick(room, alice)).ok
            await wait_until(pilot, lambda: not screen.room_list.rows, "off the list")
            assert screen.chat.active == -room
            assert "you are no longer a member" in str(screen.view.border_title)
            assert screen.composer.disabled
            assert "no longer in this room" in str(screen.composer.placeholder)
            assert "hey @Alice, look" in conversation_text(screen)
            assert any(n.text == f"You are no longer in the room {ROOM}." for n in shown)
            await wait_until(pilot, lambda: "no longer a member" in screen_text(app), "drawn")

            # Another invitation, declined with "d" on its row.
            ops = await owner.create_room("ops")
            assert ops.ok and ops.room is not None
            assert (await owner.invite(ops.room.id, alice)).ok
            await wait_until(pilot, lambda: row_text(screen, "ops") == "✉ ops invites you", "ops")
            screen.room_list.focus()
            screen.room_list.highlighted = 0
            await pilot.press("d")
            await wait_until(pilot, lambda: not screen.room_list.rows, "declined")
            await wait_until(
                pilot, lambda: any(n.text == "You declined ops." for n in shown), "toast"
            )
            assert owner.rooms.get(ops.room.id) is not None
            await wait_until(
                pilot,
                lambda: alice not in {m.uid for m in owner.rooms.get(ops.room.id).members},  # type: ignore[union-attr]
                "the invitation gone at the owner's",
            )
    finally:
        await owner.close()
        await carol.close()
