"""Pure models of the Files pane (tui.transfers_view, tui.state.transfers) and path
completion (tui.path_completion)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tui.client.transfer.events import TransferCompleted, TransferProgress
from tui.client.transfer.store import Transfer, TransferState
from tui.dialogs.save_file import check_target
from tui.display import format_size
from tui.path_completion import MAX_ENTRIES, complete, complete_path, list_directory
from tui.state.transfers import TransferBook
from tui.transfers_view import (
    actions_for,
    clip,
    describe,
    format_eta,
    format_rate,
    offer_line,
)


def transfer(state: TransferState = TransferState.OFFERED, **changes: object) -> Transfer:
    base = Transfer(1, False, 7, 99, "report.pdf", "report.pdf", 2_400_000, b"x" * 32, state)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_sizes_rates_and_etas() -> None:
    assert [format_size(n) for n in (0, 999, 1000, 2_400_000, 10**9 * 24)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "2.4 MB",
        "24 GB",
    ]
    assert format_rate(0) == "—" and format_rate(1_200_000) == "1.2 MB/s"
    assert [format_eta(s) for s in (None, 4.6, 125, 3720)] == [
        "—",
        "5 s",
        "2 min 05 s",
        "1 h 02 min",
    ]


def test_hostile_text_is_clipped_and_literal() -> None:
    assert clip("a\x1b[2Jb\nc", 20) == "a[2Jbc"
    assert clip("x" * 4000, 10) == "x" * 9 + "…"
    line = offer_line("[b]eve[/b]", "[@click=app.quit]x", 10)
    assert line.plain == "[b]eve[/b] offers [@click=app.quit]x (10 B)"
    row = describe(transfer(offered_name="../../.report.pdf"), "bob")
    assert row.title.plain == "↓ report.pdf from bob · 2.4 MB · offered as ../../.report.pdf"


def test_rows_by_state() -> None:
    offer = describe(transfer(), "bob")
    assert offer.progress is None and offer.actions.accept and offer.actions.decline
    assert offer.status.plain.startswith("offered")
    active = describe(
        transfer(TransferState.ACTIVE, offset=1_000_000, rate=500_000.0, eta=2.8), "bob"
    )
    assert active.progress == (1_000_000, 2_400_000) and active.actions.cancel
    assert active.status.plain == "receiving: 1.0 MB of 2.4 MB · 500 kB/s · 3 s left"
    assert not active.actions.accept
    sent = describe(transfer(TransferState.OFFERED, outgoing=True), "bob")
    assert sent.status.plain == "waiting for bob to accept" and not sent.actions.accept
    failed = describe(transfer(TransferState.FAILED, reason="SHA-256 mismatch"), "bob")
    assert failed.status.plain == "failed: SHA-256 mismatch" and failed.actions.forget
    assert failed.state_class == "-failed" and not failed.actions.cancel
    done = describe(transfer(TransferState.COMPLETED, path=Path("/d/report (1).pdf")), "bob")
    assert done.status.plain == "✓ saved as report (1).pdf in /d" and done.progress == (
        2_400_000,
        2_400_000,
    )
    assert actions_for(transfer(TransferState.DECLINED)).forget


def test_book_never_moves_a_final_transfer_back() -> None:
    book = TransferBook()
    assert book.put(transfer())[1] is True
    active = transfer(TransferState.ACTIVE)
    book.apply(TransferProgress(replace(active, offset=5), 5, 2_400_000, 1.0, 1.0))
    assert book.get(1) is not None and book.get(1).offset == 5  # type: ignore[union-attr]
    done = transfer(TransferState.COMPLETED, offset=2_400_000)
    book.apply(TransferCompleted(done, Path("/x")))
    book.apply(TransferProgress(active, 9, 2_400_000, 1.0, 1.0))  # stale
    assert book.get(1) == done
    book.forget(1)
    assert len(book) == 0


def test_completion_pure() -> None:
    entries = [("report-a.bin", False), ("report-b.bin", False), ("reports", True), (".rc", False)]
    assert complete("rep", entries).text == "report"
    many = complete("report", entries)
    assert many.text == "report" and many.candidates == ("report-a.bin", "report-b.bin", "reports/")
    assert complete("/x/reports", entries).text == "/x/reports/"
    assert complete("~/report-a", entries).text == "~/report-a.bin"
    assert complete("", entries).candidates[-1] == "reports/"  # no hidden entries…
    assert complete(".", entries).text == ".rc"  # …unless asked for
    assert complete("zzz", entries).candidates == ()


def test_completion_reads_one_bounded_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "only.txt").write_text("x")
    assert complete_path("su", tmp_path).text == "sub/"
    assert complete_path("sub/o", tmp_path).text == "sub/only.txt"
    assert complete_path(str(tmp_path / "missing") + "/x", tmp_path).candidates == ()
    for index in range(30):
        (tmp_path / f"f{index}").write_text("")
    found, truncated = list_directory(tmp_path, "f", limit=10)
    assert truncated and len(found) <= 10
    assert MAX_ENTRIES >= 1000


def test_save_target_check(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_text("mine")
    taken = check_target(tmp_path, "../../report.pdf", [], tmp_path)
    assert taken.safe_name == "report.pdf" and taken.taken
    assert taken.target == tmp_path / "report (1).pdf"
    reserved = check_target(tmp_path, "report (1).pdf", [tmp_path / "report (1).pdf"], tmp_path)
    assert reserved.target == tmp_path / "report (1) (1).pdf"
    fresh = check_target(tmp_path, "/etc/passwd", [], tmp_path)
    assert fresh.target == tmp_path / "passwd" and not fresh.taken
    default = tmp_path / "Downloads"
    assert check_target(default, "a.txt", [], default).created
    missing = check_target(tmp_path / "nope", "a.txt", [], default)
    assert missing.target is None and "not a directory" in missing.error
    assert describe(transfer(TransferState.CANCELLED, reason="cancelled"), "b").status.plain == (
        "cancelled by you"
    )
