"""Text for display: hostile names and messages made fit for the screen, sizes, times.

No Textual, no I/O and no state here: every function maps its arguments to plain text, so
everything is unit-tested without an app.

Invariants:
- Peer names and message texts are hostile. What this module returns for display carries no
  terminal control characters (:func:`protocol.validation.printable_text`) and is plain
  text: widgets put it into ``Content``/``Segment`` objects, never parse it as markup.
- Display work is bounded whatever the input: a message shows at most
  :data:`DISPLAY_CHARS` characters and :data:`DISPLAY_LINES` wrapped lines, then a notice
  saying how much was cut and how to read it all (:func:`more_notice`; the conversation
  view opens the whole text in :class:`~tui.dialogs.full_message.FullMessageDialog`). The
  full text stays in the history database.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from rich.cells import cell_len, chop_cells

from protocol.validation import printable_text
from tui.client.history import MessageState

DISPLAY_CHARS = 4000
DISPLAY_LINES = 200
MAX_NAME_CHARS = 40
PREVIEW_CHARS = 80


def safe_name(name: str | None, uid: int | None = None) -> str:
    """A user name fit for one line of display (controls removed, length bounded)."""
    text = printable_text((name or "")[: 4 * MAX_NAME_CHARS], keep_newlines=False).strip()
    if not text:
        return f"#{uid}" if uid is not None else "?"
    return text[:MAX_NAME_CHARS]


_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def format_size(size: float) -> str:
    """``2.4 MB``: decimal units, one decimal below 10, none above (file sizes, rates)."""
    value = float(max(size, 0))
    for unit in _SIZE_UNITS:
        if unit == "B":
            if value < 1000:
                return f"{int(value)} B"
        elif value < 9.95:
            return f"{value:.1f} {unit}"
        elif value < 999.5 or unit == _SIZE_UNITS[-1]:
            return f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """First line of ``text``, cleaned and cut to ``limit`` characters (for toasts)."""
    head = printable_text(text[: 4 * limit], keep_newlines=True).split("\n", 1)[0].strip()
    if len(head) > limit or len(text) > 4 * limit or "\n" in text.strip():
        return head[: limit - 1].rstrip() + "…"
    return head


# --- time ----------------------------------------------------------------------------------


def local_time(timestamp: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp)


def format_clock(timestamp: int) -> str:
    """``HH:MM`` in local time (always 5 cells)."""
    return local_time(timestamp).strftime("%H:%M")


def day_of(timestamp: int) -> datetime.date:
    return local_time(timestamp).date()


def format_day(day: datetime.date, today: datetime.date) -> str:
    """The label of a day separator: Today, Yesterday, or e.g. ``Tue 4 Jun 2024``."""
    if day == today:
        return "Today"
    if day == today - datetime.timedelta(days=1):
        return "Yesterday"
    return f"{day:%a} {day.day} {day:%b %Y}"


def day_separator(label: str, width: int) -> str:
    """``──── label ────`` centred in exactly ``width`` cells (cut when too narrow)."""
    middle = f" {label} "
    if cell_len(middle) >= width:
        return chop_cells(middle, max(width, 1))[0]
    fill = width - cell_len(middle)
    left = fill // 2
    return "─" * left + middle + "─" * (fill - left)


# --- message state -------------------------------------------------------------------------


@dataclass(frozen=True)
class StateMark:
    glyph: str  # at most 2 cells
    style: str  # style key (the conversation view maps it to a component class)
    words: str  # for people and tests


STATE_MARKS: dict[MessageState, StateMark] = {
    MessageState.PENDING: StateMark("…", "pending", "sending…"),
    MessageState.SENT: StateMark("✓", "sent", "sent"),
    MessageState.DELIVERED: StateMark("✓✓", "delivered", "delivered"),
    MessageState.FAILED: StateMark("!", "failed", "failed"),
    MessageState.RECEIVED: StateMark("", "received", "received"),
}


def state_mark(state: MessageState) -> StateMark:
    return STATE_MARKS[state]


# --- text for display ----------------------------------------------------------------------


@dataclass(frozen=True)
class DisplayText:
    text: str  # cleaned, at most DISPLAY_CHARS characters
    notice: str | None  # "… N more characters: …" when cut


def display_text(text: str, limit: int = DISPLAY_CHARS) -> DisplayText:
    """The part of ``text`` to show; only the first ``limit`` characters are examined."""
    if len(text) <= limit:
        return DisplayText(printable_text(text), None)
    return DisplayText(printable_text(text[:limit]), more_notice(len(text) - limit, "characters"))


def more_notice(hidden: int, unit: str) -> str:
    """The line under a cut message: how much more there is, and how to read it all."""
    return f"… {hidden:,} more {unit}: click (or Enter) to read all"


_TOKENS = re.compile(r"\S+|\s+")


def wrap_cells(text: str, width: int, first_width: int | None = None) -> list[str]:
    """Greedy word wrap measured in terminal cells; words longer than a line are split.

    The first output line is at most ``first_width`` cells (default ``width``; 0 makes the
    first line empty), the others at most ``width``. Newlines start new lines; spaces at a
    wrap point are dropped. Always returns at least one (possibly empty) line.
    """
    width = max(width, 1)
    limit = width if first_width is None else max(first_width, 0)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current: list[str] = []
        used = 0
        for token in _TOKENS.findall(paragraph):
            size = len(token) if token.isascii() else cell_len(token)
            if used + size <= limit:
                current.append(token)
                used += size
                continue
            if current or token.isspace():
                lines.append("".join(current).rstrip())
                current, used, limit = [], 0, width
                if token.isspace():
                    continue
            while size > limit:
                if limit <= 0 or (limit < width and size <= width):
                    lines.append("")  # a narrow first line: start the word on the next
                    limit = width
                    continue
                head = chop_cells(token, limit)[0] or token[0]
                lines.append(head)
                token = token[len(head) :]
                size = len(token) if token.isascii() else cell_len(token)
                limit = width
            current, used = [token], size
        lines.append("".join(current).rstrip())
        limit = width
    return lines
