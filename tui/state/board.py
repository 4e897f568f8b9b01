"""The shared drawing board as a pure model (PROTOCOL.md section 8): no Textual, no I/O.

Invariants:
- A board is ``width`` x ``height`` cells, both in ``1..MAX_BOARD_SIDE``; every cell holds
  exactly one printable, single-width character (``BLANK`` when empty).
- Coordinates are screen cells: ``x`` grows to the right, ``y`` grows downward.
- Drawing never raises for hostile input: segments are clipped to the board, malformed wire
  text is ignored and counted in :attr:`Board.malformed_count`.
- The work of drawing a segment is proportional to its *visible* part, never to its length.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from protocol.validation import ClearBoard, Segment, format_graphics, parse_graphics

MAX_BOARD_SIDE = 500
BLANK = " "
DEFAULT_BRUSH = "█"
ERASER = BLANK
POINT_CHAR = "·"

Cell = tuple[int, int]


class BoardSnapshot(TypedDict):
    """Serialisable board state: rows with trailing blanks stripped, trailing blank rows dropped."""

    width: int
    height: int
    rows: list[str]


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"board {name} must be an int")
        if not 1 <= value <= MAX_BOARD_SIDE:
            raise ValueError(f"board {name} must be 1-{MAX_BOARD_SIDE}, not {value}")


def _check_brush(brush: str) -> None:
    # format_graphics validates the brush exactly as the wire format does.
    if not isinstance(brush, str) or len(brush) != 1:
        raise ValueError("brush must be one character")
    format_graphics(Segment(0, 0, 0, 0, brush))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _walk(x0: int, y0: int, x1: int, y1: int, i_start: int, i_stop: int) -> list[Cell]:
    """Bresenham points ``i_start..i_stop`` (inclusive) along the major axis of a segment.

    Point ``i`` is ``i`` steps along the major axis; its minor offset is
    ``m(i) = floor((2*i*minor + major) / (2*major))`` (``i*minor/major`` rounded half up),
    which is what the incremental integer error term below maintains, so the walk may start
    at any ``i`` without visiting the points before it.
    """
    dx, dy = x1 - x0, y1 - y0
    sx, sy = (1 if dx >= 0 else -1), (1 if dy >= 0 else -1)
    adx, ady = abs(dx), abs(dy)
    x_major = adx >= ady
    major, minor = (adx, ady) if x_major else (ady, adx)
    if major == 0:
        return [(x0, y0)] if i_start <= 0 <= i_stop else []
    two_major = 2 * major
    num = 2 * i_start * minor + major
    m, err = divmod(num, two_major)
    points: list[Cell] = []
    for i in range(i_start, i_stop + 1):
        if x_major:
            points.append((x0 + sx * i, y0 + sy * m))
        else:
            points.append((x0 + sx * m, y0 + sy * i))
        err += 2 * minor
        if err >= two_major:
            err -= two_major
            m += 1
    return points


def rasterize(x0: int, y0: int, x1: int, y1: int) -> list[Cell]:
    """Bresenham's line from ``(x0, y0)`` to ``(x1, y1)``, both ends inclusive.

    Works in all octants; consecutive points are 8-neighbours and there are
    ``max(|dx|, |dy|) + 1`` of them. Ties (exactly half-way) round away from the start.
    """
    return _walk(x0, y0, x1, y1, 0, max(abs(x1 - x0), abs(y1 - y0)))


def _axis_range(start: int, step: int, size: int) -> tuple[int, int]:
    """The ``i`` with ``0 <= start + step*i <= size - 1`` (``step`` is +1 or -1)."""
    if step > 0:
        return -start, size - 1 - start
    return start - (size - 1), start


def clip_range(x0: int, y0: int, x1: int, y1: int, width: int, height: int) -> range:
    """The indices into :func:`rasterize` ``(x0, y0, x1, y1)`` whose points lie on the board.

    Computed in O(1) from the closed form of the minor offset, so the visible part of a
    segment is found without walking its invisible part. Empty if nothing is visible.
    """
    dx, dy = x1 - x0, y1 - y0
    sx, sy = (1 if dx >= 0 else -1), (1 if dy >= 0 else -1)
    adx, ady = abs(dx), abs(dy)
    n = max(adx, ady)
    if adx >= ady:
        major_lo, major_hi = _axis_range(x0, sx, width)
        minor_lo, minor_hi = _axis_range(y0, sy, height)
        major, minor = adx, ady
    else:
        major_lo, major_hi = _axis_range(y0, sy, height)
        minor_lo, minor_hi = _axis_range(x0, sx, width)
        major, minor = ady, adx
    lo, hi = max(0, major_lo), min(n, major_hi)
    if minor == 0:
        if not minor_lo <= 0 <= minor_hi:
            return range(0)
    else:
        # m(i) >= k  <=>  i >= ceil((2k - 1) * major / (2 * minor))
        # m(i) <= k  <=>  i <= ceil((2k + 1) * major / (2 * minor)) - 1
        lo = max(lo, _ceil_div((2 * minor_lo - 1) * major, 2 * minor))
        hi = min(hi, _ceil_div((2 * minor_hi + 1) * major, 2 * minor) - 1)
    return range(lo, hi + 1) if lo <= hi else range(0)


def line_char(x0: int, y0: int, x1: int, y1: int) -> str:
    """A box-drawing character for a segment's direction, for the "line" brush mode.

    ``─`` when the segment is within about 26.6° of horizontal (``2*|dy| <= |dx|``), ``│``
    likewise for vertical, otherwise ``╱`` when going up-right or down-left (``y`` grows
    downward) and ``╲`` when going down-right or up-left. A single point gives ``·``.
    """
    dx, dy = x1 - x0, y1 - y0
    if dx == 0 and dy == 0:
        return POINT_CHAR
    if 2 * abs(dy) <= abs(dx):
        return "─"
    if 2 * abs(dx) <= abs(dy):
        return "│"
    return "╱" if (dx > 0) != (dy > 0) else "╲"


class Board:
    """A grid of single-character cells that GRAPHICS commands draw on."""

    def __init__(self, width: int, height: int) -> None:
        _check_size(width, height)
        self.width = width
        self.height = height
        self._rows: list[list[str]] = [[BLANK] * width for _ in range(height)]
        self.malformed_count = 0
        self.last_cells_visited = 0
        """Cells the last :meth:`apply` examined (the cost of drawing, for tests)."""

    def cell(self, x: int, y: int) -> str:
        """The character at ``(x, y)``; ``IndexError`` outside the board."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise IndexError(f"cell ({x}, {y}) is outside the {self.width}x{self.height} board")
        return self._rows[y][x]

    def row_text(self, y: int) -> str:
        """Row ``y`` as a string of exactly ``width`` characters."""
        if not 0 <= y < self.height:
            raise IndexError(f"row {y} is outside the board")
        return "".join(self._rows[y])

    def to_text(self) -> str:
        """The board as text: rows joined with newlines, trailing blanks and blank rows cut."""
        lines = [self.row_text(y).rstrip(BLANK) for y in range(self.height)]
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)

    def apply(self, command: Segment | ClearBoard, default_brush: str = DEFAULT_BRUSH) -> set[Cell]:
        """Draw ``command`` and return the cells whose character changed.

        A segment uses its own brush, else ``default_brush`` (``ERASER`` erases); only its
        on-board part is drawn. ``clear`` blanks the board and returns the formerly
        non-blank cells. Raises ``ValueError`` only for an invalid brush character.
        """
        if isinstance(command, ClearBoard):
            changed = {
                (x, y)
                for y, row in enumerate(self._rows)
                for x, ch in enumerate(row)
                if ch != BLANK
            }
            self._rows = [[BLANK] * self.width for _ in range(self.height)]
            self.last_cells_visited = self.width * self.height
            return changed
        brush = command.brush if command.brush is not None else default_brush
        _check_brush(brush)
        x0, y0, x1, y1 = command.x0, command.y0, command.x1, command.y1
        visible = clip_range(x0, y0, x1, y1, self.width, self.height)
        points = _walk(x0, y0, x1, y1, visible.start, visible.stop - 1) if visible else []
        self.last_cells_visited = len(points)
        changed = set()
        for x, y in points:
            if self._rows[y][x] != brush:
                self._rows[y][x] = brush
                changed.add((x, y))
        return changed

    def apply_text(self, msg: str, default_brush: str = DEFAULT_BRUSH) -> set[Cell]:
        """Parse a GRAPHICS ``msg`` and apply it; malformed text is counted, never raised."""
        try:
            command = parse_graphics(msg)
        except (ValueError, TypeError):
            self.malformed_count += 1
            return set()
        return self.apply(command, default_brush)

    def resize(self, width: int, height: int) -> None:
        """Change the size, keeping the content of the top-left part that still fits."""
        _check_size(width, height)
        rows = [[BLANK] * width for _ in range(height)]
        for y in range(min(height, self.height)):
            keep = min(width, self.width)
            rows[y][:keep] = self._rows[y][:keep]
        self._rows = rows
        self.width, self.height = width, height

    def snapshot(self) -> BoardSnapshot:
        """A compact JSON-friendly copy of the board (see :class:`BoardSnapshot`)."""
        rows = [self.row_text(y).rstrip(BLANK) for y in range(self.height)]
        while rows and not rows[-1]:
            rows.pop()
        return {"width": self.width, "height": self.height, "rows": rows}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, object]) -> Board:
        """Rebuild a board from :meth:`snapshot` output (e.g. read back from JSON).

        The data is treated as untrusted: ``ValueError`` if any part of it is malformed.
        """
        if not isinstance(data, Mapping):
            raise ValueError("snapshot must be a mapping")
        width, height, rows = data.get("width"), data.get("height"), data.get("rows")
        if not isinstance(width, int) or not isinstance(height, int):
            raise ValueError("snapshot width and height must be ints")
        board = cls(width, height)
        if not isinstance(rows, list) or len(rows) > board.height:
            raise ValueError("snapshot rows must be a list of at most height rows")
        for row in rows:
            if not isinstance(row, str) or len(row) > board.width:
                raise ValueError("snapshot row must be a string of at most width characters")
        for ch in set("".join(rows)) - {BLANK}:
            _check_brush(ch)
        for y, row in enumerate(rows):
            board._rows[y][: len(row)] = list(row)
        return board
