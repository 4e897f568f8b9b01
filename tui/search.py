"""History search: the query, its hits and where a hit is in a line (pure; no Textual).

Invariants:
- A search is a case-insensitive substring match of the typed text, literally: ``%``,
  ``_`` and ``\\`` typed by the user match themselves (:func:`like_pattern` escapes them for
  SQLite's ``LIKE ... ESCAPE '\\'``). SQLite folds case for ASCII letters only; the
  highlight (:func:`hit_ranges`) folds every letter Python knows, so a non-ASCII hit is
  highlighted where it is shown but found only when its case matches.
- At most :data:`MAX_HITS` hits are returned, newest first; ``more`` says whether there were
  further ones (the store is asked for one more than the bound).
- Only what a conversation shows is searched: chat messages and file offers
  (:data:`~tui.state.roster.CHAT_TYPES`), never board strokes or transfer control.
- Text shown (snippets) is one line of printable characters: nothing from the network is
  interpreted as markup or reaches the terminal as a control code (the caller draws it
  as ``Content``/``Segment`` text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.validation import printable_text
from tui.client.history import HistoryEntry
from tui.client.store import LocalStore
from tui.state.roster import CHAT_TYPES

MAX_HITS = 200
SNIPPET_CELLS = 200  # characters of a hit's line kept around the hit (the dialog cuts more)
HIT = "hit"  # the style key of highlighted text (see tui.timeline.Span)

Span = tuple[str, str]


def like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, literally (escape ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matcher(query: str) -> re.Pattern[str] | None:
    return re.compile(re.escape(query), re.IGNORECASE) if query else None


def hit_ranges(text: str, query: str) -> list[tuple[int, int]]:
    """(start, end) of every case-insensitive occurrence of ``query`` in ``text``."""
    pattern = _matcher(query)
    if pattern is None:
        return []
    return [match.span() for match in pattern.finditer(text)]


def highlight(spans: Iterable[Span], query: str, skip: frozenset[str] = frozenset()) -> list[Span]:
    """``spans`` with every occurrence of ``query`` inside one span split out under the
    :data:`HIT` style key (spans whose key is in ``skip`` are left alone)."""
    pattern = _matcher(query)
    out: list[Span] = []
    for text, key in spans:
        if pattern is None or key in skip:
            out.append((text, key))
            continue
        position = 0
        for match in pattern.finditer(text):
            start, end = match.span()
            if start > position:
                out.append((text[position:start], key))
            out.append((text[start:end], HIT))
            position = end
        if position < len(text):
            out.append((text[position:], key))
    return out


def snippet(text: str, query: str, limit: int = SNIPPET_CELLS) -> list[Span]:
    """One printable line of ``text`` around its first hit, as spans ("" and :data:`HIT`);
    an ellipsis marks what was cut."""
    line = printable_text(text.replace("\n", " "), keep_newlines=False)
    ranges = hit_ranges(line, query)
    start = 0
    if ranges and ranges[0][1] > limit:
        start = max(0, ranges[0][0] - limit // 4)
    cut = line[start : start + limit]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + limit < len(line) else ""
    return highlight([(prefix, ""), (cut, ""), (suffix, "")], query)


@dataclass(frozen=True)
class SearchHit:
    peer: int  # the conversation (a room: its negative id)
    local_id: int
    timestamp: int
    outgoing: bool
    sender: int  # who wrote it (a room message); 0 when unknown
    text: str


@dataclass(frozen=True)
class SearchResult:
    query: str
    peer: int | None  # None: all chats
    hits: tuple[SearchHit, ...]
    more: bool  # there were more than MAX_HITS


class HistorySearch:
    """Runs searches on the local store (the caller's thread; one scan of the
    messages table per search, bounded by :data:`MAX_HITS`)."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store

    def run(self, query: str, peer: int | None = None) -> SearchResult:
        if not query:
            return SearchResult(query, peer, (), False)
        rows = self._store.search(
            like_pattern(query), types=CHAT_TYPES, peer=peer, limit=MAX_HITS + 1
        )
        hits = [_hit(entry) for entry in rows]
        more = len(rows) > MAX_HITS
        return SearchResult(query, peer, tuple(hits[:MAX_HITS]), more)


def _hit(entry: HistoryEntry) -> SearchHit:
    return SearchHit(
        peer=entry.peer,
        local_id=entry.local_id or 0,
        timestamp=entry.timestamp,
        outgoing=entry.outgoing,
        sender=entry.sender,
        text=entry.text,
    )
