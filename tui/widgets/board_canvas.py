"""``BoardCanvas``: one conversation's drawing board, drawn with Textual's Line API.

Drawing: with the mouse (press, drag, release: every drag step is one segment from the
previous cell to the current one) or with the keyboard alone (arrows move a cursor, Space
puts the pen down or lifts it; moves with the pen down draw). Each segment is drawn on the
board at once and announced with :class:`BoardCanvas.Drawn` so that the owner sends it.

Invariants:
- The canvas shows a :class:`~tui.state.board.Board` it does not own (the pane's book
  does); whoever changes that board passes the changed cells to :meth:`cells_changed`, and
  only those cells are repainted (coalesced: one repaint per batch of changes).
- Only visible rows are rendered (``render_line``); a board larger than the view scrolls,
  and the keyboard cursor is kept in view.
- Every segment it emits carries its brush, so peers draw exactly the same characters
  (line mode sends the ``─ │ ╱ ╲`` it chose); coordinates stay within the wire format's
  range, and a segment wholly outside the board is neither drawn nor sent.
- The board's cells are single-width characters (a model invariant), so a row of the board
  is one row of terminal cells and nothing from the network is parsed as markup.
- The canvas runs its own key bindings where the key arrives (:meth:`BoardCanvas.on_key`)
  instead of letting the key bubble up to the App, where Textual resolves bindings: on its
  way the key would queue behind whatever the screen is busy with (a flood of incoming
  strokes), and drawing must stay responsive. The bindings are still declared in
  ``BINDINGS``, so the Footer and the help screen show them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import ClassVar

from rich.segment import Segment as RichSegment
from textual import events
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.geometry import Offset, Region, Size
from textual.message import Message
from textual.strip import Strip

from protocol.validation import MAX_BOARD_COORDINATE, Segment
from tui.state.board import ERASER, Board, Cell, clip_range, line_char
from tui.widgets.styled_lines import StyledLinesView

BRUSHES = ("█", "#", "*", ".", "o")
FULL_REPAINT_CELLS = 256  # above this many dirty visible cells, repaint the whole view
FAST_STEP = 5  # cells per Shift+arrow


class BrushMode(enum.Enum):
    BRUSH = "brush"
    LINE = "line"
    ERASER = "eraser"


_PREFIX = "board-canvas--"  # component classes: board-canvas--<style key>
_STYLE_KEYS = ("ink", "cursor", "pen", "outside", "empty")


def _coordinate(value: int) -> int:
    return max(-MAX_BOARD_COORDINATE, min(MAX_BOARD_COORDINATE, value))


class BoardCanvas(StyledLinesView, can_focus=True):
    """The board of one conversation; see the module docstring."""

    ALLOW_SELECT = False
    STYLE_PREFIX: ClassVar[str] = _PREFIX
    COMPONENT_CLASSES: ClassVar[set[str]] = {f"{_PREFIX}{key}" for key in _STYLE_KEYS}

    DEFAULT_CSS = """
    BoardCanvas {
        height: 1fr;
        overflow: auto auto;
        background: $surface;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        & > .board-canvas--ink { color: $foreground; }
        & > .board-canvas--cursor { background: $accent 35%; }
        & > .board-canvas--pen { background: $accent; color: $text; }
        & > .board-canvas--outside { background: $background; }
        & > .board-canvas--empty { color: $text-muted; text-style: italic; }
    }
    BoardCanvas:focus {
        border: round $accent;
        border-title-color: $text-accent;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_pen", "Pen up/down"),
        Binding("b", "next_brush", "Brush"),
        Binding("l", "line_mode", "Lines"),
        Binding("e", "eraser", "Eraser"),
        Binding("up", "move(0, -1)", show=False),
        Binding("down", "move(0, 1)", show=False),
        Binding("left", "move(-1, 0)", show=False),
        Binding("right", "move(1, 0)", show=False),
        Binding("shift+up", f"move(0, -{FAST_STEP})", show=False),
        Binding("shift+down", f"move(0, {FAST_STEP})", show=False),
        Binding("shift+left", f"move(-{FAST_STEP}, 0)", show=False),
        Binding("shift+right", f"move({FAST_STEP}, 0)", show=False),
    ]

    _KEY_ACTIONS: ClassVar[dict[str, str]] = {
        key.strip(): binding.action
        for binding in BINDINGS
        if isinstance(binding, Binding)
        for key in binding.key.split(",")
    }

    class Drawn(Message):
        """A segment was drawn on ``peer``'s board by this user: send it."""

        def __init__(self, peer: int, segment: Segment) -> None:
            super().__init__()
            self.peer = peer
            self.segment = segment

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.board: Board | None = None
        self.peer: int | None = None
        self.cursor: Cell = (0, 0)
        self.pen_down = False
        self.mode = BrushMode.BRUSH
        self.brush_index = 0
        self.note = ""  # extra status text from the owner (e.g. strokes not sent)
        self.empty_text = "Select a buddy to draw together."
        self._drag_last: Cell | None = None
        self._dirty: set[Cell] = set()
        self._flush_scheduled = False

    # --- public API -------------------------------------------------------------------------

    def show(self, peer: int, board: Board, title: Content) -> None:
        """Show ``peer``'s ``board`` (the pen goes up, the cursor stays on the board)."""
        self.peer = peer
        self.board = board
        self.pen_down = False
        self._end_drag()
        x, y = self.cursor
        self.cursor = (min(x, board.width - 1), min(y, board.height - 1))
        self.border_title = title
        self.virtual_size = Size(board.width, board.height)
        self._dirty.clear()
        self.refresh()
        self.update_status()

    def show_none(self) -> None:
        self.peer = None
        self.board = None
        self.pen_down = False
        self._end_drag()
        self.border_title = "Board"
        self.virtual_size = Size(0, 0)
        self._dirty.clear()
        self.refresh()
        self.update_status()

    @property
    def brush(self) -> str:
        """The character a move draws now (line mode: chosen per segment)."""
        if self.mode is BrushMode.ERASER:
            return ERASER
        return BRUSHES[self.brush_index]

    def cells_changed(self, cells: Iterable[Cell]) -> None:
        """These cells of the shown board changed: repaint them (soon, in one go)."""
        self._dirty.update(cells)
        if self._dirty and not self._flush_scheduled:
            self._flush_scheduled = True
            self.call_later(self._flush)

    def update_status(self) -> None:
        """Refresh the subtitle: brush, pen, cursor and the ignored-segments count."""
        board = self.board
        if board is None:
            self.border_subtitle = None
            return
        if self.mode is BrushMode.LINE:
            brush = "lines ─│╱╲"
        elif self.mode is BrushMode.ERASER:
            brush = "eraser"
        else:
            brush = f"brush {self.brush}"
        x, y = self.cursor
        parts = [brush, "pen down" if self.pen_down else "pen up", f"{x},{y}"]
        if board.malformed_count:
            parts.append(f"{board.malformed_count} ignored")
        if self.note:
            parts.append(self.note)
        self.border_subtitle = Content(" · ".join(parts))

    # --- drawing ----------------------------------------------------------------------------

    def _stroke(self, start: Cell, end: Cell) -> None:
        board, peer = self.board, self.peer
        if board is None or peer is None:
            return
        x0, y0 = (_coordinate(v) for v in start)
        x1, y1 = (_coordinate(v) for v in end)
        if self.mode is BrushMode.LINE:
            if (x0, y0) == (x1, y1):
                return  # a direction is needed to choose the character
            brush = line_char(x0, y0, x1, y1)
        else:
            brush = self.brush
        if not clip_range(x0, y0, x1, y1, board.width, board.height):
            return
        segment = Segment(x0, y0, x1, y1, brush)
        self.cells_changed(board.apply(segment))
        self.post_message(self.Drawn(peer, segment))

    def _set_cursor(self, cell: Cell, *, scroll: bool = True) -> None:
        board = self.board
        if board is None:
            return
        x = max(0, min(board.width - 1, cell[0]))
        y = max(0, min(board.height - 1, cell[1]))
        old, self.cursor = self.cursor, (x, y)
        self.cells_changed((old, self.cursor))
        if scroll:
            self.scroll_to_region(Region(x, y, 1, 1), animate=False, immediate=True)
        self.update_status()

    # --- keyboard ---------------------------------------------------------------------------

    async def on_key(self, event: events.Key) -> None:
        action = self._KEY_ACTIONS.get(event.key)
        if action is not None:
            event.stop()
            event.prevent_default()
            await self.run_action(action)

    def action_move(self, dx: int, dy: int) -> None:
        board = self.board
        if board is None:
            return
        start = self.cursor
        self._set_cursor((start[0] + dx, start[1] + dy))
        if self.pen_down and self.cursor != start:
            self._stroke(start, self.cursor)

    def action_toggle_pen(self) -> None:
        if self.board is None:
            return
        self.pen_down = not self.pen_down
        if self.pen_down:
            self._stroke(self.cursor, self.cursor)
        self.cells_changed((self.cursor,))
        self.update_status()

    def action_next_brush(self) -> None:
        if self.mode is BrushMode.BRUSH:
            self.brush_index = (self.brush_index + 1) % len(BRUSHES)
        self.mode = BrushMode.BRUSH
        self.update_status()

    def action_line_mode(self) -> None:
        self.mode = BrushMode.LINE
        self.update_status()

    def action_eraser(self) -> None:
        self.mode = BrushMode.ERASER
        self.update_status()

    # --- mouse ------------------------------------------------------------------------------

    def _cell(self, offset: Offset) -> Cell:
        scroll = self.scroll_offset
        return offset.x + scroll.x, offset.y + scroll.y

    def on_mouse_down(self, event: events.MouseDown) -> None:
        if event.button != 1 or self.board is None:
            return
        offset = event.get_content_offset(self)
        if offset is None:
            return  # the border or a scrollbar
        event.stop()
        self.focus()
        cell = self._cell(offset)
        self.capture_mouse()
        self._drag_last = cell
        self._set_cursor(cell, scroll=False)
        self._stroke(cell, cell)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        last = self._drag_last
        if last is None:
            return
        if event.button != 1:  # released where we could not see it
            self._end_drag()
            return
        cell = self._cell(event.get_content_offset_capture(self))
        if cell != last:
            self._stroke(last, cell)
            self._drag_last = cell
            self._set_cursor(cell, scroll=False)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        last = self._drag_last
        if last is None:
            return
        cell = self._cell(event.get_content_offset_capture(self))
        if cell != last:
            self._stroke(last, cell)
            self._set_cursor(cell, scroll=False)
        self._end_drag()

    def on_mouse_release(self, event: events.MouseRelease) -> None:
        self._drag_last = None

    def _end_drag(self) -> None:
        if self._drag_last is not None:
            self._drag_last = None
            if self.app.mouse_captured is self:
                self.release_mouse()

    # --- painting ---------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        if not dirty or self.board is None:
            return
        sx, sy = self.scroll_offset
        view = self.scrollable_content_region
        rows: dict[int, list[int]] = {}
        for x, y in dirty:
            if sx <= x < sx + view.width and sy <= y < sy + view.height:
                rows.setdefault(y - sy, []).append(x - sx)
        if sum(len(xs) for xs in rows.values()) > FULL_REPAINT_CELLS:
            self.refresh()
            return
        regions = []
        for y, xs in rows.items():
            xs.sort()
            start = prev = xs[0]
            for x in xs[1:]:
                if x != prev + 1:
                    regions.append(Region(start, y, prev - start + 1, 1))
                    start = x
                prev = x
            regions.append(Region(start, y, prev - start + 1, 1))
        if regions:
            self.refresh(*regions)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        board = self.board
        if board is None:
            if y == 1 and self.empty_text:
                text = f"  {self.empty_text}"
                return Strip([RichSegment(text, self._style("empty"))]).adjust_cell_length(
                    width, self.rich_style
                )
            return Strip.blank(width, self.rich_style)
        outside = self._style("outside")
        sx, sy = self.scroll_offset
        row = sy + y
        if not 0 <= row < board.height:
            return Strip.blank(width, outside)
        text = board.row_text(row)[sx : sx + width]
        ink = self._style("ink")
        cx, cy = self.cursor
        if cy == row and sx <= cx < sx + len(text):
            i = cx - sx
            mark = self._style("pen" if self.pen_down else "cursor")
            segments = [
                RichSegment(text[:i], ink),
                RichSegment(text[i], mark),
                RichSegment(text[i + 1 :], ink),
            ]
        else:
            segments = [RichSegment(text, ink)]
        # Board cells are single-width by invariant: the cell length is the text length.
        return Strip(segments, len(text)).adjust_cell_length(width, outside)
