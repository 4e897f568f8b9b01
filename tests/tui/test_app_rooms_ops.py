"""Room operations in the TUI (issue 14) at 80x24, against the real relay, with library
clients (v2.1 devices) as the other members: inviting and renaming from the command
palette (the rename seen by another member, a hostile-looking name shown literally),
removing a member from the palette (the member stops receiving; the member pane follows),
file offers in a room through the Files pane (each member accepts a copy of their own; an
offer from a member accepted in the TUI), and the board of a room (strokes from everyone).

Creating a room from the palette and the room list's invitations are covered by
``test_app_rooms.py``; the member pane, typing and mentions by ``test_app_rooms_live.py``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from protocol import chat_pb2 as pb
from protocol.validation import Segment, format_graphics
from tests.harness import RelayProcess
from tests.tui.client.sessions import TransferPeer
from tests.tui.conftest import PASSWORD, app_config, log_in, screen_text, wait_until
from tests.tui.pilot import checked_save_dialog, files_of
from tests.tui.test_app_board import reference, shown_cells
from tests.tui.test_app_rooms import conversation_text, device_peer, room_rows
from tests.tui.test_app_rooms_live import members_text
from tui.app import ParleyApp
from tui.client.events import Event, EventStream, MessageReceived
from tui.client.rooms import RoomChanged, RoomInvited, RoomRemoved
from tui.client.session import ClientSession
from tui.client.transfer.events import TransferCompleted, TransferOffered
from tui.client.transfer.store import TransferState
from tui.dialogs.pick_file import PickFileDialog
from tui.dialogs.room_member import RoomMemberDialog
from tui.dialogs.room_name import RoomNameDialog
from tui.dialogs.user_search import UserSearchDialog
from tui.screens.main import MainScreen
from tui.widgets.board_canvas import BoardCanvas

SIZE = (80, 24)
WAIT = 30.0
# Room names allow letters of any script, digits, "_ - ." and single spaces: this one mixes
# scripts, wide characters and words that read like the timeline's own sentences.
HOSTILE = "Ω.дев-ops 漢字 removed bob"
E = TypeVar("E")


async def file_peer(relay: RelayProcess, tmp_path: Path, name: str) -> TransferPeer:
    """A registered, started v2.1 device with a transfer manager (created before the session
    starts, so that offers in the backlog reach it) and a queue of its transfer events."""
    peer = TransferPeer(relay, tmp_path, name, password=PASSWORD, device=f"tui@{name}")
    await peer.session.register()
    await peer.session.start()
    return peer


class Received:
    """Every room message a library client receives: (room, sender, type, text)."""

    def __init__(self, session: ClientSession) -> None:
        self.items: list[tuple[int, int, int, str]] = []
        session.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageReceived) and event.entry.room:
            entry = event.entry
            self.items.append((-entry.peer, entry.sender, entry.type, entry.text))

    def texts(self, room: int, sender: int, kind: int) -> list[str]:
        return [t for r, s, k, t in self.items if (r, s, k) == (room, sender, kind)]


async def palette(pilot: Pilot[object], app: ParleyApp, entry: str) -> None:
    """Ctrl+P, type ``entry``, wait for it to be listed, Enter."""
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*entry)
    await wait_until(pilot, lambda: entry in screen_text(app), f"the palette entry {entry}")
    await pilot.press("enter")


async def until_event(check: Callable[[], bool], stream: EventStream) -> None:
    """Wait for ``check`` to hold, reading ``stream`` (a library client's events) meanwhile;
    the stream is closed then."""
    try:
        while not check():
            await stream.next(WAIT)
    finally:
        stream.close()


async def room_with(
    pilot: Pilot[object], screen: MainScreen, name: str, *members: ClientSession
) -> int:
    """alice (the TUI) creates room ``name`` (through the session: creating from the palette
    is covered elsewhere), invites ``members``, they join; the room is open in the TUI."""
    made = await screen.session.create_room(name)
    assert made.ok and made.room is not None
    room = made.room.id
    for member in members:
        assert member.uid is not None
        stream = member.events()
        assert (await screen.session.invite(room, member.uid)).ok
        await until_event(lambda m=member: m.rooms.get(room) is not None, stream)  # type: ignore[misc]
        assert (await member.join(room)).ok
    await wait_until(pilot, lambda: name in room_rows(screen), "the room listed")
    screen.open_conversation(-room)
    joined = {m.uid for m in members}
    await wait_until(
        pilot,
        lambda: joined <= {m.uid for m in screen.session.rooms.rooms[room].joined},
        "everyone joined, as alice sees it",
    )
    return room


def plain(text: object) -> str:
    """A border title (kept as markup) or a placeholder (``str`` or ``Content``) as plain
    text."""
    return (text if isinstance(text, Content) else Content.from_markup(str(text))).plain


def entry_lines(screen: MainScreen, needle: str) -> list[str]:
    """The lines drawn for the timeline entry whose text (its wrapped lines joined) holds
    ``needle``, stripped; [] if there is none."""
    by_entry: dict[int, list[str]] = {}
    for line in screen.view.timeline.lines:
        if line.local_id is not None:
            by_entry.setdefault(line.local_id, []).append(line.plain.strip())
    for lines in by_entry.values():
        if needle in " ".join(lines):
            return lines
    return []


def sha256_of(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).digest()


async def test_invite_and_rename_from_the_palette(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await device_peer(relay, tmp_path, "bob")
    bob_events = bob.events()
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            made = await screen.session.create_room("dev team")
            assert made.ok and made.room is not None
            room = made.room.id
            await wait_until(pilot, lambda: "dev team" in room_rows(screen), "the room listed")
            screen.open_conversation(-room)
            await wait_until(pilot, lambda: "Room dev team" in screen_text(app), "title drawn")

            # "Room: invite" from the palette: the search dialog, typed, Enter.
            await palette(pilot, app, "Room: invite")
            await wait_until(pilot, lambda: isinstance(app.screen, UserSearchDialog), "search")
            await pilot.press(*"bob", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")
            while not isinstance(await bob_events.next(WAIT), RoomInvited):
                pass
            assert (await bob.join(room)).ok
            await wait_until(pilot, lambda: "— bob joined" in conversation_text(screen), "joined")
            assert "— alice invited bob" in conversation_text(screen)

            # "Room: rename" from the palette: the dialog holds the current name; a
            # hostile-looking new one is typed key by key.
            await palette(pilot, app, "Room: rename")
            await wait_until(pilot, lambda: isinstance(app.screen, RoomNameDialog), "dialog")
            field = app.screen.query_one("#room-name", Input)
            assert field.value == "dev team"
            field.value = ""
            await pilot.press(*HOSTILE)
            await wait_until(pilot, lambda: field.value == HOSTILE, "typed")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")

            # The list row, the open room's title and the timeline line follow.
            await wait_until(pilot, lambda: list(room_rows(screen)) == [HOSTILE], "row renamed")
            line = f"— alice renamed the room to {HOSTILE}"
            await wait_until(pilot, lambda: entry_lines(screen, line), "timeline line")
            assert plain(screen.view.border_title) == f"Room {HOSTILE}"
            # The composer and the room's board name the room by its new name too.
            assert plain(screen.composer.placeholder).startswith(f"Message {HOSTILE} — ")
            await pilot.press("f2")  # the room's board, built now, is titled by the new name
            await wait_until(
                pilot,
                lambda: screen.pane_ready("board") and screen.board_pane.peer_name == HOSTILE,
                "the board named",
            )
            await pilot.press("f2")  # back to the chat
            # Drawn literally (the title, the timeline line, the composer, the list's row).
            await wait_until(pilot, lambda: f"Room {HOSTILE}" in screen_text(app), "title drawn")
            await wait_until(
                pilot,
                lambda: all(part in screen_text(app) for part in entry_lines(screen, line)),
                "line drawn (wrapped at 80x24)",
            )
            await wait_until(pilot, lambda: f"Message {HOSTILE}" in screen_text(app), "composer")
            await wait_until(pilot, lambda: f"# {HOSTILE[:12]}" in screen_text(app), "row drawn")

            # The member pane (F4) names the room by its new name.
            await pilot.press("f4")
            await wait_until(
                pilot,
                lambda: (
                    (pane := screen.member_pane) is not None
                    and plain(pane.border_title) == f"Members of {HOSTILE}"
                ),
                "the member pane's title",
            )
            await wait_until(pilot, lambda: "Members of Ω.дев" in screen_text(app), "drawn")

            # bob, another member, sees the rename: the event and the timeline entry.
            while True:
                event = await bob_events.next(WAIT)
                if isinstance(event, RoomChanged) and event.room.name == HOSTILE:
                    break
            await wait_until(
                pilot,
                lambda: (
                    f"rename {HOSTILE}"
                    in [e.text for e in bob.store.page(-room, types={pb.Message.ROOM_EVENT})]
                ),
                "the rename in bob's room timeline",
            )
    finally:
        await bob.close()


async def test_remove_a_member_from_the_palette(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await device_peer(relay, tmp_path, "bob")
    carol = await device_peer(relay, tmp_path, "carol")
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            room = await room_with(pilot, screen, "dev team", bob, carol)
            await pilot.press("f4")
            await wait_until(pilot, lambda: "carol" in members_text(screen), "carol in the pane")
            await wait_until(pilot, lambda: "● carol" in screen_text(app), "pane drawn")
            carol_events = carol.events()

            # "Room: remove a member": the picker lists the others; carol is chosen.
            await palette(pilot, app, "Room: remove a member")
            await wait_until(pilot, lambda: isinstance(app.screen, RoomMemberDialog), "picker")
            dialog = app.screen
            assert isinstance(dialog, RoomMemberDialog)
            names = [m.username for m in dialog.members]
            assert sorted(names) == ["bob", "carol"]
            await wait_until(pilot, lambda: "carol" in screen_text(app), "picker drawn")
            await pilot.press(*["down"] * names.index("carol"), "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "picker closed")

            # carol's session gets the kick; alice's timeline and member pane follow.
            while True:
                event = await carol_events.next(WAIT)
                if isinstance(event, RoomRemoved) and event.room_id == room:
                    break
            assert not event.by_me and carol.rooms.get(room) is None
            await wait_until(
                pilot, lambda: "— alice removed carol" in conversation_text(screen), "line"
            )
            await wait_until(pilot, lambda: "carol" not in members_text(screen), "pane")
            assert "bob" in members_text(screen)
            await wait_until(pilot, lambda: "● carol" not in screen_text(app), "pane redrawn")
            assert "● bob" in screen_text(app)

            # carol no longer receives the room: alice writes, bob gets it; then a request
            # of carol's is answered after anything the relay wrote to her before it.
            screen.composer.focus()
            await pilot.press(*"after the kick", "enter")
            await wait_until(
                pilot,
                lambda: "after the kick" in [e.text for e in bob.store.page(-room)],
                "bob still receives",
            )
            assert (await carol.list_rooms()).ok
            assert "after the kick" not in [e.text for e in carol.store.page(-room)]
            assert carol.rooms.get(room) is None
    finally:
        await bob.close()
        await carol.close()


async def test_file_offered_in_a_room_from_the_files_pane(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await file_peer(relay, tmp_path, "bob")
    carol = await file_peer(relay, tmp_path, "carol")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    digest = random_file(outbox / "notes.bin", 300_000)
    downloads = tmp_path / "alice-downloads"
    downloads.mkdir()
    app = ParleyApp(app_config(tmp_path, relay, downloads_dir=downloads))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            room = await room_with(pilot, screen, "dev team", bob.session, carol.session)
            files = await files_of(pilot, screen)
            files.browse_dir = outbox

            # F3, then s: the picker (for the room), the file, Ctrl+S sends.
            await pilot.press("f3")
            await wait_until(pilot, lambda: app.focused is files.list_view, "files focused")
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, PickFileDialog), "picker")
            dialog = app.screen
            assert isinstance(dialog, PickFileDialog)
            await wait_until(pilot, lambda: "dev team" in screen_text(app), "picker for the room")
            dialog.path_input.value = "notes.bin"
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(dialog.picked) == 1, "picked")
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: app.screen is screen, "picker closed")

            # Each member accepts a copy of their own and gets the same bytes.
            for peer in (bob, carol):
                offered = (await peer.next(TransferOffered)).transfer
                assert offered.name == "notes.bin" and offered.peer == screen.session.uid
                await peer.manager.accept(offered.id)
                done = await peer.next(TransferCompleted)
                assert sha256_of(done.path) == digest

            # The Files pane: the room offer (open for others) and one sent copy per member.
            def rows() -> list[tuple[int, str]]:
                return sorted((t.peer, t.state.name) for t in files.book.ordered())

            want = sorted(
                [
                    (-room, TransferState.OFFERED.name),
                    (bob.session.uid or 0, TransferState.COMPLETED.name),
                    (carol.session.uid or 0, TransferState.COMPLETED.name),
                ]
            )
            await wait_until(pilot, lambda: rows() == want, "three rows", timeout=WAIT)
            await wait_until(
                pilot, lambda: screen_text(app).count("✓ sent") == 2, "both copies drawn"
            )
            text = screen_text(app)
            assert "notes.bin to dev team" in text, text
            assert "open: each member who accepts gets a copy" in text, text
            # The offer is in the room's timeline too.
            await pilot.press("f3")
            await wait_until(
                pilot, lambda: "alice offers notes.bin" in screen_text(app), "timeline line"
            )
    finally:
        await bob.close()
        await carol.close()


async def test_file_offered_by_a_member_accepted_in_the_tui(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await file_peer(relay, tmp_path, "bob")
    carol = await file_peer(relay, tmp_path, "carol")
    source = tmp_path / "report.bin"
    digest = random_file(source, 200_000)
    downloads = tmp_path / "alice-downloads"
    downloads.mkdir()
    app = ParleyApp(app_config(tmp_path, relay, downloads_dir=downloads))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            room = await room_with(pilot, screen, "dev team", bob.session, carol.session)
            files = await files_of(pilot, screen)
            offer = await bob.manager.offer(-room, source)
            assert offer.peer == -room

            def rows() -> list[tuple[int | None, str, str]]:
                return [(t.peer, t.name, t.state.name) for t in files.book.ordered()]

            # The offer in the room's timeline (with its sender) and in the Files pane.
            await wait_until(
                pilot, lambda: "bob offers report.bin" in conversation_text(screen), "line"
            )
            await wait_until(pilot, lambda: "bob offers report.bin" in screen_text(app), "drawn")
            bob_row = (bob.session.uid, "report.bin", "OFFERED")
            await wait_until(pilot, lambda: rows() == [bob_row], "the offer row")
            # carol offers a file too: the newest offer gets the Files pane's cursor.
            (tmp_path / "other.bin").write_bytes(b"carol's")
            await carol.manager.offer(-room, tmp_path / "other.bin")
            carol_row = (carol.session.uid, "other.bin", "OFFERED")
            await wait_until(pilot, lambda: rows() == [bob_row, carol_row], "two offer rows")
            await wait_until(
                pilot, lambda: "carol offers other.bin" in screen_text(app), "carol's line"
            )
            assert files.selected is not None and files.selected.name == "other.bin"

            # A click on bob's line in the room shows his offer in the Files pane.
            [line] = [
                i
                for i, ln in enumerate(screen.view.timeline.lines)
                if "bob offers report.bin" in ln.plain
            ]
            await pilot.click(screen.view, offset=(12, 1 + line))
            workspace = screen.query_one("#workspace", TabbedContent)
            await wait_until(pilot, lambda: workspace.active == "files", "files pane shown")
            await wait_until(pilot, lambda: app.focused is files.list_view, "files focused")
            assert files.selected is not None and files.selected.name == "report.bin"
            await wait_until(pilot, lambda: "report.bin from bob" in screen_text(app), "row drawn")

            # Accepted in the TUI: a, the save dialog, Ctrl+S; saved, the same bytes.
            await pilot.press("a")
            await checked_save_dialog(pilot, app, WAIT)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: app.screen is screen, "dialog closed")
            received = (bob.session.uid, "report.bin", "COMPLETED")
            await wait_until(pilot, lambda: rows() == [received, carol_row], "received", WAIT)
            assert sha256_of(downloads / "report.bin") == digest
            await wait_until(pilot, lambda: "✓ saved as report.bin" in screen_text(app), "drawn")
            done = await bob.next(TransferCompleted, lambda e: e.transfer.outgoing)
            assert done.transfer.peer == screen.session.uid

            # carol's offer declined from the pane (d): declined here; her offer to the room
            # stays open for the others once she has the decline (PROTOCOL.md section 10).
            files.select(files.book.ordered()[1].id)
            await pilot.press("d")
            declined_row = (carol.session.uid, "other.bin", "DECLINED")
            await wait_until(pilot, lambda: rows() == [received, declined_row], "declined")
            alice = screen.session.uid or 0
            await wait_until(
                pilot,
                lambda: any(
                    e.type == pb.Message.FILE_DECLINE for e in carol.session.store.page(alice)
                ),
                "the decline at carol's",
            )
            [carols] = [t for t in carol.manager.transfers() if t.outgoing]
            assert carols.peer == -room and carols.state is TransferState.OFFERED

            # carol accepts her own copy of the same offer.
            offered = (await carol.next(TransferOffered)).transfer
            await carol.manager.accept(offered.id)
            assert sha256_of((await carol.next(TransferCompleted)).path) == digest
    finally:
        await bob.close()
        await carol.close()


async def test_the_board_of_a_room(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await device_peer(relay, tmp_path, "bob")
    carol = await device_peer(relay, tmp_path, "carol")
    at_bob, at_carol = Received(bob), Received(carol)
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            alice = screen.session.uid
            assert alice is not None
            room = await room_with(pilot, screen, "dev team", bob, carol)
            await pilot.press("f2")
            await wait_until(pilot, lambda: isinstance(app.focused, BoardCanvas), "board focus")
            canvas = screen.board_pane.canvas
            await wait_until(
                pilot, lambda: "Board of the room dev team" in screen_text(app), "the room's board"
            )

            # Strokes from two other members land on the TUI's canvas.
            theirs = [Segment(0, 0, 4, 0, "#"), Segment(0, 2, 4, 2, "*")]
            bob.send(-room, pb.Message.GRAPHICS, text=format_graphics(theirs[0]))
            carol.send(-room, pb.Message.GRAPHICS, text=format_graphics(theirs[1]))
            want = reference(list(theirs))

            def board_text() -> str:
                board = canvas.board
                return board.to_text() if board is not None else ""

            await wait_until(pilot, lambda: board_text() == want.to_text(), "both strokes")
            await wait_until(pilot, lambda: "#####" in screen_text(app), "bob's stroke drawn")
            await wait_until(pilot, lambda: "*****" in screen_text(app), "carol's stroke drawn")
            board = canvas.board
            assert board is not None
            assert shown_cells(app, canvas, board) == []

            # alice draws with the keyboard: down to row 4, a point, two steps right.
            await pilot.press("down", "down", "down", "down", "space", "right", "right", "space")
            mine = [Segment(0, 4, 0, 4, "█"), Segment(0, 4, 1, 4, "█"), Segment(1, 4, 2, 4, "█")]
            sent = [format_graphics(s) for s in mine]
            assert board.snapshot() == reference([*theirs, *mine]).snapshot()
            assert shown_cells(app, canvas, board) == []
            for received in (at_bob, at_carol):
                await wait_until(
                    pilot,
                    lambda r=received: r.texts(room, alice, pb.Message.GRAPHICS) == sent,  # type: ignore[misc]
                    "alice's strokes at the members'",
                )
            # Each member also got the other's stroke, in the room.
            assert at_bob.texts(room, carol.uid or 0, pb.Message.GRAPHICS) == [
                format_graphics(theirs[1])
            ]
            assert at_carol.texts(room, bob.uid or 0, pb.Message.GRAPHICS) == [
                format_graphics(theirs[0])
            ]
            # Strokes are no chat lines.
            assert "#####" not in conversation_text(screen)
    finally:
        await bob.close()
        await carol.close()
