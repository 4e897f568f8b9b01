"""The Files pane against a real relay, with a library client (and its own TransferManager)
as the other person.

Covers: sending several files picked with the path input (Tab completion) and the tree,
offer → accept → save (bit-identical, never overwriting: the save dialog proposes
"name (1).ext"), the progress bar moving (intermediate values observed, paced sender),
decline, cancel from each side, a SHA-256 mismatch, offers that arrived while offline, and
hostile file names (path tricks, markup, control characters, 4,000 characters) made safe
and shown literally. No wall-clock assertions: waits only bound a hang.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from textual.widgets import TabbedContent

from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.client.sessions import TransferPeer as Peer
from tests.tui.conftest import PASSWORD, app_config, log_in, screen_text, wait_until
from tests.tui.pilot import checked_save_dialog, files_of
from tests.tui.test_app_chat import make_buddies, rows
from tui.app import ParleyApp
from tui.client.events import MessageReceived
from tui.client.transfer.events import (
    TransferCancelled,
    TransferCompleted,
    TransferDeclined,
    TransferOffered,
)
from tui.client.transfer.logic import TransferOptions
from tui.dialogs.pick_file import PickFileDialog
from tui.screens.main import MainScreen
from tui.state.roster import RowKind
from tui.widgets.file_tree import FileTree
from tui.widgets.files_pane import FilesPane

MIB = 1024 * 1024
WAIT = 30.0
PACED = TransferOptions(max_rate=1 * MIB)  # a 3 MiB file takes seconds: progress observable
E = TypeVar("E")


async def start_peer(
    relay: RelayProcess, tmp_path: Path, name: str, options: TransferOptions | None = None
) -> Peer:
    peer = Peer(relay, tmp_path, name, options, password=PASSWORD)
    await peer.session.register()
    await peer.session.start()
    return peer


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).digest()


def sha256_of(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def make_app(tmp_path: Path, relay: RelayProcess, **changes: object) -> ParleyApp:
    downloads = tmp_path / "alice-downloads"
    downloads.mkdir(exist_ok=True)
    return ParleyApp(app_config(tmp_path, relay, downloads_dir=downloads, **changes))


async def chat_with(pilot: Any, app: ParleyApp, peer: Peer, register: bool = True) -> MainScreen:
    """Log alice in, make her and ``peer`` buddies, open their chat."""
    screen = await log_in(pilot, app, "alice", register=register)
    if register:
        await make_buddies(screen, peer.session)
    await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
    await peer.session.list_buddies()  # bob's engine sees alice online
    screen.open_conversation(peer.uid)
    return screen


def state_of(pane: FilesPane, predicate: Callable[[object], bool] = lambda _: True) -> list[str]:
    return [t.state.name for t in pane.book.ordered() if predicate(t)]


async def test_send_several_files_picked_with_completion_and_tree(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await start_peer(relay, tmp_path, "bob")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    digests = {
        "report-a.bin": random_file(outbox / "report-a.bin", 200_000),
        "report-b.bin": random_file(outbox / "report-b.bin", 3),
        "notes.txt": random_file(outbox / "notes.txt", 1000),
    }
    (outbox / "[red]oops").write_bytes(b"x")  # local names are shown literally too
    (outbox / "[@click=app.quit]y").write_bytes(b"y")
    app = make_app(tmp_path, relay)
    try:
        async with app.run_test(size=(110, 36)) as pilot:
            screen = await chat_with(pilot, app, bob)
            files = await files_of(pilot, screen)
            files.browse_dir = outbox
            await pilot.press("ctrl+t")  # from the conversation
            await wait_until(pilot, lambda: isinstance(app.screen, PickFileDialog), "picker")
            dialog = app.screen
            assert isinstance(dialog, PickFileDialog)
            path = dialog.path_input
            assert app.focused is path

            # Tab completes: the common prefix first, then the listing, then a unique name.
            path.value = "rep"
            await pilot.press("tab")
            await wait_until(pilot, lambda: path.value == "report-", "common prefix")
            await pilot.press("tab")
            await wait_until(
                pilot, lambda: "report-a.bin  report-b.bin" in screen_text(app), "listing"
            )
            path.value = str(outbox) + "/report-a"
            await pilot.press("tab")
            await wait_until(pilot, lambda: path.value.endswith("/report-a.bin"), "unique")
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(dialog.picked) == 1, "first pick")
            path.value = "no"
            await pilot.press("tab")
            await wait_until(pilot, lambda: path.value == "notes.txt", "relative completion")
            await pilot.press("enter")
            path.value = "report-b.bin"
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(dialog.picked) == 3, "three picks")
            path.value = "notes.txt"
            await pilot.press("enter")  # again: un-picked
            await wait_until(pilot, lambda: len(dialog.picked) == 2, "un-pick")

            # The tree shows hostile local names literally; Enter on a file picks it.
            tree = dialog.query_one(FileTree)
            await wait_until(pilot, lambda: len(tree.root.children) == 5, "tree loaded")
            text = screen_text(app)
            assert "[red]oops" in text and "[@click=app.quit]y" in text
            tree.focus()
            names = [node.label.plain for node in tree.root.children]
            await pilot.press(*["down"] * (names.index("notes.txt") + 1), "enter")
            await wait_until(pilot, lambda: len(dialog.picked) == 3, "picked in the tree")
            await wait_until(pilot, lambda: "3 files picked" in screen_text(app), "screen text")

            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: app.screen is screen, "picker closed")

            # Three concurrent transfers: bob accepts them all, each arrives bit-identical.
            for _ in range(3):
                offered = await bob.next(TransferOffered)
                await bob.manager.accept(offered.transfer.id)
            received = [
                await bob.next(TransferCompleted, lambda e: not e.transfer.outgoing)
                for _ in range(3)
            ]
            assert {e.path.name: sha256_of(e.path) for e in received} == digests
            await wait_until(pilot, lambda: state_of(files) == ["COMPLETED"] * 3, "three sent rows")
            await pilot.press("f3")
            await wait_until(pilot, lambda: screen_text(app).count("✓ sent") == 3, "shown")
            assert app.is_running
    finally:
        await bob.close()


async def test_receive_accept_save_progress_and_no_overwrite(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await start_peer(relay, tmp_path, "bob", PACED)
    source = tmp_path / "data.bin"
    digest = random_file(source, 3 * MIB)
    app = make_app(tmp_path, relay)
    downloads = tmp_path / "alice-downloads"
    (downloads / "data.bin").write_bytes(b"alice's own file")
    try:
        async with app.run_test(size=(110, 36)) as pilot:
            screen = await chat_with(pilot, app, bob)
            files = await files_of(pilot, screen)
            await bob.manager.offer(screen.session.uid or 0, source)

            # The offer shows in the conversation and in the Files pane (tab label too).
            await wait_until(
                pilot, lambda: "bob offers data.bin (3.1 MB)" in screen_text(app), "chat line"
            )
            await wait_until(pilot, lambda: state_of(files) == ["OFFERED"], "offer row")
            await pilot.press("f3")
            await wait_until(pilot, lambda: app.focused is files.list_view, "files focused")
            text = screen_text(app)
            assert "data.bin from bob · 3.1 MB" in text and "Files (1)" in text
            assert "Accept…" in text and "Decline" in text  # Footer bindings

            # Accept: the dialog proposes "data (1).bin" because data.bin exists.
            await pilot.press("a")
            await checked_save_dialog(pilot, app, WAIT)
            text = screen_text(app)
            assert "data.bin already exists there: proposing data (1).bin" in text
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: app.screen is screen, "dialog closed")

            # The bar moves: intermediate values seen, then full; rate and ETA shown.
            seen: set[float] = set()
            statuses: set[str] = set()
            transfer_id = files.book.ordered()[0].id

            def progressed() -> bool:
                row = files.rows[transfer_id]
                if row.bar.display:
                    seen.add(row.bar.progress)
                statuses.add(row.view.status.plain)
                return state_of(files) == ["COMPLETED"]

            await wait_until(pilot, progressed, "completion", timeout=60)
            total = 3 * MIB
            assert any(0 < value < total for value in seen), seen
            assert files.rows[transfer_id].bar.progress == total
            assert any("B/s · " in s and " left" in s for s in statuses), statuses
            saved = downloads / "data (1).bin"
            assert sha256_of(saved) == digest
            assert (downloads / "data.bin").read_bytes() == b"alice's own file"
            await wait_until(
                pilot, lambda: "✓ saved as data (1).bin in " in screen_text(app), "screen text"
            )
            done = await bob.next(TransferCompleted)
            assert done.transfer.outgoing
    finally:
        await bob.close()


async def test_decline_tells_the_sender(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await start_peer(relay, tmp_path, "bob")
    source = tmp_path / "unwanted.bin"
    random_file(source, 1000)
    app = make_app(tmp_path, relay)
    try:
        async with app.run_test(size=(110, 36)) as pilot:
            screen = await chat_with(pilot, app, bob)
            files = await files_of(pilot, screen)
            await bob.manager.offer(screen.session.uid or 0, source)
            await wait_until(pilot, lambda: state_of(files) == ["OFFERED"], "offer row")
            await wait_until(pilot, lambda: "bob offers unwanted.bin" in screen_text(app), "line")
            # A click on the offer in the chat shows it in the Files pane.
            line = next(i for i, ln in enumerate(screen.view.timeline.lines) if ln.local_id)
            await pilot.click(screen.view, offset=(12, 1 + line))
            workspace = screen.query_one("#workspace", TabbedContent)
            await wait_until(pilot, lambda: workspace.active == "files", "files pane shown")
            assert files.selected is not None and files.selected.name == "unwanted.bin"
            await pilot.press("d")
            declined = await bob.next(TransferDeclined)
            assert declined.by_peer
            await wait_until(pilot, lambda: state_of(files) == ["DECLINED"], "declined row")
            await wait_until(pilot, lambda: "declined" in screen_text(app), "screen text")
            assert list((tmp_path / "alice-downloads").iterdir()) == []
            await pilot.press("delete")  # finished rows can be removed from the list
            await wait_until(pilot, lambda: not files.rows, "row removed")
    finally:
        await bob.close()


@pytest.mark.parametrize(
    ("app_sends", "app_cancels"),
    [(True, True), (False, True), (False, False)],
    ids=["app-sender-cancels", "app-receiver-cancels", "peer-sender-cancels"],
)
async def test_cancel_from_either_side(
    relay: RelayProcess, tmp_path: Path, app_sends: bool, app_cancels: bool
) -> None:
    bob = await start_peer(relay, tmp_path, "bob", PACED)
    source = tmp_path / "long.bin"
    random_file(source, 8 * MIB)
    app = make_app(tmp_path, relay, transfer_options=PACED)
    downloads = tmp_path / "alice-downloads"
    try:
        async with app.run_test(size=(110, 36)) as pilot:
            screen = await chat_with(pilot, app, bob)
            files = await files_of(pilot, screen)
            await pilot.press("f3")
            if app_sends:
                assert screen.transfers is not None
                await screen.transfers.offer(bob.uid, source)
                offered = await bob.next(TransferOffered)
                await bob.manager.accept(offered.transfer.id)
            else:
                await bob.manager.offer(screen.session.uid or 0, source)
                await wait_until(pilot, lambda: state_of(files) == ["OFFERED"], "offer row")
                await pilot.press("enter")  # Enter on an offer = accept
                await checked_save_dialog(pilot, app)
                await pilot.press("enter")
                await wait_until(pilot, lambda: app.screen is screen, "dialog closed")

            # Either side's bar moves first. The engine's events reach the pane through the
            # net worker's feed: wait until the row exists (mounted) before reading its bar.
            await wait_until(
                pilot, lambda: any(r.is_mounted for r in files.rows.values()), "the row"
            )
            row_id = files.book.ordered()[0].id
            await wait_until(
                pilot,
                lambda: (
                    files.rows[row_id].bar.display and 0 < files.rows[row_id].bar.progress < 8 * MIB
                ),
                "progress",
            )
            if app_cancels:
                await pilot.click("#files-cancel")  # the button; the key is c
                cancelled = await bob.next(TransferCancelled)
                assert cancelled.by_peer
            else:
                sending = bob.manager.transfers()[0]
                await bob.manager.cancel(sending.id)
            await wait_until(pilot, lambda: state_of(files) == ["CANCELLED"], "cancelled row")
            status = files.rows[row_id].view.status.plain
            if app_cancels:
                assert status == "cancelled by you"
            else:
                assert status.startswith("cancelled: cancelled by the sender")
            assert [p for p in downloads.iterdir()] == []  # no part file left behind
    finally:
        await bob.close()


async def test_hash_mismatch_is_reported(relay: RelayProcess, tmp_path: Path) -> None:
    # bob runs no engine here: he plays a broken sender by hand.
    bob = await start_peer(relay, tmp_path, "bob")
    await bob.manager.close()
    bob_events = bob.session.events()
    app = make_app(tmp_path, relay)
    try:
        async with app.run_test(size=(110, 36)) as pilot:
            screen = await chat_with(pilot, app, bob)
            alice = screen.session.uid or 0
            files = await files_of(pilot, screen)
            info = pb.FileInfo(transfer_id=77, size=5, sha256=hashlib.sha256(b"hello").digest())
            bob.session.send(alice, pb.Message.FILE_OFFER, text="bad.bin", file=info)
            await wait_until(pilot, lambda: state_of(files) == ["OFFERED"], "offer row")
            await pilot.press("f3", "a")
            await checked_save_dialog(pilot, app)
            await pilot.press("ctrl+s")
            async with asyncio.timeout(WAIT):
                while True:
                    event = await bob_events.next(WAIT)
                    if (
                        isinstance(event, MessageReceived)
                        and event.entry.type == pb.Message.FILE_ACCEPT
                    ):
                        break
            chunk = pb.FileInfo(transfer_id=77, offset=0)
            bob.session.send_ephemeral(alice, pb.Message.FILE_CHUNK, data=b"HELLO", file=chunk)
            await wait_until(pilot, lambda: state_of(files) == ["FAILED"], "failed row")
            assert "SHA-256 mismatch" in files.rows[files.book.ordered()[0].id].view.status.plain
            await wait_until(pilot, lambda: "SHA-256 mismatch" in screen_text(app), "screen text")
            assert list((tmp_path / "alice-downloads").iterdir()) == []
    finally:
        await bob.session.close()


HOSTILE = [
    "../../.bashrc",
    "/etc/passwd",
    "[bold]x[/]",
    "[@click=app.quit]click me",
    "red\x1b[31m\x07bell\x00.txt",
    "long" + "n" * 3992 + ".txt",
]


async def test_hostile_names_from_the_backlog_are_safe_and_literal(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await start_peer(relay, tmp_path, "bob")
    await bob.manager.close()  # bob plays a hostile sender by hand: no engine answers
    app = make_app(tmp_path, relay)
    async with app.run_test(size=(110, 36)) as pilot:
        screen = await chat_with(pilot, app, bob)
        alice = screen.session.uid or 0
        await app.action_quit()
    # alice is offline: the offers wait in the relay (empty files: nothing else needed).
    empty = hashlib.sha256(b"").digest()
    for number, name in enumerate(HOSTILE, 1):
        info = pb.FileInfo(transfer_id=number, size=0, sha256=empty)
        await bob.session.wait_outcome(
            bob.session.send(alice, pb.Message.FILE_OFFER, text=name, file=info).msg_id
        )

    app = make_app(tmp_path, relay)
    downloads = tmp_path / "alice-downloads"
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await chat_with(pilot, app, bob, register=False)
            files = await files_of(pilot, screen)
            await wait_until(pilot, lambda: state_of(files) == ["OFFERED"] * 6, "backlog offers")
            names = [t.name for t in files.book.ordered()]
            assert names[:5] == [
                "bashrc",
                "passwd",
                "]",
                "[@click=app.quit]click me",
                "red[31mbell.txt",
            ]
            assert len(names[5].encode()) <= 255 and names[5].endswith(".txt")
            await pilot.press("f3")
            await pilot.pause()
            text = screen_text(app)
            assert "] from bob · 0 B · offered as [bold]x[/]" in text
            assert "[@click=app.quit]click me from bob" in text
            assert "offered as ../../.bashrc" in text and "\x1b" not in text
            assert "red[31mbell.txt" in text
            assert "Files (6)" in text

            # Accept each one with the proposed name: all land inside the downloads folder.
            for index in range(6):
                files.list_view.index = index
                await pilot.press("a")
                dialog = await checked_save_dialog(pilot, app)
                if index == 0:
                    text = screen_text(app)
                    assert "offered as: ../../.bashrc" in text
                    assert dialog.check is not None and dialog.check.target == downloads / "bashrc"
                    assert "It will be saved as" in text
                await pilot.press("ctrl+s")
                await wait_until(pilot, lambda: app.screen is screen, "dialog closed")
            await wait_until(pilot, lambda: state_of(files) == ["COMPLETED"] * 6, "saved")
            saved = sorted(p.name for p in downloads.iterdir())
            assert set(saved) == set(names)
            assert not (tmp_path / ".bashrc").exists()
            assert not (tmp_path.parent / ".bashrc").exists()
            assert app.is_running  # no markup crash, no injected action
    finally:
        await bob.session.close()
