"""What the terminal can show: UTF-8 or only ASCII, 16 colours or more; and how the app
adapts (an ASCII line filter, an ANSI-colour theme).

Detected once at start (:meth:`TerminalProfile.detect`) from the locale and the environment,
the way the terminal's output will actually be produced:

- Characters: Textual writes to ``sys.__stderr__``, whose encoding follows the locale; a
  non-UTF-8 locale (``LANG=en_US.ISO-8859-1``) or an explicit ``C``/``POSIX`` one
  (``LC_ALL=C``, where Python itself switches to UTF-8 but the terminal has not) turned
  every box-drawing character into ``\\u256d``-style garbage. In that case every line the
  app draws goes through :class:`AsciiFilter`.
- Colours: Rich (under Textual) reduces colours to the 16 ANSI ones unless ``COLORTERM``
  says truecolor or ``TERM`` ends in ``256color``/``kitty`` (``TERM=screen``, ``linux``,
  ``xterm``); the default theme's orange accent (focus, your own name) then becomes bright
  red, which reads as an error. With 16 colours the app uses :data:`ANSI_THEME`, whose
  colours are the terminal's own ANSI palette (Textual passes them through unconverted),
  with green as the accent and grey pane borders.

``PARLEY_ASCII=1``/``0`` and ``PARLEY_COLORS=16``/``256``/``truecolor`` override the
detection (also ``TEXTUAL_COLOR_SYSTEM``, which Textual itself honours).

Invariants:
- :class:`AsciiFilter` keeps every line's width in cells: a character becomes as many ASCII
  characters as it had cells (a wide one two, a combining one none), so layouts and borders
  stay aligned. Its output is pure ASCII.
- No I/O and no state beyond the frozen profile; nothing here imports the app.
"""

from __future__ import annotations

import codecs
import locale
import os
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len
from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter
from textual.theme import BUILTIN_THEMES, Theme

_ANSI_DARK = BUILTIN_THEMES["ansi-dark"]  # Textual's theme of native ANSI colours
# ... whose accent (focus, your own name) is green; its "panel" colours are transparent,
# which would make the pane borders (``$panel-lighten-2``) invisible: grey instead.
ANSI_THEME = Theme(
    name="parley-ansi",
    ansi=True,
    dark=True,
    primary=_ANSI_DARK.primary,
    secondary=_ANSI_DARK.secondary,
    warning=_ANSI_DARK.warning,
    error=_ANSI_DARK.error,
    success=_ANSI_DARK.success,
    accent=_ANSI_DARK.accent,
    foreground=_ANSI_DARK.foreground,
    background=_ANSI_DARK.background,
    surface=_ANSI_DARK.surface,
    panel=_ANSI_DARK.panel,
    boost=_ANSI_DARK.boost,
    variables={
        **_ANSI_DARK.variables,
        "panel-lighten-1": "ansi_bright_black",
        "panel-lighten-2": "ansi_bright_black",
        "panel-lighten-3": "ansi_white",
    },
)
TRUECOLOR = 1 << 24

# Non-ASCII characters the app (and Textual's widgets) draw, and their ASCII stand-ins.
# Anything else: its ASCII base letter if it has one (é → e), else "?" per cell.
_GLYPHS: dict[str, str] = {
    # state marks, presence, arrows, punctuation
    "✓": "v", "✔": "v", "●": "*", "○": "o", "◉": "*", "•": "*", "·": ".", "…": ".",
    "—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "↑": "^", "↓": "v",
    "←": "<", "→": ">", "⏎": "<", "⇥": ">", "▲": "^", "▼": "v", "◀": "<", "▶": ">",
    "▸": ">", "▾": "v", "×": "x", "⋮": ":", "━": "-", "╸": "-", "╺": "-", "╹": "|",
    "╻": "|", "╱": "/", "╲": "\\", "╳": "X",
    # blocks: checkboxes (▐X▌), tall borders (▊▔▁▎), scroll bars, brushes
    "█": "@", "▐": "[", "▌": "]", "▊": "|", "▎": "|", "▏": "|", "▕": "|", "▍": "|",
    "▋": "|", "▉": "|", "▔": "-", "▁": "_", "▀": "-", "▄": "_", "▂": " ", "▃": " ",
    "▅": " ", "▆": " ", "▇": " ", "░": ":", "▒": "#", "▓": "#", "⣿": "#",
}  # fmt: skip


def _box_drawing(char: str) -> str | None:
    """``-``, ``|`` or ``+`` for a box-drawing character (U+2500..U+257F) by its name."""
    if not "\u2500" <= char <= "\u257f":
        return None
    name = unicodedata.name(char, "")
    if "HORIZONTAL" in name and "VERTICAL" not in name:
        return "-"
    if "VERTICAL" in name and "HORIZONTAL" not in name:
        return "|"
    return "+"  # corners, tees, crosses, arcs


@lru_cache(maxsize=4096)
def ascii_for(char: str) -> str:
    """The ASCII stand-in for one character, exactly as many cells wide as it is."""
    if char.isascii():
        return char
    cells = cell_len(char)
    if cells == 0:
        return ""
    known = _GLYPHS.get(char) or _box_drawing(char)
    if known is None:
        base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
        known = base if len(base) == 1 and base.isprintable() else "?"
    return (known * cells)[:cells] if len(known) == 1 else known[:cells].ljust(cells)


class _AsciiTable(dict[int, str]):
    """A ``str.translate`` table filled on demand."""

    def __missing__(self, code: int) -> str:
        value = self[code] = ascii_for(chr(code))
        return value


_TABLE = _AsciiTable()


def to_ascii(text: str) -> str:
    """``text`` with every character replaced by its ASCII stand-in (same cell width)."""
    return text if text.isascii() else text.translate(_TABLE)


class AsciiFilter(LineFilter):
    """Turns every drawn line into ASCII of the same cell width."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [
            segment
            if segment.control or segment.text.isascii()
            else Segment(to_ascii(segment.text), segment.style, segment.control)
            for segment in segments
        ]


_ASCII_FILTER = AsciiFilter()


# --- detection -------------------------------------------------------------------------------


def _locale_setting(environ: Mapping[str, str]) -> str | None:
    """The locale name in force for characters (LC_ALL, then LC_CTYPE, then LANG)."""
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(name)
        if value:
            return value
    return None


def _is_utf8(encoding: str | None) -> bool:
    if not encoding:
        return False
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def locale_is_utf8(environ: Mapping[str, str], encoding: str | None) -> bool:
    """Can the terminal be sent UTF-8? ``encoding``: what Python encodes the output with."""
    setting = _locale_setting(environ)
    if setting is not None:
        if setting in ("C", "POSIX"):
            return False  # Python switches itself to UTF-8 here; the terminal does not
        codeset = setting.partition(".")[2].partition("@")[0]
        if codeset:
            return _is_utf8(codeset)
    return _is_utf8(encoding)


def color_count(environ: Mapping[str, str]) -> int:
    """How many colours the output will have (Rich's rule, which Textual's output follows)."""
    forced = (environ.get("PARLEY_COLORS") or environ.get("TEXTUAL_COLOR_SYSTEM") or "").lower()
    if forced in ("16", "standard"):
        return 16
    if forced in ("256", "8bit"):
        return 256
    if forced in ("truecolor", "24bit"):
        return TRUECOLOR
    if environ.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return TRUECOLOR
    suffix = environ.get("TERM", "").strip().lower().rpartition("-")[2]
    return 256 if suffix in ("256color", "kitty") else 16


@dataclass(frozen=True)
class TerminalProfile:
    """What the terminal shows; see the module docstring."""

    ascii_only: bool = False
    colors: int = TRUECOLOR

    @classmethod
    def detect(
        cls, environ: Mapping[str, str] | None = None, encoding: str | None = None
    ) -> TerminalProfile:
        env = os.environ if environ is None else environ
        if encoding is None:
            stream = sys.__stderr__  # what Textual writes to
            encoding = getattr(stream, "encoding", None) or locale.getpreferredencoding(False)
        forced = env.get("PARLEY_ASCII", "").strip()
        ascii_only = forced == "1" if forced in ("0", "1") else not locale_is_utf8(env, encoding)
        return cls(ascii_only=ascii_only, colors=color_count(env))

    @property
    def theme(self) -> Theme | None:
        """The theme to use (None: Textual's default)."""
        return ANSI_THEME if self.colors <= 16 else None

    @property
    def line_filters(self) -> Sequence[LineFilter]:
        return (_ASCII_FILTER,) if self.ascii_only else ()
