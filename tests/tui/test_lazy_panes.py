"""The Board and Files panes are built the first time they are needed (tui/screens/lazy_panes.py,
issue 15 item 7): at login, a conversation open, their tabs show but neither their widgets
nor their modules are there; F2 / F3 build them; a stroke and a file offer that arrived
before are there once they are shown, and the offer can be accepted; the palette's board
export and Ctrl+T build the pane they need without showing it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from textual.widgets import TabbedContent

from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.conftest import screen_text, wait_until
from tests.tui.pilot import checked_save_dialog
from tests.tui.test_app_files import (
    WAIT,
    chat_with,
    make_app,
    random_file,
    sha256_of,
    start_peer,
    state_of,
)
from tests.tui.test_app_rooms_ops import palette
from tui.dialogs.pick_file import PickFileDialog
from tui.screens.main import MainScreen
from tui.widgets.board_canvas import BoardCanvas

REPOSITORY = Path(__file__).resolve().parents[2]

# Imported only when their pane is first needed.
PANE_MODULES = (
    "tui.widgets.board_pane",
    "tui.widgets.board_canvas",
    "tui.state.board_book",
    "tui.state.board",
    "tui.board_export",
    "tui.dialogs.clear_board",
    "tui.widgets.files_pane",
    "tui.widgets.transfer_row",
    "tui.dialogs.pick_file",
    "tui.dialogs.save_file",
)

PROBE = """
import asyncio, json, sys
from pathlib import Path
from types import SimpleNamespace

from tests.tui.pilot import app_config, log_in, wait_until
from tui.app import ParleyApp

relay = SimpleNamespace(**json.loads(sys.argv[1]))
base = Path(sys.argv[2])


def widgets(screen):
    return sorted({type(widget).__name__ for widget in screen.query("*")})


async def main() -> None:
    app = ParleyApp(app_config(base, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        screen.open_conversation(4242)  # a chat (its history and board are empty)
        await pilot.pause()
        at_login = {"modules": sorted(sys.modules), "widgets": widgets(screen)}
        tabs = [str(tab.label) for tab in screen.query("#workspace Tab")]
        await pilot.press("f2")
        await wait_until(pilot, lambda: screen.pane_ready("board"), "the Board pane")
        await pilot.press("f3")
        await wait_until(pilot, lambda: screen.files_pane is not None, "the Files pane")
        await pilot.pause()
        shown = {"modules": sorted(sys.modules), "widgets": widgets(screen),
                 "active": screen.query_one("#workspace").active}
        print(json.dumps({"at_login": at_login, "tabs": tabs, "shown": shown}))
        await app.action_quit()


asyncio.run(main())
"""


def test_panes_and_their_modules_wait_for_the_first_show(
    relay: RelayProcess, tmp_path: Path
) -> None:
    values = {
        "host": relay.host,
        "port": relay.port,
        "plaintext": relay.plaintext,
        "fingerprint": relay.fingerprint,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(values), str(tmp_path)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    at_login, shown = result["at_login"], result["shown"]
    assert result["tabs"] == ["Chat", "Board", "Files"]  # the tabs show from login on
    assert sorted(set(at_login["modules"]) & set(PANE_MODULES)) == []
    assert not {"BoardPane", "BoardCanvas", "FilesPane"} & set(at_login["widgets"])
    assert {"BoardPane", "BoardCanvas", "FilesPane"} <= set(shown["widgets"])
    assert {"tui.widgets.board_pane", "tui.widgets.files_pane"} <= set(shown["modules"])
    assert shown["active"] == "files"


async def test_a_stroke_and_an_offer_before_the_first_show_are_there_after(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await start_peer(relay, tmp_path, "bob")
    source = tmp_path / "data.bin"
    digest = random_file(source, 100_000)
    app = make_app(tmp_path, relay)
    try:
        async with app.run_test(size=(110, 36)) as pilot:
            screen = await chat_with(pilot, app, bob)
            alice = screen.session.uid or 0
            bob.session.send(alice, pb.Message.GRAPHICS, text="0,0,4,0,#")
            await bob.manager.offer(alice, source)

            # Both arrive while neither pane exists: the chat line, the tab label and the
            # stored stroke say so; the panes are still not built.
            await wait_until(pilot, lambda: "bob offers data.bin" in screen_text(app), "line")
            await wait_until(pilot, lambda: "Files (1)" in screen_text(app), "tab label")
            graphics = (pb.Message.GRAPHICS,)
            store = screen.session.store
            await wait_until(pilot, lambda: store.page(bob.uid, types=graphics), "stroke stored")
            assert not screen.pane_ready("board") and screen.files_pane is None
            assert not screen.query("BoardPane") and not screen.query("FilesPane")

            # F2: the board is built, replayed from the store, bob's stroke on it.
            await pilot.press("f2")
            await wait_until(pilot, lambda: isinstance(app.focused, BoardCanvas), "board")
            board = screen.board_pane.canvas.board
            assert board is not None and board.to_text() == "#####"
            await wait_until(pilot, lambda: "#####" in screen_text(app), "stroke drawn")
            # A later stroke is drawn live, once.
            bob.session.send(alice, pb.Message.GRAPHICS, text="0,1,1,1,*")
            await wait_until(pilot, lambda: board.to_text() == "#####\n**", "live stroke")

            # F3: the Files pane lists the offer, which is accepted and saved.
            await pilot.press("f3")
            files = screen.files_pane
            assert files is not None
            await wait_until(pilot, lambda: app.focused is files.list_view, "files focused")
            assert state_of(files) == ["OFFERED"]
            await wait_until(pilot, lambda: "data.bin from bob" in screen_text(app), "row")
            await pilot.press("a")
            await checked_save_dialog(pilot, app, WAIT)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")
            await wait_until(pilot, lambda: state_of(files) == ["COMPLETED"], "saved", WAIT)
            assert sha256_of(tmp_path / "alice-downloads" / "data.bin") == digest
            titles = [n.title for n in app._notifications]
            assert "File received" in titles
    finally:
        await bob.close()


async def test_board_export_and_send_files_build_their_pane_when_asked(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await start_peer(relay, tmp_path, "bob")
    exports = tmp_path / "exports"
    app = make_app(tmp_path, relay, export_dir=exports)
    try:
        async with app.run_test(size=(110, 36)) as pilot:
            screen = await chat_with(pilot, app, bob)
            bob.session.send(screen.session.uid or 0, pb.Message.GRAPHICS, text="0,0,4,0,#")
            graphics = (pb.Message.GRAPHICS,)
            store = screen.session.store
            await wait_until(pilot, lambda: store.page(bob.uid, types=graphics), "stroke stored")
            assert not screen.pane_ready("board")

            # The palette's export: the board is built and read for it; the chat stays.
            await palette(pilot, app, "Board: export as text")
            await wait_until(pilot, lambda: exports.is_dir() and any(exports.iterdir()), "export")
            (saved,) = exports.iterdir()
            assert saved.read_text(encoding="utf-8") == "#####\n"
            assert screen.query_one("#workspace", TabbedContent).active == "chat"

            # Ctrl+T with no Files pane yet: it is built and the picker opens.
            assert screen.files_pane is None
            await pilot.press("ctrl+t")
            await wait_until(pilot, lambda: isinstance(app.screen, PickFileDialog), "picker")
            assert screen.files_pane is not None
    finally:
        await bob.close()
