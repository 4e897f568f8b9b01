"""Rooms in the TUI (PROTOCOL.md section 10) against the real relay: create a room from the
command palette, invite a user from the search dialog, the room's timeline with sender
names and membership events, an invitation answered from the room list, unread counts per
room, and leaving."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.conftest import FAST, PASSWORD, app_config, log_in, screen_text, wait_until
from tui.app import ParleyApp
from tui.client.connection import Endpoint
from tui.client.login import register_account
from tui.client.rooms import RoomInvited
from tui.client.session import ClientSession
from tui.client.trust import TrustPolicy
from tui.dialogs.confirm import ChoiceDialog
from tui.dialogs.room_member import RoomMemberDialog
from tui.dialogs.room_name import RoomNameDialog
from tui.dialogs.user_search import UserSearchDialog
from tui.screens.main import MainScreen
from tui.state.chat import Notice


async def device_peer(relay: RelayProcess, tmp_path: Path, name: str) -> ClientSession:
    """A registered, logged-in library client that is a device (rooms need v2.1)."""
    policy = TrustPolicy.pinned(relay.fingerprint or "")
    endpoint = Endpoint(relay.host, relay.port)
    await register_account(endpoint, policy, name, PASSWORD)
    session = ClientSession(
        endpoint,
        name,
        PASSWORD,
        trust=policy,
        data_dir=tmp_path / f"peer-{name}",
        options=FAST,
        device=f"tui@{name}",
    )
    await session.start()
    return session


def room_rows(screen: MainScreen) -> dict[str, tuple[bool, int]]:
    """The room list: name → (invited, unread)."""
    return {row.name: (row.invited, row.unread) for row in screen.room_list.rows}


def conversation_text(screen: MainScreen) -> str:
    return "\n".join(line.plain for line in screen.view.timeline.lines)


async def test_create_invite_talk_and_answer_an_invitation(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await device_peer(relay, tmp_path, "bob")
    bob_events = bob.events()
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await log_in(pilot, app, "alice")
            assert not screen.room_list.display  # no room yet: no room list

            # The command palette creates a room and opens it.
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Room: create")
            await wait_until(pilot, lambda: "Room: create" in screen_text(app), "the entry")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RoomNameDialog), "dialog")
            await pilot.press(*"dev  team", "enter")  # two spaces: refused in the dialog
            await wait_until(pilot, lambda: "Not a valid room name" in screen_text(app), "why")
            app.screen.query_one("#room-name", Input).value = "dev team"
            await pilot.press("enter")
            await wait_until(pilot, lambda: room_rows(screen) == {"dev team": (False, 0)}, "room")
            await wait_until(pilot, lambda: (screen.chat.active or 0) < 0, "the room open")
            room = -(screen.chat.active or 0)
            assert screen.room_list.display
            await wait_until(pilot, lambda: "Room dev team" in screen_text(app), "title drawn")

            # Invite bob from the search dialog; bob joins and writes.
            screen.action_invite_to_room()
            await wait_until(pilot, lambda: isinstance(app.screen, UserSearchDialog), "search")
            await pilot.press(*"bob", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")
            while not isinstance(await bob_events.next(20), RoomInvited):
                pass
            assert (await bob.join(room)).ok
            await bob.wait_outcome(bob.send_room_text(room, "hi all").msg_id, timeout=20)
            await wait_until(pilot, lambda: "bob: hi all" in conversation_text(screen), "bob")
            text = conversation_text(screen)
            assert "— alice invited bob" in text and "— bob joined" in text
            assert text.index("invited bob") < text.index("bob joined") < text.index("hi all")

            # The board follows the room: bob's stroke in the room, stored before alice first
            # shows the board, is on the room's board when she does (F2).
            bob.send(-room, pb.Message.GRAPHICS, text="0,0,4,0,#")
            graphics = (pb.Message.GRAPHICS,)
            store = screen.session.store
            await wait_until(pilot, lambda: store.page(-room, types=graphics), "stroke stored")
            await pilot.press("f2")
            await wait_until(
                pilot,
                lambda: screen.pane_ready("board") and screen.board_pane.peer == -room,
                "the room's board shown",
            )
            board = screen.board_pane.canvas.board
            assert board is not None and board.to_text().startswith("#####")
            await pilot.press("f2")  # back to the chat

            # alice writes from the composer: bob gets it in the room.
            screen.composer.focus()
            await pilot.press(*"welcome", "enter")
            await wait_until(
                pilot,
                lambda: "welcome" in [e.text for e in bob.store.page(-room)],
                "alice's message at bob's",
            )
            assert "alice: welcome" in conversation_text(screen)

            # The members, with presence, from the palette's "Room: members" (a toast).
            shown: list[Notice] = []
            show = screen.show_notice
            setattr(screen, "show_notice", lambda n: (shown.append(n), show(n)))  # noqa: B010
            screen.action_room_members()
            await wait_until(
                pilot, lambda: any(n.title.startswith("Members") for n in shown), "the list"
            )
            [members] = [n for n in shown if n.title.startswith("Members")]
            assert members.title == "Members of dev team"
            assert members.text == "alice (owner, online), bob (online)"

            # Renamed from the dialog; bob removed from the member picker.
            screen.action_rename_room()
            await wait_until(
                pilot, lambda: app.screen.query_one_optional("#room-name", Input), "rename"
            )
            app.screen.query_one("#room-name", Input).value = "dev crew"
            await pilot.press("enter")
            await wait_until(pilot, lambda: "dev crew" in room_rows(screen), "renamed")
            await wait_until(pilot, lambda: "Room dev crew" in screen_text(app), "its title")
            screen.action_kick_from_room()
            await wait_until(pilot, lambda: isinstance(app.screen, RoomMemberDialog), "picker")
            await pilot.press("enter")  # bob, the only other member
            await wait_until(pilot, lambda: bob.rooms.get(room) is None, "bob removed")
            assert "— alice removed bob" in conversation_text(screen)

            # bob invites alice to a second room: an invitation row, answered with "a".
            ops = await bob.create_room("ops")
            assert ops.ok and ops.room is not None and screen.session.uid is not None
            assert (await bob.invite(ops.room.id, screen.session.uid)).ok
            await wait_until(pilot, lambda: room_rows(screen).get("ops") == (True, 0), "invite")
            screen.room_list.focus()
            screen.room_list.highlighted = [r.name for r in screen.room_list.rows].index("ops")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "question")
            await pilot.press("a")
            await wait_until(pilot, lambda: room_rows(screen).get("ops") == (False, 0), "joined")
            await wait_until(pilot, lambda: screen.chat.active == -ops.room.id, "ops open")

            # A message in the room not open counts as unread there.
            screen.open_conversation(-room)
            await bob.wait_outcome(bob.send_room_text(ops.room.id, "ping").msg_id, timeout=20)
            await wait_until(pilot, lambda: room_rows(screen).get("ops") == (False, 1), "unread")

            # Leaving closes the room and takes it off the list.
            screen.action_leave_room()
            await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "confirm")
            await pilot.press("y")
            await wait_until(pilot, lambda: "dev crew" not in room_rows(screen), "left")
            assert screen.chat.active is None
    finally:
        await bob.close()
