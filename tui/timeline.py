"""One conversation laid out as terminal lines: the model behind ``ConversationView``.

Pure (no Textual): history entries in, lines of ``(text, style key)`` spans out.

Invariants:
- Entries are kept in ``local_id`` order without duplicates.
- A day separator line precedes the first entry and every entry whose local day differs
  from its predecessor's.
- Every message line starts with a fixed :data:`GUTTER`-cell column (clock, state glyph), so
  a state change (sending… → ✓ → ✓✓, or !) never changes the wrapping: :meth:`Timeline.upsert`
  of a known entry rewrites only the lines that differ (normally just the head line) and
  returns their indices.
- Work is proportional to what changed: the lines of each message are cached for the
  current width and re-wrapped only when the width changes; appending costs O(that message);
  prepending an older page costs O(page) wrapping plus one O(lines) list rebuild.
- Text shown is :func:`tui.display.display_text` of the message (cleaned, bounded); the full
  text stays in the entries.
- In a room (``sender_name`` given) each incoming message is headed by its sender's name,
  and a ROOM_EVENT is one line saying what happened (``alice invited bob``).
- In a room an incoming message that mentions this user (``@own_name``,
  :func:`tui.state.mentions.mentions`) is drawn in the ``mention`` style.
- The "new messages" marker (:meth:`Timeline.set_marker`) is one line of its own, drawn
  right before the head line of the message it names (after that message's day separator)
  while that message is loaded; it belongs to no message (``local_id`` None).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len

from protocol import chat_pb2 as pb
from protocol.validation import printable_text
from tui.client.history import HistoryEntry, MessageState
from tui.client.rooms import describe_event
from tui.display import (
    DISPLAY_LINES,
    day_of,
    day_separator,
    display_text,
    format_clock,
    format_day,
    format_size,
    more_notice,
    state_mark,
    wrap_cells,
)
from tui.state.mentions import mentions
from tui.state.roster import CHAT_TYPES

GUTTER = 9  # "HH:MM" + " " + 2-cell state glyph + " "
NEW_MESSAGES = "new messages"  # the marker line's label: "──── new messages ────"
Span = tuple[str, str]  # (text, style key; "" = the widget's base style)


@dataclass(frozen=True, slots=True)
class Line:
    spans: tuple[Span, ...]
    local_id: int | None  # the message this line belongs to (None: a day separator)
    head: bool = False  # the first line of its message (the one with the state glyph)

    @property
    def plain(self) -> str:
        return "".join(text for text, _ in self.spans)


FILE_TYPES = frozenset({pb.Message.FILE_OFFER, pb.Message.FILE})


def _file_description(entry: HistoryEntry) -> str:
    """``report.pdf (2.4 MB)`` — the line reads "alice offers report.pdf (2.4 MB)"."""
    name = printable_text(entry.text[:300], keep_newlines=False)
    size = entry.file.size if entry.file is not None else len(entry.data)
    return f"offers {name} ({format_size(size)})"


def count_back_unread(
    entries: Sequence[HistoryEntry], unread: int
) -> tuple[HistoryEntry | None, int]:
    """Walk ``entries`` (oldest first) from the newest, counting incoming chat messages
    (what unread counts count): the entry that is the ``unread``-th, and how many are still
    to count (0 when found; otherwise the caller continues with the page before)."""
    for entry in reversed(entries):
        if not entry.outgoing and entry.type in CHAT_TYPES:
            unread -= 1
            if unread <= 0:
                return entry, 0
    return None, unread


class Timeline:
    """The lines of one conversation for a given width (see the module docstring)."""

    def __init__(
        self,
        own_name: str,
        peer_name: str,
        width: int = 80,
        today: Callable[[], datetime.date] = datetime.date.today,
        sender_name: Callable[[int], str] | None = None,
    ) -> None:
        self.own_name = own_name
        self.peer_name = peer_name
        self.sender_name = sender_name  # a room: names the sender of each message
        self._width = max(width, GUTTER + 1)
        self._today = today
        self.entries: list[HistoryEntry] = []
        self._by_id: dict[int, HistoryEntry] = {}
        self._cache: dict[int, list[Line]] = {}
        self.lines: list[Line] = []
        self._start: dict[int, int] = {}  # local_id → index of its head line
        self.marker: int | None = None  # the first unread message: the marker goes before it

    # --- queries ----------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self._width

    def __len__(self) -> int:
        return len(self.lines)

    def __contains__(self, local_id: object) -> bool:
        return local_id in self._by_id

    @property
    def first_local_id(self) -> int | None:
        return self.entries[0].local_id if self.entries else None

    @property
    def last_local_id(self) -> int | None:
        return self.entries[-1].local_id if self.entries else None

    def head_line(self, local_id: int) -> int | None:
        """Index of the head line of message ``local_id`` (None if not here)."""
        return self._start.get(local_id)

    def marker_line(self) -> int | None:
        """Index of the "new messages" line (None: no marker, or its message not loaded)."""
        head = self._start.get(self.marker) if self.marker is not None else None
        return head - 1 if head is not None else None

    def entry_at(self, index: int) -> HistoryEntry | None:
        """The message drawn on line ``index`` (None for separators and beyond the end)."""
        if not 0 <= index < len(self.lines):
            return None
        local_id = self.lines[index].local_id
        return self._by_id.get(local_id) if local_id is not None else None

    def failed(self) -> list[HistoryEntry]:
        """Outgoing messages shown here that are FAILED (what "re-send" acts on)."""
        return [e for e in self.entries if e.outgoing and e.state is MessageState.FAILED]

    # --- changes ----------------------------------------------------------------------------

    def set_width(self, width: int) -> bool:
        """Re-wrap for a new width; True if anything changed."""
        width = max(width, GUTTER + 1)
        if width == self._width:
            return False
        self._width = width
        self._cache.clear()
        self._rebuild()
        return True

    def set_marker(self, local_id: int | None) -> None:
        """Draw the "new messages" line before message ``local_id`` (None: no marker)."""
        if local_id != self.marker:
            self.marker = local_id
            self._rebuild()

    def clear(self) -> None:
        self.entries.clear()
        self._by_id.clear()
        self._cache.clear()
        self.lines = []
        self._start.clear()

    def prepend(self, older: Iterable[HistoryEntry]) -> int:
        """Add a page of older entries (any order, duplicates ignored); returns how many
        lines the timeline grew by (the amount to shift a scroll position to keep it)."""
        fresh = sorted(
            (e for e in older if e.local_id is not None and e.local_id not in self._by_id),
            key=lambda e: e.local_id or 0,
        )
        if not fresh:
            return 0
        before = len(self.lines)
        first = self.first_local_id
        if first is not None and (fresh[-1].local_id or 0) > first:
            self.entries.extend(fresh)  # not actually older: merge and re-sort
            self.entries.sort(key=lambda e: e.local_id or 0)
        else:
            self.entries[:0] = fresh
        for entry in fresh:
            self._by_id[entry.local_id or 0] = entry
        self._rebuild()
        return len(self.lines) - before

    def upsert(self, entry: HistoryEntry) -> list[int] | None:
        """Add a new entry or replace a known one (state change).

        Returns the indices of the lines that changed when the layout kept its shape
        (a state update, or an append: the new lines at the end), or None when lines moved
        (an insertion in the middle, or a size change), meaning "redraw everything".
        """
        local_id = entry.local_id
        if local_id is None:
            return []
        old = self._by_id.get(local_id)
        if old is not None:
            self._by_id[local_id] = entry
            self.entries[self._index_of(local_id)] = entry
            old_lines = self._cache.pop(local_id, None)
            new_lines = self._message_lines(entry)
            start = self._start[local_id]
            if old_lines is None or len(old_lines) != len(new_lines):
                self._rebuild()
                return None
            pairs = zip(old_lines, new_lines, strict=True)
            changed = [start + i for i, (a, b) in enumerate(pairs) if a != b]
            self.lines[start : start + len(new_lines)] = new_lines
            return changed
        last = self.last_local_id
        self._by_id[local_id] = entry
        if last is not None and local_id < last:
            self.entries.append(entry)
            self.entries.sort(key=lambda e: e.local_id or 0)
            self._rebuild()
            return None
        previous = self.entries[-1] if self.entries else None
        self.entries.append(entry)
        first_new = len(self.lines)
        self._emit(previous, entry)
        return list(range(first_new, len(self.lines)))

    # --- layout -----------------------------------------------------------------------------

    def _index_of(self, local_id: int) -> int:
        # Entries are sorted by local_id: binary search.
        lo, hi = 0, len(self.entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if (self.entries[mid].local_id or 0) < local_id:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _rebuild(self) -> None:
        self.lines = []
        self._start.clear()
        previous: HistoryEntry | None = None
        for entry in self.entries:
            self._emit(previous, entry)
            previous = entry

    def _emit(self, previous: HistoryEntry | None, entry: HistoryEntry) -> None:
        day = day_of(entry.timestamp)
        if previous is None or day_of(previous.timestamp) != day:
            label = format_day(day, self._today())
            self.lines.append(Line(((day_separator(label, self._width), "day"),), None))
        if entry.local_id == self.marker and entry.local_id is not None:
            marker = day_separator(NEW_MESSAGES, self._width)
            self.lines.append(Line(((marker, "marker"),), None))
        self._start[entry.local_id or 0] = len(self.lines)
        self.lines.extend(self._message_lines(entry))

    def _message_lines(self, entry: HistoryEntry) -> list[Line]:
        local_id = entry.local_id or 0
        cached = self._cache.get(local_id)
        if cached is not None:
            return cached
        mark = state_mark(entry.state)
        name = self.own_name if entry.outgoing else self.peer_name
        if self.sender_name is not None and not entry.outgoing:
            name = self.sender_name(entry.sender)
        if entry.type == pb.Message.ROOM_EVENT:
            namer = self.sender_name or (lambda uid: f"#{uid}")
            said = describe_event(entry.text, name, namer)
            body, body_style, notice = printable_text(said, keep_newlines=False), "notice", None
            name, separator = "", "— "
        elif entry.type in FILE_TYPES:
            body, body_style, notice = _file_description(entry), "file", None
            separator = " "  # "alice offers report.pdf (2.4 MB)"
        else:
            shown = display_text(entry.text)
            body, body_style, notice = shown.text, "text", shown.notice
            if self.sender_name is not None and not entry.outgoing:
                body_style = "mention" if mentions(entry.text, self.own_name) else "text"
            separator = ": "
        avail = self._width - GUTTER
        chunks = wrap_cells(body, avail, avail - cell_len(name) - 2)
        if len(chunks) > DISPLAY_LINES:
            hidden = len(chunks) - DISPLAY_LINES
            chunks = chunks[:DISPLAY_LINES]
            notice = notice or more_notice(hidden, "lines")
        head: tuple[Span, ...] = (
            (format_clock(entry.timestamp), "time"),
            (" ", ""),
            (f"{mark.glyph:<2}", mark.style),
            (" ", ""),
            (name, "own" if entry.outgoing else "peer"),
            (separator, ""),
            (chunks[0], body_style),
        )
        indent = " " * GUTTER
        lines = [Line(head, local_id, head=True)]
        lines.extend(Line(((indent, ""), (chunk, body_style)), local_id) for chunk in chunks[1:])
        if notice is not None:  # wrapped: narrow views show all of it
            notices = wrap_cells(notice, avail)
            lines.extend(Line(((indent, ""), (part, "notice")), local_id) for part in notices)
        self._cache[local_id] = lines
        return lines
