"""How the Files pane shows transfers: sizes, rates and ETAs as text, one row per transfer.

No widgets and no I/O: :class:`~tui.client.transfer.store.Transfer` snapshots and transfer
events in, plain strings and ``Content`` out, so all of it is unit-tested without an app.

Invariants:
- File names, peer names and reasons are hostile. Every string produced here went through
  :func:`clip` (terminal controls removed, one line, bounded length) and is put into
  ``Content`` as *text*, never parsed as markup.
- The actions offered for a row (:class:`RowActions`) depend only on its state and
  direction: accept/decline an incoming offer, cancel anything unfinished, remove a
  finished row from the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.content import Content

from protocol.validation import printable_text
from tui.client.transfer.store import Transfer, TransferState
from tui.display import format_size

NAME_CHARS = 60  # a file name in a row
REASON_CHARS = 160  # a reason or a path in a row


def format_rate(rate: float) -> str:
    """``1.2 MB/s``; an idle or unknown rate is ``—``."""
    return f"{format_size(rate)}/s" if rate > 0 else "—"


def format_eta(seconds: float | None) -> str:
    """``5 s``, ``2 min 05 s``, ``1 h 02 min``; unknown: ``—``."""
    if seconds is None or seconds < 0 or seconds != seconds:
        return "—"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    hours = min(total // 3600, 99_999)
    return f"{hours} h {total % 3600 // 60:02d} min"


def clip(text: str, limit: int) -> str:
    """Untrusted text for one line: controls removed, at most ``limit`` characters (a cut
    is marked with ``…``)."""
    line = printable_text(text[: limit * 4 + 4], keep_newlines=False)
    if len(line) > limit or len(text) > limit * 4 + 4:
        return line[: max(limit - 1, 0)] + "…"
    return line


def clip_path(path: Path | str, limit: int = REASON_CHARS) -> str:
    """A path for display; a long one keeps its end (the file name), not its start."""
    text = printable_text(str(path), keep_newlines=False)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def home_relative(path: Path) -> str:
    """``~/Downloads`` for a path under the home directory (shorter rows)."""
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home)) if path != home else "~"
    except ValueError:
        return str(path)


def offer_line(peer_name: str, name: str, size: int) -> Content:
    """``alice offers report.pdf (2.4 MB)`` with the names literal."""
    return Content.assemble(
        (clip(peer_name, 40), "bold"),
        " offers ",
        (clip(name, NAME_CHARS), "bold"),
        f" ({format_size(size)})",
    )


@dataclass(frozen=True)
class RowActions:
    accept: bool = False
    decline: bool = False
    cancel: bool = False
    forget: bool = False


def actions_for(transfer: Transfer) -> RowActions:
    state = transfer.state
    if state.final:
        return RowActions(forget=True)
    incoming_offer = not transfer.outgoing and state is TransferState.OFFERED
    return RowActions(accept=incoming_offer, decline=incoming_offer, cancel=True)


@dataclass(frozen=True)
class TransferRowView:
    """What one row of the Files pane shows."""

    title: Content
    status: Content
    progress: tuple[int, int] | None  # (bytes, total); None: no bar
    state_class: str  # CSS class: -offered, -active, -completed, -failed, -cancelled…
    actions: RowActions
    bar_visible: bool = True  # False: the bar keeps its value but is hidden (finished)


def _title(transfer: Transfer, peer_name: str) -> Content:
    arrow, word = ("↑", "to") if transfer.outgoing else ("↓", "from")
    parts: list[str | tuple[str, str]] = [
        f"{arrow} ",
        (clip(transfer.name, NAME_CHARS), "bold"),
        f" {word} ",
        (clip(peer_name, 40), "bold"),
        f" · {format_size(transfer.size)}",
    ]
    offered = transfer.offered_name
    if not transfer.outgoing and offered and offered != transfer.name:
        parts += [" · offered as ", (clip(offered, 40), "italic")]
    return Content.assemble(*parts)


def _progress_text(transfer: Transfer) -> str:
    done = f"{format_size(transfer.offset)} of {format_size(transfer.size)}"
    if transfer.rate > 0:
        return f"{done} · {format_rate(transfer.rate)} · {format_eta(transfer.eta)} left"
    return done


def _status(transfer: Transfer, peer_name: str) -> Content:
    state, reason = transfer.state, clip(transfer.reason, REASON_CHARS)
    peer = clip(peer_name, 40)
    if state is TransferState.OFFERED:
        if transfer.outgoing and transfer.peer < 0:  # a room's: a copy per member who accepts
            return Content("open: each member who accepts gets a copy")
        if transfer.outgoing:
            return Content(f"waiting for {peer} to accept")
        return Content("offered — a: accept…, d: decline")
    if state is TransferState.ACTIVE:
        verb = "sending" if transfer.outgoing else "receiving"
        if transfer.start_offset > 0:
            verb += f" (resumed at {format_size(transfer.start_offset)})"
        return Content(f"{verb}: {_progress_text(transfer)}")
    if state is TransferState.COMPLETED:
        if transfer.outgoing:
            return Content.assemble(("✓ sent", "bold"), f": {peer} has it, verified")
        if transfer.path is None:
            return Content.assemble(("✓ saved", "bold"))
        return Content.assemble(
            ("✓ saved", "bold"),
            " as ",
            (clip(transfer.path.name, NAME_CHARS), "bold"),
            " in ",
            clip_path(home_relative(transfer.path.parent), 80),
        )
    if state is TransferState.DECLINED:
        return Content(f"declined by {peer}" if transfer.outgoing else "declined")
    if state is TransferState.CANCELLED:
        if reason in ("", "cancelled"):  # the engine's reason for our own cancel
            return Content.assemble(("cancelled", "bold"), " by you")
        return Content.assemble(("cancelled", "bold"), f": {reason}")
    return Content.assemble(("failed", "bold"), f": {reason}" if reason else "")


def describe(transfer: Transfer, peer_name: str) -> TransferRowView:
    progress = None
    if transfer.state is TransferState.ACTIVE:
        progress = (transfer.offset, transfer.size)
    elif transfer.state is TransferState.COMPLETED:
        progress = (transfer.size, transfer.size)
    return TransferRowView(
        _title(transfer, peer_name),
        _status(transfer, peer_name),
        progress,
        "-" + transfer.state.name.lower(),
        actions_for(transfer),
        bar_visible=transfer.state is not TransferState.COMPLETED,  # "✓ saved" says it
    )


def preparing_view(file_name: str, peer_name: str) -> TransferRowView:
    """A row for a file being read and hashed before its offer goes out."""
    title = Content.assemble(
        "↑ ", (clip(file_name, NAME_CHARS), "bold"), " to ", (clip(peer_name, 40), "bold")
    )
    return TransferRowView(
        title, Content("reading the file (SHA-256)…"), None, "-preparing", RowActions()
    )
