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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from tui.client.history import HistoryEntry, MessageState
from tui.timeline import FILE_TYPES, GUTTER, Timeline
from tui.widgets.styled_lines import StyledLinesView

# (before local_id or None for the newest, limit) → entries oldest first
PageLoader = Callable[[int | None, int], list[HistoryEntry]]

FIRST_PAGE = 100
OLDER_PAGE = 200

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
)


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
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "screen.focus_pane('buddies')", "Buddies", show=False),
        Binding("right", "screen.focus_pane('composer')", "Composer", show=False),
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
        page = loader(None, FIRST_PAGE)
        self._has_more = len(page) >= FIRST_PAGE
        self.timeline.prepend(page)
        self._follow = True
        self._relayout()
        self.scroll_to(y=self.max_scroll_y, animate=False)

    def close(self) -> None:
        """Show no conversation."""
        self.peer = None
        self._loader = None
        self._has_more = False
        self.timeline = Timeline("", "", width=self._text_width())
        self._relayout()

    def add(self, entry: HistoryEntry) -> None:
        """A new message, or a new state of a shown one (for this view's peer only)."""
        if entry.peer != self.peer or entry.local_id is None:
            return
        if entry.local_id not in self.timeline and self._older_than_shown(entry):
            return  # an old message not loaded yet: it appears when paged in
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

    @property
    def has_more(self) -> bool:
        return self._has_more

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
        self._follow = new_value >= self.max_scroll_y
        if (
            new_value < self.scrollable_content_region.height
            and self._has_more
            and not self._loading
        ):
            self._loading = True
            self.call_later(self._load_older_later)

    def _load_older_later(self) -> None:
        try:
            self.load_older()
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
        segments = [Segment(text, self._style(key)) for text, key in line.spans]
        return Strip(segments).adjust_cell_length(width, base)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        entry = self.timeline.entry_at(self.scroll_offset.y + offset.y)
        if entry is not None and entry.outgoing and entry.state is MessageState.FAILED:
            self.post_message(self.ResendRequested(entry))
        elif entry is not None and entry.type in FILE_TYPES:
            self.post_message(self.FileClicked(entry))
