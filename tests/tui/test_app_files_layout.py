"""The Files pane in small terminals (issue 15): at 80×24 and 60×20 the "saved as <path>"
line and the totals of a running transfer are readable in full (wrapped), the Cancel button
is on screen, and control characters in file names (a tab, an escape) leave the box's
border where it belongs."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, screen_text, wait_until
from tests.tui.test_app_files import (
    MIB,
    PACED,
    chat_with,
    files_of,
    random_file,
    start_peer,
    state_of,
)
from tui.app import ParleyApp
from tui.client.transfer.store import TransferState
from tui.display import format_size
from tui.widgets.files_pane import FilesPane


def squeezed(text: str) -> str:
    return "".join(text.split())


def box_text(app: ParleyApp, pane: FilesPane) -> str:
    """The text inside the transfer list's border, lines joined (wrapping undone)."""
    region = pane.list_view.region
    lines = screen_text(app).splitlines()[region.y + 1 : region.bottom - 1]
    return "".join(line[region.x + 1 : region.right - 1] for line in lines)


def assert_border_intact(app: ParleyApp, pane: FilesPane) -> None:
    width = app.size.width
    region = pane.list_view.region
    lines = screen_text(app).splitlines()
    assert all(len(line) == width for line in lines)
    for line in lines[region.y + 1 : region.bottom - 1]:
        assert line[region.x] == "│" and line[region.right - 1] == "│", line


async def test_small_terminals_show_saved_paths_totals_and_cancel(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await start_peer(relay, tmp_path, "bob", PACED)
    downloads = tmp_path / "a-rather-long-downloads-folder" / "and-one-more-level-below-it"
    downloads.mkdir(parents=True)
    app = ParleyApp(app_config(tmp_path, relay, downloads_dir=downloads, transfer_options=PACED))
    small = tmp_path / "quarterly\treport\x1b[31m final.pdf"
    random_file(small, 5000)
    big = tmp_path / "big.bin"
    random_file(big, 40 * MIB)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await chat_with(pilot, app, bob)
            files = await files_of(pilot, screen)
            transfers = screen.transfers
            assert transfers is not None
            await bob.manager.offer(screen.session.uid or 0, small)
            await wait_until(pilot, lambda: state_of(files) == ["OFFERED"], "first offer")
            await transfers.accept(files.book.ordered()[0].id, None, None)
            await wait_until(pilot, lambda: state_of(files) == ["COMPLETED"], "saved")
            await bob.manager.offer(screen.session.uid or 0, big)
            await wait_until(pilot, lambda: "OFFERED" in state_of(files), "second offer")
            running = next(t for t in files.book.ordered() if t.state is TransferState.OFFERED)
            await transfers.accept(running.id, None, None)
            await wait_until(pilot, lambda: "ACTIVE" in state_of(files), "receiving")
            await pilot.press("f3")
            await wait_until(pilot, lambda: app.focused is files.list_view, "files focused")
            saved = next(t for t in files.book.ordered() if t.state is TransferState.COMPLETED)
            saved_row = files.rows[saved.id]
            assert "\t" not in saved_row.view.title.plain

            for size in ((80, 24), (60, 20)):
                await pilot.resize_terminal(*size)
                files.select(running.id)
                app.clear_notifications()
                await pilot.pause()

                def readable(row_id: int = running.id) -> bool:
                    inside = squeezed(box_text(app, files))
                    status = files.rows[row_id].view.status.plain
                    return squeezed(status) in inside and f" of {format_size(40 * MIB)}" in status

                await wait_until(pilot, readable, f"the totals at {size}")
                saved_status = saved_row.view.status.plain
                assert "saved as" in saved_status and downloads.name in saved_status
                assert squeezed(saved_status) in squeezed(box_text(app, files)), size
                assert_border_intact(app, files)

                cancel = files.query_one("#files-cancel", Button)
                assert cancel.display and not cancel.disabled
                region = cancel.region
                assert region.width > 0 and region.right <= size[0] and region.bottom <= size[1]
                await wait_until(pilot, lambda: "Cancel (c)" in screen_text(app), "drawn")

            await pilot.click(files.query_one("#files-cancel", Button))
            await wait_until(pilot, lambda: "CANCELLED" in state_of(files), "cancelled")
    finally:
        await bob.close()
