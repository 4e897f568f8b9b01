"""Tests for the pure drawing-board model (tui/state/board.py)."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.validation import (
    MAX_BOARD_COORDINATE,
    ClearBoard,
    Segment,
    format_graphics,
)
from tui.state.board import (
    BLANK,
    DEFAULT_BRUSH,
    ERASER,
    MAX_BOARD_SIDE,
    POINT_CHAR,
    Board,
    clip_range,
    line_char,
    rasterize,
)

coord = st.integers(-60, 60)
big_coord = st.integers(-MAX_BOARD_COORDINATE, MAX_BOARD_COORDINATE)
side = st.integers(1, 40)

# --- Bresenham --------------------------------------------------------------------------------

# Octant 1 (shallow, right-down) by hand: m(i) = floor((4i + 5) / 10) for (0,0)->(5,2).
SHALLOW = [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)]


def _flip(points: list[tuple[int, int]], sx: int, sy: int, swap: bool) -> list[tuple[int, int]]:
    return [((y, x) if swap else (x, y)) for x, y in ((sx * px, sy * py) for px, py in points)]


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        ((5, 2), SHALLOW),
        ((2, 5), [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)]),
        ((-2, 5), [(0, 0), (0, 1), (-1, 2), (-1, 3), (-2, 4), (-2, 5)]),
        ((-5, 2), [(0, 0), (-1, 0), (-2, 1), (-3, 1), (-4, 2), (-5, 2)]),
        ((-5, -2), [(0, 0), (-1, 0), (-2, -1), (-3, -1), (-4, -2), (-5, -2)]),
        ((-2, -5), [(0, 0), (0, -1), (-1, -2), (-1, -3), (-2, -4), (-2, -5)]),
        ((2, -5), [(0, 0), (0, -1), (1, -2), (1, -3), (2, -4), (2, -5)]),
        ((5, -2), [(0, 0), (1, 0), (2, -1), (3, -1), (4, -2), (5, -2)]),
    ],
)
def test_bresenham_all_eight_octants(end: tuple[int, int], expected: list[tuple[int, int]]) -> None:
    assert rasterize(0, 0, *end) == expected


def test_octant_table_is_the_symmetric_image_of_the_first_octant() -> None:
    for sx in (1, -1):
        for sy in (1, -1):
            for swap in (False, True):
                x1, y1 = _flip([(5, 2)], sx, sy, swap)[0]
                assert rasterize(0, 0, x1, y1) == _flip(SHALLOW, sx, sy, swap)


def test_bresenham_other_slopes_and_offsets() -> None:
    assert rasterize(0, 0, 7, 3) == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (6, 3), (7, 3)]
    assert rasterize(10, 20, 13, 23) == [(10, 20), (11, 21), (12, 22), (13, 23)]
    assert rasterize(3, 3, 0, 0) == [(3, 3), (2, 2), (1, 1), (0, 0)]


def test_axis_aligned_and_single_point() -> None:
    assert rasterize(2, 5, 6, 5) == [(2, 5), (3, 5), (4, 5), (5, 5), (6, 5)]
    assert rasterize(6, 5, 2, 5) == [(6, 5), (5, 5), (4, 5), (3, 5), (2, 5)]
    assert rasterize(1, 0, 1, 3) == [(1, 0), (1, 1), (1, 2), (1, 3)]
    assert rasterize(1, 3, 1, 0) == [(1, 3), (1, 2), (1, 1), (1, 0)]
    assert rasterize(4, -7, 4, -7) == [(4, -7)]


@given(coord, coord, coord, coord)
def test_rasterize_properties(x0: int, y0: int, x1: int, y1: int) -> None:
    points = rasterize(x0, y0, x1, y1)
    assert points[0] == (x0, y0)
    assert points[-1] == (x1, y1)
    assert len(points) == max(abs(x1 - x0), abs(y1 - y0)) + 1
    assert len(set(points)) == len(points)
    for (ax, ay), (bx, by) in pairwise(points):
        assert max(abs(ax - bx), abs(ay - by)) == 1
    back = rasterize(x1, y1, x0, y0)
    assert len(back) == len(points)
    assert back[0] == (x1, y1) and back[-1] == (x0, y0)


# --- clipping ---------------------------------------------------------------------------------


@given(coord, coord, coord, coord, side, side)
def test_clipped_drawing_equals_unclipped_line_filtered(
    x0: int, y0: int, x1: int, y1: int, width: int, height: int
) -> None:
    board = Board(width, height)
    changed = board.apply(Segment(x0, y0, x1, y1))
    visible = [(x, y) for x, y in rasterize(x0, y0, x1, y1) if 0 <= x < width and 0 <= y < height]
    assert changed == set(visible)
    assert board.last_cells_visited == len(visible)
    assert [rasterize(x0, y0, x1, y1)[i] for i in clip_range(x0, y0, x1, y1, width, height)] == (
        visible
    )
    for x, y in visible:
        assert board.cell(x, y) == DEFAULT_BRUSH


@given(big_coord, big_coord, big_coord, big_coord, side, side)
def test_huge_segments_only_visit_visible_cells(
    x0: int, y0: int, x1: int, y1: int, width: int, height: int
) -> None:
    board = Board(width, height)
    changed = board.apply(Segment(x0, y0, x1, y1))
    assert board.last_cells_visited == len(changed) <= max(width, height)


def test_segment_partly_outside() -> None:
    board = Board(5, 3)
    assert board.apply(Segment(-3, 1, 10, 1, "#")) == {(x, 1) for x in range(5)}
    assert board.to_text() == "\n#####"
    assert board.last_cells_visited == 5


def test_segment_entirely_outside_changes_nothing() -> None:
    board = Board(10, 10)
    for seg in (
        Segment(-5, -5, -1, -1),
        Segment(10, 0, 20, 9),
        Segment(-10_000, -1, 10_000, -1),
        Segment(-10_000, 10, 10_000, 10),
        Segment(-1, -10_000, -1, 10_000),
        Segment(-10_000, 10_000, -9_000, 10_000),
        Segment(-10_000, -9_000, 10_000, 11_000),  # parallel to the diagonal, misses the board
    ):
        assert board.apply(seg) == set()
        assert board.last_cells_visited == 0
    assert board.to_text() == ""


def test_huge_diagonals_cost_only_their_visible_part() -> None:
    board = Board(80, 24)
    assert len(board.apply(Segment(-10_000, -10_000, 10_000, 10_000))) == 24
    assert board.last_cells_visited == 24
    assert board.apply(Segment(-10_000, 10_000, 10_000, -10_000, "+")) == {(0, 0)}
    assert board.last_cells_visited == 1
    board.apply(Segment(-10_000, 5, 10_000, 5))
    assert board.last_cells_visited == 80


# --- brushes, clear, line mode ----------------------------------------------------------------


def test_brushes_eraser_and_changed_set() -> None:
    board = Board(4, 2)
    assert board.apply(Segment(0, 0, 3, 0, "*")) == {(0, 0), (1, 0), (2, 0), (3, 0)}
    assert board.apply(Segment(0, 0, 3, 0, "*")) == set()  # nothing changed: nothing to repaint
    assert board.apply(Segment(1, 0, 2, 0), default_brush=ERASER) == {(1, 0), (2, 0)}
    assert board.row_text(0) == "*  *"
    with pytest.raises(ValueError):
        board.apply(Segment(0, 0, 1, 1), default_brush="ab")
    with pytest.raises(ValueError):
        board.apply(Segment(0, 0, 1, 1, "\x1b"))


def test_clear_returns_the_cells_that_were_drawn() -> None:
    board = Board(6, 4)
    board.apply(Segment(0, 0, 2, 0, "x"))
    board.apply(Segment(5, 3, 5, 3, "y"))
    assert board.apply(ClearBoard()) == {(0, 0), (1, 0), (2, 0), (5, 3)}
    assert board.apply_text("clear") == set()
    assert all(board.row_text(y) == BLANK * 6 for y in range(4))


@pytest.mark.parametrize(
    ("end", "char"),
    [
        ((5, 0), "─"),
        ((-5, 0), "─"),
        ((6, 3), "─"),
        ((-6, -2), "─"),
        ((0, 5), "│"),
        ((0, -5), "│"),
        ((2, 7), "│"),
        ((-3, -6), "│"),
        ((3, -3), "╱"),
        ((-3, 3), "╱"),
        ((4, -3), "╱"),
        ((3, 3), "╲"),
        ((-3, -3), "╲"),
        ((-3, -4), "╲"),
        ((0, 0), POINT_CHAR),
    ],
)
def test_line_char_directions(end: tuple[int, int], char: str) -> None:
    assert line_char(10, 10, 10 + end[0], 10 + end[1]) == char


def test_line_mode_brush_draws_box_characters() -> None:
    board = Board(5, 5)
    for x0, y0, x1, y1 in ((0, 4, 4, 0), (0, 2, 4, 2)):
        board.apply(Segment(x0, y0, x1, y1, line_char(x0, y0, x1, y1)))
    assert board.to_text() == "    ╱\n   ╱\n─────\n ╱\n╱"


# --- wire text --------------------------------------------------------------------------------


@given(big_coord, big_coord, big_coord, big_coord, st.sampled_from([None, "#", "x", "█", " "]))
def test_format_then_apply_text_equals_apply(
    x0: int, y0: int, x1: int, y1: int, brush: str | None
) -> None:
    seg = Segment(x0, y0, x1, y1, brush)
    a, b = Board(30, 20), Board(30, 20)
    assert a.apply_text(format_graphics(seg)) == b.apply(seg)
    assert a.snapshot() == b.snapshot()
    assert a.malformed_count == 0


MALFORMED = [
    "",
    "1,2,3",
    "a,b,c,d",
    "1,2,3,4,##",
    "1,2,3,4,",
    "1, 2,3,4",
    "1,2,3,4,\x1b",
    "\x1b[31m1,2,3,4",
    "1,2,3,4,\x1b[2J",
    "1,2,3,4,\u202e",
    "1,2,3,4,漢",
    "clear ",
    "CLEAR",
    "10001,0,0,0",
    "0,0,0,-10001",
    "1.5,2,3,4",
    "x" * 10_000,
    "1,2,3,4,5,6",
]


def test_malformed_messages_are_counted_and_never_raise() -> None:
    board = Board(10, 10)
    for msg in MALFORMED:
        assert board.apply_text(msg) == set()
    assert board.malformed_count == len(MALFORMED)
    assert board.to_text() == ""


@given(st.text(max_size=80))
def test_apply_text_never_raises_and_only_writes_safe_chars(msg: str) -> None:
    board = Board(12, 12)
    board.apply_text(msg)
    assert all(ch.isprintable() for ch in board.to_text().replace("\n", ""))


# --- export, snapshot, resize -----------------------------------------------------------------


def test_to_text_strips_trailing_blanks_and_rows() -> None:
    board = Board(8, 6)
    assert board.to_text() == ""
    board.apply_text("1,1,3,1,#")
    board.apply_text("0,3,0,3,@")
    assert board.to_text() == "\n ###\n\n@"
    assert board.row_text(1) == " ###    "
    assert board.cell(2, 1) == "#" and board.cell(7, 5) == BLANK
    with pytest.raises(IndexError):
        board.cell(8, 0)
    with pytest.raises(IndexError):
        board.row_text(-1)


def test_snapshot_round_trip_through_json() -> None:
    board = Board(20, 10)
    board.apply_text("0,0,19,9")
    board.apply_text("0,9,19,0,╱")
    board.apply_text("3,3,3,3, ")
    snap = board.snapshot()
    restored = Board.from_snapshot(json.loads(json.dumps(snap)))
    assert (restored.width, restored.height) == (20, 10)
    assert all(restored.row_text(y) == board.row_text(y) for y in range(10))
    assert Board.from_snapshot(Board(3, 3).snapshot()).to_text() == ""
    assert Board(3, 3).snapshot() == {"width": 3, "height": 3, "rows": []}


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"width": 3, "height": 3},
        {"width": "3", "height": 3, "rows": []},
        {"width": 0, "height": 3, "rows": []},
        {"width": 3, "height": 3, "rows": ["abcd"]},
        {"width": 3, "height": 1, "rows": ["a", "b"]},
        {"width": 3, "height": 3, "rows": [1]},
        {"width": 3, "height": 3, "rows": ["\x1b"]},
        {"width": 3, "height": 3, "rows": "abc"},
        {"width": True, "height": 3, "rows": []},
    ],
)
def test_from_snapshot_rejects_malformed_data(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Board.from_snapshot(data)


def test_resize_keeps_what_fits() -> None:
    board = Board(6, 4)
    board.apply_text("0,0,5,3,#")
    before = board.to_text()
    assert before == "#\n ##\n   ##\n     #"
    board.resize(10, 8)
    assert (board.width, board.height) == (10, 8)
    assert board.to_text() == before
    board.resize(3, 2)
    assert board.to_text() == "#\n ##"
    board.resize(6, 4)
    assert board.to_text() == "#\n ##"  # what was cut off does not come back
    board.apply_text("0,0,100,100")
    assert board.last_cells_visited == 4


def test_board_size_bounds() -> None:
    Board(1, 1)
    Board(MAX_BOARD_SIDE, MAX_BOARD_SIDE)
    for w, h in ((0, 1), (1, 0), (MAX_BOARD_SIDE + 1, 1), (1, -3)):
        with pytest.raises(ValueError):
            Board(w, h)
    with pytest.raises(ValueError):
        Board(2, 2).resize(0, 2)
