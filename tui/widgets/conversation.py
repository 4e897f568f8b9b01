"""``ConversationView``: the history of one conversation, drawn with Textual's Line API.

Invariants:
- Only visible lines are rendered (``render_line``); no widget per message, so a
  conversation of 10,000 messages costs what one screenful costs to draw.
- History comes from a loader (``LocalStore.page``) one page at a time: the newest page on
  :meth:`ConversationView.open`, older pages when the view is scrolled near the top (the
  scroll position is shifted by the lines added, so the text under the eyes stays put).
- A message state change repaints only the lines that changed (the head line).
- Every text is drawn as ``Segment`` s of plain strings prepared by :mod:`tui.timeline`:
  nothing from the network is parsed as markup or reaches the terminal as a control code.
- While the view is scrolled to the bottom it follows new messages; otherwise it stays.
- A jump (:meth:`ConversationView.jump_to`: a search hit, the first unread message) loads a
  window of pages around its message, however far back; the view then pages older at the
  top and newer at the bottom (``_has_newer``), and a new message beyond the window is not
  drawn until paged in (one sent from here shows the newest page again).
- The jumped-to message is drawn ``marked`` until the next key press or wheel scroll in the
  view; occurrences of the last search's text are drawn ``hit`` while the chat stays open.
- The "new messages" line (:meth:`ConversationView.mark_new_messages`) goes before the first
  of the unread messages the chat had when it was opened and stays while it is open.
- A message shown cut (too long) opens whole in a dialog on a click, or with Enter (the
  lowest cut message on screen): :mod:`tui.dialogs.full_message`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from tui.client.history import HistoryEntry, MessageState
from tui.search import highlight
from tui.state.roster import CHAT_TYPES
from tui.timeline import FILE_TYPES, GUTTER, Timeline, count_back_unread
from tui.widgets.styled_lines import StyledLinesView

# (before local_id or None for the newest, limit) → entries oldest first
PageLoader = Callable[[int | None, int], list[HistoryEntry]]
# (after local_id, limit) → the oldest ``limit`` entries newer than it, oldest first
NewerLoader = Callable[[int, int], list[HistoryEntry]]

FIRST_PAGE = 100
OLDER_PAGE = 200
AROUND = 100  # entries loaded on each side of a message jumped to
_NOT_SEARCHED = frozenset({"time", "day", "marker", "own", "peer", ""})

_PREFIX = "conversation-view--"  # component classes: conversation-view--<style key>
_STYLE_KEYS = (
    "time",
    "day",
    "own",
    "peer",
    "text",
    "mention",
    "file",
    "notice",
    "pending",
    "sent",
    "delivered",
    "failed",
    "received",
    "empty",
    "marker",
    "hit",
    "marked",
)


def _incoming_chat(entry: HistoryEntry) -> bool:
    return not entry.outgoing and entry.type in CHAT_TYPES


class ConversationView(StyledLinesView, can_focus=True):
    """Scrollable history; see the module docstring."""

    STYLE_PREFIX: ClassVar[str] = _PREFIX
    COMPONENT_CLASSES: ClassVar[set[str]] = {f"{_PREFIX}{key}" for key in _STYLE_KEYS}

    DEFAULT_CSS = """
    ConversationView {
        overflow-x: hidden;
        overflow-y: scroll;
        background: $surface;
        & > .conversation-view--time { color: $text-muted; }
        & > .conversation-view--day { color: $text-muted; text-style: bold; }
        & > .conversation-view--own { color: $accent; text-style: bold; }
        & > .conversation-view--peer { color: $primary; text-style: bold; }
        & > .conversation-view--text { color: $foreground; }
        & > .conversation-view--mention { color: $warning; text-style: bold; }
        & > .conversation-view--file { color: $secondary; text-style: italic; }
        & > .conversation-view--notice { color: $warning; text-style: italic; }
        & > .conversation-view--pending { color: $text-muted; }
        & > .conversation-view--sent { color: $success; }
        & > .conversation-view--delivered { color: $success; text-style: bold; }
        & > .conversation-view--failed { color: $text-error; background: $error-muted;
                                         text-style: bold; }
        & > .conversation-view--received { color: $text-muted; }
        & > .conversation-view--empty { color: $text-muted; text-style: italic; }
        & > .conversation-view--marker { color: $text-accent; text-style: bold; }
        & > .conversation-view--hit { color: $text; background: $warning-muted;
                                      text-style: bold underline; }
        & > .conversation-view--marked { background: $accent-muted; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "screen.focus_pane('buddies')", "Buddies", show=False),
        Binding("right", "screen.focus_pane('composer')", "Composer", show=False),
        Binding("escape", "clear_search", "Clear the search highlight", show=False),
        Binding("enter", "read_all", "Read a long message", show=False),
    ]

    class ResendRequested(Message):
        """The user clicked the ``!`` of a failed message."""

        def __init__(self, entry: HistoryEntry) -> None:
            super().__init__()
            self.entry = entry

    class FileClicked(Message):
        """The user clicked a file offer (the screen shows it in the Files pane)."""

        def __init__(self, entry: HistoryEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.timeline = Timeline("", "")
        self.peer: int | None = None
        self._loader: PageLoader | None = None
        self._has_more = False
        self._loading = False
        self._follow = True
        self._newer: NewerLoader | None = None  # set by a jump: the window pages forward
        self._has_newer = False
        self.search = ""  # occurrences of this text are highlighted
        self.marked: int | None = None  # the message jumped to (drawn marked)
        self.empty_text = "Select a buddy to start chatting."

    # --- public API -------------------------------------------------------------------------

    def open(
        self,
        peer: int,
        own_name: str,
        peer_name: str,
        loader: PageLoader,
        sender_name: Callable[[int], str] | None = None,
    ) -> None:
        """Show the conversation with ``peer``: its newest page, scrolled to the bottom.
        A room's: ``sender_name`` names the sender of each incoming message."""
        self.peer = peer
        self._loader = loader
        self.timeline = Timeline(
            own_name, peer_name, width=self._text_width(), sender_name=sender_name
        )
        self.search, self.marked = "", None
        self.show_newest()

    def show_newest(self) -> None:
        """The newest page, scrolled to the bottom (the marker and search highlight stay)."""
        if self._loader is None:
            return
        self.timeline.clear()
        self._newer, self._has_newer = None, False
        page = self._loader(None, FIRST_PAGE)
        self._has_more = len(page) >= FIRST_PAGE
        self.timeline.prepend(page)
        self._follow = True
        self._relayout()
        self.scroll_to(y=self.max_scroll_y, animate=False)

    def close(self) -> None:
        """Show no conversation."""
        self.peer = None
        self._loader = None
        self._has_more = self._has_newer = False
        self._newer = None
        self.search, self.marked = "", None
        self.timeline = Timeline("", "", width=self._text_width())
        self._relayout()

    def mark_new_messages(self, unread: int) -> None:
        """Draw the "new messages" line before the first of the ``unread`` newest incoming
        chat messages, paging back through the history when they are not all loaded (the
        pages read for that are not kept). 0: no marker."""
        first: HistoryEntry | None = None
        if unread > 0 and self._loader is not None:
            batch = list(self.timeline.entries)
            oldest: HistoryEntry | None = None  # fewer than counted: the oldest incoming
            while batch:
                first, unread = count_back_unread(batch, unread)
                if first is not None:
                    break
                oldest = next((e for e in batch if _incoming_chat(e)), oldest)
                batch = self._loader(batch[0].local_id, OLDER_PAGE)
            first = first or oldest
        self.timeline.set_marker(first.local_id if first is not None else None)
        self._relayout()
        if self._follow:
            self.scroll_to(y=self.max_scroll_y, animate=False)

    def jump_to_marker(self, newer: NewerLoader) -> bool:
        """Show the "new messages" line (loading its pages if needed); False if none."""
        marker = self.timeline.marker
        return marker is not None and self.jump_to(marker, newer, mark=False)

    def jump_to(self, local_id: int, newer: NewerLoader, *, mark: bool = True) -> bool:
        """Show message ``local_id``: when it is not loaded, the pages around it replace
        the view (then paging works both ways). It is drawn marked (``mark``) until the
        next key or scroll. False if the conversation has no such message."""
        if self._loader is None:
            return False
        if local_id not in self.timeline:
            older = self._loader(local_id + 1, AROUND + 1)  # it and AROUND older ones
            if not older or older[-1].local_id != local_id:
                return False
            after = newer(local_id, AROUND)
            self.timeline.clear()
            self.timeline.prepend(older + after)
            self._has_more = len(older) > AROUND
            self._newer, self._has_newer = newer, len(after) >= AROUND
            self._relayout()
        self.marked = local_id if mark else None
        head = self.timeline.head_line(local_id)
        if head is None:
            return False
        if not mark:
            head = self.timeline.marker_line() or head
        self._follow = False
        self.scroll_to(y=max(0, head - self.scrollable_content_region.height // 3), animate=False)
        self.refresh()
        return True

    def highlight(self, text: str) -> None:
        """Highlight every occurrence of ``text`` in the shown lines ("" for none)."""
        self.search = text
        self.refresh()

    def action_clear_search(self) -> None:
        self.search, self.marked = "", None
        self.refresh()

    def add(self, entry: HistoryEntry) -> None:
        """A new message, or a new state of a shown one (for this view's peer only)."""
        if entry.peer != self.peer or entry.local_id is None:
            return
        if entry.local_id not in self.timeline and self._older_than_shown(entry):
            return  # an old message not loaded yet: it appears when paged in
        if entry.local_id not in self.timeline and self._has_newer:
            if not (entry.outgoing and entry.state is MessageState.PENDING):
                return  # beyond the window of a jump: it appears when paged in
            self.show_newest()  # the user just sent it: show where it went
        follow = self._follow or self.max_scroll_y == 0
        changed = self.timeline.upsert(entry)
        if changed is not None and len(self.timeline) == self.virtual_size.height:
            for index in changed:
                self.refresh_line(index)
            return
        self._relayout()
        if follow:
            self.scroll_to(y=self.max_scroll_y, animate=False)

    def failed_messages(self) -> list[HistoryEntry]:
        return self.timeline.failed()

    def load_older(self) -> int:
        """Load one older page now (normally triggered by scrolling); returns lines added."""
        if self._loader is None or not self._has_more:
            return 0
        before = self.timeline.first_local_id
        page = self._loader(before, OLDER_PAGE)
        self._has_more = len(page) >= OLDER_PAGE
        added = self.timeline.prepend(page)
        if added:
            y = self.scroll_y + added
            self._relayout()
            self.set_scroll(None, min(y, self.max_scroll_y))
        return added

    def load_newer(self) -> int:
        """Load one newer page of a jump's window (triggered by scrolling to the bottom);
        returns lines added (below: the scroll position stays)."""
        last = self.timeline.last_local_id
        if self._newer is None or not self._has_newer or last is None:
            return 0
        page = self._newer(last, OLDER_PAGE)
        self._has_newer = len(page) >= OLDER_PAGE
        before = len(self.timeline)
        self.timeline.prepend(page)  # merges newer entries in order
        self._relayout()
        return len(self.timeline) - before

    @property
    def has_more(self) -> bool:
        return self._has_more

    @property
    def has_newer(self) -> bool:
        return self._has_newer

    # --- layout and drawing -----------------------------------------------------------------

    def _text_width(self) -> int:
        width = self.scrollable_content_region.width
        return width if width > GUTTER else 80

    def _older_than_shown(self, entry: HistoryEntry) -> bool:
        first = self.timeline.first_local_id
        return self._has_more and first is not None and (entry.local_id or 0) < first

    def _relayout(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.timeline))
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        follow = self._follow
        width = self.scrollable_content_region.width
        if width > GUTTER:
            self.timeline.set_width(width)
        self._relayout()
        if follow:
            self.scroll_to(y=self.max_scroll_y, animate=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._follow = new_value >= self.max_scroll_y and not self._has_newer
        height = self.scrollable_content_region.height
        if new_value < height and self._has_more and not self._loading:
            self._loading = True
            self.call_later(self._load_later, self.load_older)
        elif new_value > self.max_scroll_y - height and self._has_newer and not self._loading:
            self._loading = True
            self.call_later(self._load_later, self.load_newer)

    def _load_later(self, load: Callable[[], int]) -> None:
        try:
            load()
        finally:
            self._loading = False

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        timeline = self.timeline
        index = self.scroll_offset.y + y
        if not timeline.lines:
            if y == 1 and self.empty_text:
                text = f"  {self.empty_text}"
                return Strip([Segment(text, self._style("empty"))]).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        if index >= len(timeline.lines):
            return Strip.blank(width, base)
        line = timeline.lines[index]
        spans = highlight(line.spans, self.search, _NOT_SEARCHED) if self.search else line.spans
        segments = [Segment(text, self._style(key)) for text, key in spans]
        if self.marked is not None and line.local_id == self.marked:
            marked = self._style("marked")
            segments = [Segment(seg.text, (seg.style or base) + marked) for seg in segments]
            return Strip(segments).adjust_cell_length(width, base + marked)
        return Strip(segments).adjust_cell_length(width, base)

    def on_key(self, event: events.Key) -> None:
        self._unmark()  # the mark of a jump lasts until the next key or scroll

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._unmark()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._unmark()

    def _unmark(self) -> None:
        if self.marked is not None:
            self.marked = None
            self.refresh()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        entry = self.timeline.entry_at(self.scroll_offset.y + offset.y)
        if entry is not None and entry.outgoing and entry.state is MessageState.FAILED:
            self.post_message(self.ResendRequested(entry))
        elif entry is not None and entry.type in FILE_TYPES:
            self.post_message(self.FileClicked(entry))
        else:
            self._read_all([self.scroll_offset.y + offset.y])

    def action_read_all(self) -> None:
        """Enter: the lowest message on screen that is shown cut, whole, in a dialog."""
        top = self.scroll_offset.y
        self._read_all(range(top, top + self.scrollable_content_region.height))

    def _read_all(self, lines: Iterable[int]) -> None:
        from tui.dialogs.full_message import FullMessageDialog, author, cut_message  # lazily

        entry = cut_message(self.timeline, lines)
        if entry is not None:
            self.app.push_screen(FullMessageDialog(entry, author(self.timeline, entry)))
