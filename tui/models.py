"""Pure models of the chat TUI: formatting, wrapping, unread counts, typing timers, roster.

No Textual and no I/O here, so everything is unit-tested without an app.

Invariants:
- Peer names and message texts are hostile. What this module returns for display carries no
  terminal control characters (:func:`protocol.validation.printable_text`) and is plain
  text: widgets put it into ``Content``/``Segment`` objects, never parse it as markup.
- Display work is bounded whatever the input: a message shows at most
  :data:`DISPLAY_CHARS` characters and :data:`DISPLAY_LINES` wrapped lines, then a notice
  saying how much was cut. The full text stays in the history database.
- Time is always passed in (``now``, monotonic seconds), never read here: the typing timers
  of PROTOCOL.md section 8 are tested without sleeping.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len, chop_cells

from protocol import chat_pb2 as pb
from protocol.validation import printable_text
from tui.client.events import Buddy
from tui.client.store import HistoryEntry, MessageState

# PROTOCOL.md section 8: INPUTING at most once per second while editing; the receiver shows
# "typing…" for about a second after each one (a little more, so that a peer typing steadily
# -- one hint per second plus network jitter -- does not make the marker flicker).
TYPING_SEND_INTERVAL = 1.0
TYPING_VISIBLE_FOR = 1.5

DISPLAY_CHARS = 4000
DISPLAY_LINES = 200
MAX_NAME_CHARS = 40
PREVIEW_CHARS = 80

# Message types shown in a conversation (the Files and Board panes own the others).
CHAT_TYPES = frozenset({pb.Message.MESSAGE, pb.Message.FILE_OFFER, pb.Message.FILE})


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
    notice: str | None  # "… (message truncated, N KB)" when cut


def display_text(text: str, limit: int = DISPLAY_CHARS) -> DisplayText:
    """The part of ``text`` to show; only the first ``limit`` characters are examined."""
    if len(text) <= limit:
        return DisplayText(printable_text(text), None)
    size = len(text.encode("utf-8", "surrogatepass"))
    return DisplayText(printable_text(text[:limit]), truncation_notice(size))


def truncation_notice(size_bytes: int) -> str:
    return f"… (message truncated, {max(1, round(size_bytes / 1024))} KB)"


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


# --- unread counts and typing --------------------------------------------------------------


class UnreadCounts:
    """Unread messages per peer (what the buddy list shows)."""

    def __init__(self, initial: Iterable[tuple[int, int]] = ()) -> None:
        self._counts: dict[int, int] = {peer: n for peer, n in initial if n > 0}

    def bump(self, peer: int, by: int = 1) -> int:
        self._counts[peer] = self._counts.get(peer, 0) + by
        return self._counts[peer]

    def clear(self, peer: int) -> bool:
        """Forget the count of ``peer``; True if there was one."""
        return self._counts.pop(peer, 0) > 0

    def get(self, peer: int) -> int:
        return self._counts.get(peer, 0)

    @property
    def total(self) -> int:
        return sum(self._counts.values())


def chat_unread(newest_last: Sequence[HistoryEntry], stored_unread: int) -> int:
    """How many of a conversation's ``stored_unread`` messages are chat messages.

    The store counts every durable incoming message as unread (board strokes too); the
    buddy list counts chat messages only. ``newest_last`` is a recent page of the
    conversation; the newest ``stored_unread`` incoming entries in it are the unread ones.
    """
    count = seen = 0
    for entry in reversed(newest_last):
        if seen >= stored_unread:
            break
        if not entry.outgoing:
            seen += 1
            count += entry.type in CHAT_TYPES
    return count


class TypingTracker:
    """Receiver side: who is typing, from INPUTING hints and their arrival time."""

    def __init__(self, visible_for: float = TYPING_VISIBLE_FOR) -> None:
        self.visible_for = visible_for
        self._until: dict[int, float] = {}

    def hint(self, peer: int, now: float) -> bool:
        """An INPUTING arrived from ``peer``; True if the marker just appeared."""
        appeared = not self.is_typing(peer, now)
        self._until[peer] = now + self.visible_for
        return appeared

    def stop(self, peer: int) -> bool:
        """``peer`` sent a message (or went away): the marker goes now. True if it was shown."""
        return self._until.pop(peer, None) is not None

    def is_typing(self, peer: int, now: float) -> bool:
        until = self._until.get(peer)
        return until is not None and now < until

    def typing(self, now: float) -> frozenset[int]:
        return frozenset(peer for peer, until in self._until.items() if now < until)

    def expire(self, now: float) -> list[int]:
        """Drop the markers that timed out; returns their peers."""
        gone = [peer for peer, until in self._until.items() if now >= until]
        for peer in gone:
            del self._until[peer]
        return gone

    def next_expiry(self) -> float | None:
        return min(self._until.values(), default=None)


class TypingThrottle:
    """Sender side: may we send an INPUTING hint to ``peer`` now? (once per interval)."""

    def __init__(self, interval: float = TYPING_SEND_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[int, float] = {}

    def should_send(self, peer: int, now: float) -> bool:
        last = self._last.get(peer)
        if last is not None and now - last < self.interval:
            return False
        self._last[peer] = now
        return True

    def reset(self, peer: int) -> None:
        """The message was sent: the next keystroke may hint again at once."""
        self._last.pop(peer, None)


# --- the buddy list ------------------------------------------------------------------------


class RowKind(enum.Enum):
    HEADER = "header"
    INCOMING = "incoming"  # they asked us: accept / decline
    BUDDY = "buddy"
    OUTGOING = "outgoing"  # we asked them: pending


@dataclass(frozen=True)
class RosterRow:
    kind: RowKind
    uid: int = 0
    name: str = ""
    online: bool = False
    unread: int = 0
    typing: bool = False

    @property
    def key(self) -> str:
        """Stable option id: the same person keeps the same id across updates."""
        return f"{self.kind.value}-{self.uid}" if self.uid else f"{self.kind.value}-{self.name}"


_SECTIONS = (
    (RowKind.INCOMING, pb.User.REQUEST_RECEIVED, "Buddy requests"),
    (RowKind.BUDDY, pb.User.BUDDY, "Buddies"),
    (RowKind.OUTGOING, pb.User.REQUEST_SENT, "Waiting for answer"),
)


def build_roster(
    buddies: Iterable[Buddy], unread: UnreadCounts, typing: frozenset[int]
) -> list[RosterRow]:
    """Rows of the buddy list: requests first, then buddies (online first, by name), then
    our pending requests. A section header precedes each non-empty section."""
    by_relation: dict[int, list[Buddy]] = {}
    for buddy in buddies:
        by_relation.setdefault(buddy.relation, []).append(buddy)
    rows: list[RosterRow] = []
    for kind, relation, title in _SECTIONS:
        members = by_relation.get(relation, [])
        if not members and kind is not RowKind.BUDDY:
            continue
        rows.append(RosterRow(RowKind.HEADER, name=title))
        members.sort(key=lambda b: (not b.online, safe_name(b.username).casefold(), b.uid))
        for buddy in members:
            rows.append(
                RosterRow(
                    kind,
                    uid=buddy.uid,
                    name=safe_name(buddy.username, buddy.uid),
                    online=buddy.online,
                    unread=unread.get(buddy.uid) if kind is RowKind.BUDDY else 0,
                    typing=kind is RowKind.BUDDY and buddy.uid in typing,
                )
            )
    return rows
