"""The shared drawing board in the TUI, against a real relay, with a library client as the peer.

The peer's board is a :class:`tui.state.board.Board` to which the GRAPHICS texts its session
receives are applied, so "the peer sees the same" means the same cells after a trip through
the real relay. Covers: a mouse drag (brush and line mode), keyboard drawing (pen, line
mode, eraser), clear with confirmation on both sides, strokes sent to and from an offline
peer, malformed segments counted, no unread count or toast for strokes, restoring after a
restart, export to a text file, and a flood of 10,000 segments with keys pressed during it.
"""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

from textual import events
from textual.pilot import Pilot

from protocol import chat_pb2 as pb
from protocol.validation import ClearBoard, Segment
from tests.harness import RelayProcess
from tests.tui.conftest import (
    FAST,
    PASSWORD,
    app_config,
    log_in,
    screen_text,
    start_peer,
    wait_until,
)
from tests.tui.test_app_chat import make_buddies, rows
from tui.app import ParleyApp
from tui.client.connection import Endpoint
from tui.client.events import Event, MessageReceived
from tui.client.history import HistoryEntry, MessageState
from tui.client.session import ClientSession
from tui.client.trust import TrustPolicy
from tui.dialogs.confirm import ChoiceDialog
from tui.screens.main import MainScreen
from tui.state.board import Board, line_char
from tui.state.board_book import BOARD_HEIGHT, BOARD_WIDTH
from tui.state.roster import RowKind
from tui.widgets.board_canvas import BoardCanvas


class PeerBoard:
    """What the peer's client would draw: every GRAPHICS text it receives, applied."""

    def __init__(self, session: ClientSession) -> None:
        self.board = Board(BOARD_WIDTH, BOARD_HEIGHT)
        self.texts: list[str] = []
        session.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageReceived) and event.entry.type == pb.Message.GRAPHICS:
            self.texts.append(event.entry.text)
            self.board.apply_text(event.entry.text)


def board_of(screen: MainScreen) -> Board:
    board = screen.board_pane.canvas.board
    assert board is not None
    return board


def reference(segments: list[Segment | ClearBoard]) -> Board:
    board = Board(BOARD_WIDTH, BOARD_HEIGHT)
    for segment in segments:
        board.apply(segment)
    return board


async def open_board(pilot: Pilot[object], app: ParleyApp, peer: ClientSession) -> MainScreen:
    """Log alice in, make her and ``peer`` buddies, open the chat, then the board (F2)."""
    screen = await log_in(pilot, app, "alice")
    await make_buddies(screen, peer)
    await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
    screen.open_conversation(peer.uid or 0)
    await pilot.press("f2")
    await wait_until(pilot, lambda: isinstance(app.focused, BoardCanvas), "board focus")
    await pilot.pause()
    return screen


async def drag(
    pilot: Pilot[object], app: ParleyApp, canvas: BoardCanvas, cells: list[tuple[int, int]]
) -> None:
    """Press on the first cell, move over the others (screen coordinates, button 1), release
    on the last. Cells are board cells (the view is not scrolled in these tests)."""
    assert canvas.scroll_offset == (0, 0)
    origin = canvas.content_region
    gutter = canvas.content_region.offset - canvas.region.offset
    x0, y0 = cells[0]
    await pilot.mouse_down(canvas, offset=(gutter.x + x0, gutter.y + y0))
    for x, y in cells[1:]:
        sx, sy = origin.x + x, origin.y + y
        app.post_message(
            events.MouseMove(None, sx, sy, 0, 0, 1, False, False, False, screen_x=sx, screen_y=sy)
        )
        await pilot.pause()
    x1, y1 = cells[-1]
    await pilot.mouse_up(canvas, offset=(gutter.x + x1, gutter.y + y1))
    await pilot.pause()


def segments_of(cells: list[tuple[int, int]], brush: str | None) -> list[Segment | ClearBoard]:
    """What a drag over ``cells`` draws: a point, then one segment per step (line mode:
    ``brush`` None, no point, the character chosen by direction)."""
    out: list[Segment | ClearBoard] = []
    if brush is not None:
        out.append(Segment(*cells[0], *cells[0], brush))
    for (x0, y0), (x1, y1) in pairwise(cells):
        out.append(Segment(x0, y0, x1, y1, brush or line_char(x0, y0, x1, y1)))
    return out


def shown_cells(app: ParleyApp, canvas: BoardCanvas, board: Board) -> list[str]:
    """Mismatches between the board and what the terminal shows (empty when all agree)."""
    lines = screen_text(app).splitlines()
    view = canvas.scrollable_content_region
    sx, sy = canvas.scroll_offset
    problems = []
    for y in range(view.height):
        for x in range(view.width):
            cell = (sx + x, sy + y)
            if cell[0] < board.width and cell[1] < board.height:
                shown, has = lines[view.y + y][view.x + x], board.cell(*cell)
                if shown != has:
                    problems.append(f"{cell} shows {shown!r}, board has {has!r}")
    return problems


async def test_mouse_drag_draws_here_and_on_the_peer_board(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    peer = PeerBoard(bob)
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await open_board(pilot, app, bob)
        canvas = screen.board_pane.canvas
        await wait_until(pilot, lambda: "Pen up/down" in screen_text(app), "board keys")

        # A drag with the default brush: the pointer skips cells, segments join them.
        path = [(2, 2), (3, 2), (6, 3), (9, 6), (9, 9), (4, 9)]
        await drag(pilot, app, canvas, path)
        expected = segments_of(path, "█")
        # Another brush (b: # ), then line mode (l): ─ │ ╲ ╱ chosen by direction.
        await pilot.press("b")
        hashes = [(20, 1), (25, 1)]
        await drag(pilot, app, canvas, hashes)
        expected += segments_of(hashes, "#")
        await pilot.press("l")
        lines = [(30, 2), (36, 2), (36, 7), (40, 11), (44, 7)]
        await drag(pilot, app, canvas, lines)
        expected += segments_of(lines, None)

        want = reference(expected)
        assert board_of(screen).snapshot() == want.snapshot()
        assert shown_cells(app, canvas, want) == []
        assert {"─", "│", "╲", "╱"} <= set(want.to_text())
        await wait_until(pilot, lambda: len(peer.texts) == len(expected), "bob's segments")
        assert peer.board.snapshot() == want.snapshot()
        # Strokes never become chat lines or unread counts.
        assert screen.view.timeline.entries == []
        assert screen.chat.unread.get(bob.uid or 0) == 0


async def test_keyboard_drawing_with_pen_lines_and_eraser(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    peer = PeerBoard(bob)
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(90, 26)) as pilot:
        screen = await open_board(pilot, app, bob)
        canvas = screen.board_pane.canvas
        assert canvas.cursor == (0, 0)
        await pilot.press("down", "down", "right")  # pen up: only the cursor moves
        assert canvas.cursor == (1, 2) and board_of(screen).to_text() == ""
        await pilot.press("space")  # pen down: a point
        assert "pen down" in str(canvas.border_subtitle)
        await pilot.press("right", "right", "right", "right")
        await pilot.press("l", "down", "down", "down")  # line mode: │
        await pilot.press("space", "right", "right")  # lift the pen, move to (7,5)
        await pilot.press("e", "space", "left", "left", "left")  # eraser from (7,5) to (4,5)
        await pilot.press("space", "shift+down")  # lift; Shift moves 5 cells
        assert canvas.cursor == (4, 10)
        expected: list[Segment | ClearBoard] = [Segment(1, 2, 1, 2, "█")]
        expected += [Segment(x, 2, x + 1, 2, "█") for x in range(1, 5)]
        expected += [Segment(5, y, 5, y + 1, "│") for y in range(2, 5)]
        expected += [Segment(7, 5, 7, 5, " ")]
        expected += [Segment(x, 5, x - 1, 5, " ") for x in range(7, 4, -1)]
        want = reference(expected)
        assert want.to_text() == "\n\n ████│\n     │\n     │"
        assert board_of(screen).snapshot() == want.snapshot()
        assert board_of(screen).cell(5, 5) == " "  # the eraser took the end of the line
        assert shown_cells(app, canvas, want) == []
        await wait_until(pilot, lambda: len(peer.texts) == len(expected), "bob's segments")
        assert peer.board.snapshot() == want.snapshot()

        # The board is larger than this terminal's view: the cursor drags the view along.
        assert canvas.scrollable_content_region.width < BOARD_WIDTH
        await pilot.press(*["shift+right"] * 16, *["shift+down"] * 3)
        assert canvas.cursor == (BOARD_WIDTH - 1, BOARD_HEIGHT - 1)
        assert canvas.scroll_offset.x > 0 and canvas.scroll_offset.y > 0
        await pilot.press("space", "left")  # a last stroke in the far corner
        expected += [Segment(79, 23, 79, 23, " "), Segment(79, 23, 78, 23, " ")]
        await pilot.press("b", "up")  # back to the brush (█), the pen still down
        expected += [Segment(78, 23, 78, 22, "█")]
        want = reference(expected)
        assert board_of(screen).snapshot() == want.snapshot()
        await pilot.pause()
        assert shown_cells(app, canvas, want) == []
        await wait_until(pilot, lambda: len(peer.texts) == len(expected), "bob's segments")
        assert peer.board.snapshot() == want.snapshot()


async def test_clear_asks_first_and_clears_both_boards(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    peer = PeerBoard(bob)
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await open_board(pilot, app, bob)
        await pilot.press("space", "right", "right", "space")
        await wait_until(pilot, lambda: len(peer.texts) == 3, "bob's segments")
        drawn = board_of(screen).to_text()
        assert drawn == "███" and peer.board.to_text() == drawn

        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "confirmation")
        await pilot.press("n")  # keep
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")
        assert board_of(screen).to_text() == drawn
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: board_of(screen).to_text() == "", "alice's board clear")
        await wait_until(pilot, lambda: peer.texts[-1:] == ["clear"], "bob's clear")
        assert peer.board.to_text() == ""

        # The peer clears: applied without a question on this side.
        alice = screen.session.uid or 0
        bob.send(alice, pb.Message.GRAPHICS, text="0,0,4,0,*")
        await wait_until(pilot, lambda: board_of(screen).to_text() == "*****", "bob's stroke")
        bob.send(alice, pb.Message.GRAPHICS, text="clear")
        await wait_until(pilot, lambda: board_of(screen).to_text() == "", "bob's clear")
        assert isinstance(app.screen, MainScreen)
        assert shown_cells(app, screen.board_pane.canvas, board_of(screen)) == []


def restart_bob(relay: RelayProcess, tmp_path: Path) -> ClientSession:
    """Log the "bob" of ``start_peer`` in again, with the same history database."""
    policy = (
        TrustPolicy.plaintext() if relay.plaintext else TrustPolicy.pinned(relay.fingerprint or "")
    )
    return ClientSession(
        Endpoint(relay.host, relay.port),
        "bob",
        PASSWORD,
        trust=policy,
        data_dir=tmp_path / "peer-bob",
        options=FAST,
    )


async def test_strokes_reach_a_peer_who_was_offline_both_ways(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await start_peer(relay, tmp_path, "bob")
    config = app_config(tmp_path, relay)
    app = ParleyApp(config)
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await open_board(pilot, app, bob)
        alice = screen.session.uid or 0
        bob_uid = bob.uid or 0
        # Bob goes offline; alice draws; bob comes back and gets the strokes.
        await bob.close()
        await pilot.press("space", "right", "right", "right")
        bob = restart_bob(relay, tmp_path)
        peer = PeerBoard(bob)
        await bob.start()
        await wait_until(pilot, lambda: len(peer.texts) == 4, "the strokes, after bob's login")
        assert peer.board.snapshot() == board_of(screen).snapshot()
        await pilot.press("ctrl+q")

    # Alice is offline: bob draws, also sends malformed segments, and a chat message.
    try:
        texts = ["0,5,9,5,o", "garbage", "1,2,3", "3,3,3,8", "5,5,5,5,ab", "-50,7,500,7,*"]
        entries = [bob.send(alice, pb.Message.GRAPHICS, text=t) for t in texts]
        for entry in entries:
            await bob.wait_outcome(entry.msg_id, timeout=20)
        want = Board(BOARD_WIDTH, BOARD_HEIGHT)
        want.apply_text("0,0,3,0")  # alice's own strokes, from her history
        for text in texts:
            want.apply_text(text)

        app = ParleyApp(config)
        async with app.run_test(size=(120, 34)) as pilot:
            screen = await log_in(pilot, app, "alice", register=False)
            await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
            await wait_until(
                pilot, lambda: screen.session.store.count(bob_uid) >= 10, "the backlog"
            )
            await pilot.pause(0.2)
            # Strokes are not unread messages and raise no "while you were away" toast.
            assert screen.chat.unread.get(bob_uid) == 0
            assert {c.peer: c.unread for c in screen.session.store.conversations()} == {bob_uid: 0}
            assert not any("away" in str(n.title) for n in app._notifications)
            screen.open_conversation(bob_uid)
            await pilot.press("f2")
            await wait_until(pilot, lambda: isinstance(app.focused, BoardCanvas), "board")
            assert board_of(screen).snapshot() == want.snapshot()
            assert board_of(screen).malformed_count == 3
            await wait_until(pilot, lambda: "3 ignored" in screen_text(app), "screen text")
            assert shown_cells(app, screen.board_pane.canvas, want) == []
            assert screen.view.timeline.entries == []
            # Live malformed segments are counted too, and nothing crashes.
            for text in ["1,1,1", "x" * 5000, "1,1,1,1,\x1b", "clear!"]:
                bob.send(alice, pb.Message.GRAPHICS, text=text)
            await wait_until(pilot, lambda: "7 ignored" in screen_text(app), "7 ignored")
            assert board_of(screen).snapshot() == want.snapshot()
    finally:
        await bob.close()


async def test_restart_restores_the_board_and_export_writes_it(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    exports = tmp_path / "exports"
    config = app_config(tmp_path, relay, export_dir=exports)
    app = ParleyApp(config)
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await open_board(pilot, app, bob)
        alice = screen.session.uid or 0
        await pilot.press("down", "space", *["right"] * 6, "l", *["down"] * 3, "space")
        bob.send(alice, pb.Message.GRAPHICS, text="0,8,6,8,#")
        await wait_until(pilot, lambda: "#######" in board_of(screen).to_text(), "bob's")
        before = board_of(screen).snapshot()
        pending = [e for e in screen.session.store.pending() if e.type == pb.Message.GRAPHICS]
        for entry in pending:
            sent = [MessageState.SENT, MessageState.DELIVERED]
            await screen.session.wait_outcome(entry.msg_id, sent, 20)
        await pilot.press("ctrl+q")

    app = ParleyApp(config)
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await log_in(pilot, app, "alice", register=False)
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
        screen.open_conversation(bob.uid or 0)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.focused, BoardCanvas), "board")
        assert board_of(screen).snapshot() == before
        assert shown_cells(app, screen.board_pane.canvas, board_of(screen)) == []

        await pilot.press("x")
        await wait_until(pilot, lambda: exports.is_dir() and any(exports.iterdir()), "export")
        (first,) = exports.iterdir()
        assert first.read_text(encoding="utf-8") == board_of(screen).to_text() + "\n"
        assert first.name.startswith("parley-board-bob-") and first.suffix == ".txt"
        toasts = [(n.title, n.message) for n in app._notifications]  # (not drawn in tests)
        assert ("Board exported", f"Board saved to {first}") in toasts
        # A second export, from the command palette, never overwrites the first.
        await pilot.press("ctrl+p", *"export as")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(list(exports.iterdir())) == 2, "second export")
        assert first.read_text(encoding="utf-8") == board_of(screen).to_text() + "\n"


async def test_flood_of_ten_thousand_segments_keeps_input_alive(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await open_board(pilot, app, bob)
        alice = screen.session.uid or 0
        rng = random.Random(5)
        texts = []
        for _ in range(10_000):
            x0, y0 = rng.randint(-10, 110), rng.randint(-5, 45)
            x1, y1 = x0 + rng.randint(-4, 4), y0 + rng.randint(-2, 2)
            texts.append(f"{x0},{y0},{x1},{y1},{rng.choice('#*.o█')}")
        texts[1234] = "not,a,segment,at all"
        want = Board(BOARD_WIDTH, BOARD_HEIGHT)
        for text in texts:
            want.apply_text(text)
        pane, canvas = screen.board_pane, screen.board_pane.canvas
        drawn = 0
        incoming, move = pane.incoming, canvas.action_move

        def counting(entry: HistoryEntry) -> None:
            nonlocal drawn
            incoming(entry)
            drawn += 1

        moved_at: list[int] = []

        def recording(dx: int, dy: int) -> None:
            move(dx, dy)
            moved_at.append(drawn)

        pane.incoming = counting  # type: ignore[method-assign]
        canvas.action_move = recording  # type: ignore[method-assign]
        toasts: list[object] = []

        def record_toast(message: object, **_: object) -> None:
            toasts.append(message)

        app.notify = record_toast  # type: ignore[method-assign,assignment]
        for text in texts:
            bob.send(alice, pb.Message.GRAPHICS, text=text)
        await wait_until(pilot, lambda: drawn > 200, "the flood started")
        # Keys are handled while the flood is being drawn, not after it.
        await pilot.press("right", "right", "down")
        assert canvas.cursor == (2, 1)
        await wait_until(
            pilot,
            lambda: board_of(screen).snapshot() == want.snapshot(),
            "all 10,000 segments drawn",
            timeout=120,
        )
        assert board_of(screen).malformed_count == 1
        assert len(moved_at) == 3 and moved_at[0] < len(texts), moved_at
        await pilot.pause()
        assert shown_cells(app, canvas, want) == []
        assert screen.chat.unread.get(bob.uid or 0) == 0
        assert toasts == []  # strokes raise no toasts
