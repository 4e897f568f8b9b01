"""Validation shared by the relay and the client (PROTOCOL.md sections 5, 7 and 8).

Invariants:
- Pure functions of their arguments: no I/O, no global state.
- Everything here treats its input as hostile: nothing is interpreted as a path, markup or a
  terminal escape; bounds are checked before any work proportional to the input is done.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from protocol.confusables import PROTOTYPES

MAX_USERNAME_CHARS = 32
MIN_PASSWORD_CHARS = 1
MAX_PASSWORD_BYTES = 1024
MAX_TEXT_BYTES = 64 * 1024
MAX_DEVICE_CHARS = 64  # PROTOCOL.md section 9
MAX_FILE_NAME_BYTES = 255
# Board coordinates beyond this magnitude are refused outright (clipping a segment whose ends
# are astronomically far away would otherwise cost time proportional to its length).
MAX_BOARD_COORDINATE = 10_000

_USERNAME_PUNCTUATION = frozenset("_-.")
# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt): characters that
# render as nothing. Most are format characters or marks, which usernames refuse anyway; the
# Hangul fillers (U+115F, U+1160, U+3164, U+FFA0) are letters that look blank.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Rounds of (map to prototypes, case-fold, NFKD) that reach a skeleton's fixed point: a letter
# whose case fold is a source (Cherokee small letters fold to capitals) maps in round two, and
# a prototype "M" folds to "m", which maps to "rn" in round three; prototypes are ASCII, and no
# other ASCII case fold maps again.
_SKELETON_ROUNDS = 3
_FALLBACK_FILE_NAME = "received-file"


def normalize_username(raw: str) -> str:
    """Return the NFC form of ``raw`` if it is a valid username, else raise ``ValueError``.

    Valid: 1-32 characters after NFC, each a letter, a decimal digit, ``_``, ``-`` or ``.``,
    and none of them invisible (Unicode default-ignorable: the blank-looking Hangul fillers,
    zero-width characters).
    """
    if not isinstance(raw, str):
        raise TypeError("username must be a str")
    if len(raw) > 4 * MAX_USERNAME_CHARS:
        raise ValueError(f"username is longer than {MAX_USERNAME_CHARS} characters")
    name = unicodedata.normalize("NFC", raw)
    if not 1 <= len(name) <= MAX_USERNAME_CHARS:
        raise ValueError(f"username must be 1-{MAX_USERNAME_CHARS} characters")
    for ch in name:
        if _is_default_ignorable(ch):
            raise ValueError(f"username may not contain the invisible character {ch!r}")
        if ch in _USERNAME_PUNCTUATION:
            continue
        category = unicodedata.category(ch)
        if category.startswith("L") or category == "Nd":
            continue
        raise ValueError(f"username may not contain {ch!r}: use letters, digits, _ - .")
    return name


def _is_default_ignorable(ch: str) -> bool:
    code = ord(ch)
    return any(first <= code <= last for first, last in _DEFAULT_IGNORABLE)


def username_key(name: str) -> str:
    """The case-insensitive identity of a (normalised) username: logins look users up by it."""
    return unicodedata.normalize("NFC", name.casefold())


def username_skeleton(name: str) -> str:
    """What a (normalised) username looks like, for uniqueness: two names with the same
    skeleton are confusable (Unicode TR39 skeleton, case-insensitive).

    NFKD (fullwidth and other compatibility forms become their plain letters, accents come
    apart), then look-alikes of ASCII letters and digits become their ASCII prototype
    (Cyrillic "а" is "a", "0" is "O", "m" is "rn", see :mod:`protocol.confusables`), then
    case folding, until nothing changes. "аlice", "ａｌｉｃｅ" and "Alice" have the skeleton of
    "alice". Mapping comes before folding because look-alikes depend on case (Cyrillic "В"
    looks like "B", its "в" like no Latin letter); names that differ only in case are told
    apart by :func:`username_key`, which uniqueness checks as well.
    """
    skeleton = unicodedata.normalize("NFKD", name)
    for _ in range(_SKELETON_ROUNDS):
        folded = unicodedata.normalize("NFKD", skeleton.translate(PROTOTYPES).casefold())
        if folded == skeleton:
            break
        skeleton = folded
    return skeleton


def validate_password(password: str) -> None:
    """Raise ``ValueError`` unless ``password`` is acceptable to register."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError("password must not be empty")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password is longer than {MAX_PASSWORD_BYTES} bytes")


MAX_ROOM_NAME_CHARS = 64  # PROTOCOL.md section 10


def normalize_room_name(raw: str) -> str:
    """Return the NFC form of ``raw`` if it is a valid room name, else raise ``ValueError``.

    PROTOCOL.md section 10: the username rule (letters, digits, ``_ - .``, nothing
    invisible) but with spaces, 1-64 characters. Not at either end, and never two in a row:
    names that look alike must not differ only in spacing.
    """
    if not isinstance(raw, str):
        raise TypeError("room name must be a str")
    if len(raw) > 4 * MAX_ROOM_NAME_CHARS:
        raise ValueError(f"room name is longer than {MAX_ROOM_NAME_CHARS} characters")
    name = unicodedata.normalize("NFC", raw)
    if not 1 <= len(name) <= MAX_ROOM_NAME_CHARS:
        raise ValueError(f"room name must be 1-{MAX_ROOM_NAME_CHARS} characters")
    if name != name.strip(" ") or "  " in name:
        raise ValueError("room name may not start or end with a space or hold two in a row")
    try:
        for word in name.split(" "):
            for start in range(0, len(word), MAX_USERNAME_CHARS):
                normalize_username(word[start : start + MAX_USERNAME_CHARS])
    except ValueError as exc:
        raise ValueError(str(exc).replace("username", "room name")) from None
    return name


def valid_device_name(name: str) -> bool:
    """A device name as PROTOCOL.md section 9 allows: at most 64 printable characters (no
    control, format or line/paragraph separator characters; "" is the v1 device)."""
    return len(name) <= MAX_DEVICE_CHARS and name.isprintable()


def text_within_limit(text: str) -> bool:
    """True if a chat text fits the 64 KiB limit of section 7 (measured in UTF-8 bytes)."""
    length = len(text)
    if length <= MAX_TEXT_BYTES // 4:  # at most 4 UTF-8 bytes per character
        return True
    if length > MAX_TEXT_BYTES:
        return False
    return len(text.encode("utf-8", "surrogatepass")) <= MAX_TEXT_BYTES


def _is_unsafe_char(ch: str) -> bool:
    # Control (Cc), format (Cf: bidi overrides, zero-width), unassigned, surrogates, private use.
    return unicodedata.category(ch) in {"Cc", "Cf", "Cn", "Cs", "Co", "Zl", "Zp"}


def printable_text(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with terminal controls removed (ESC, C1, bidi overrides...).

    Newlines (and tabs, as spaces) survive when ``keep_newlines``; nothing else that a
    terminal could interpret does.
    """
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch == "\t":
            out.append("    " if keep_newlines else " ")
        elif _is_unsafe_char(ch):
            continue
        else:
            out.append(ch)
    return "".join(out)


def safe_basename(name: str) -> str:
    """Reduce an untrusted file name to a base name that is safe to create in a chosen dir.

    Drops any directory part (``/`` or ``\\``), control and format characters, leading dots
    and spaces (no hidden files, no ``..``), and truncates to 255 UTF-8 bytes keeping the
    extension. Never returns an empty string, ``.`` or ``..``.
    """
    name = name[: 16 * MAX_FILE_NAME_BYTES]
    name = unicodedata.normalize("NFC", name)
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(
        " " if unicodedata.category(ch) == "Zs" or ch == "\t" else ch
        for ch in base
        if ch == "\t" or not _is_unsafe_char(ch)
    )
    base = base.strip().lstrip(".").strip()
    if not base:
        return _FALLBACK_FILE_NAME
    if len(base.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        stem, dot, ext = base.rpartition(".")
        if not dot or len(ext.encode("utf-8")) > 16 or not stem:
            stem, ext, dot = base, "", ""
        budget = MAX_FILE_NAME_BYTES - len((dot + ext).encode("utf-8"))
        stem_bytes = stem.encode("utf-8")[:budget]
        stem = stem_bytes.decode("utf-8", "ignore").rstrip()
        base = (stem + dot + ext) if stem else _FALLBACK_FILE_NAME
    return base


@dataclass(frozen=True)
class Segment:
    """A straight stroke between two board cells, optionally with its brush character."""

    x0: int
    y0: int
    x1: int
    y1: int
    brush: str | None = None


@dataclass(frozen=True)
class ClearBoard:
    """The ``"clear"`` command."""


GraphicsCommand = Segment | ClearBoard

_INT = re.compile(r"-?[0-9]{1,6}", re.ASCII)


def _valid_brush(ch: str) -> bool:
    if len(ch) != 1 or not ch.isprintable() or _is_unsafe_char(ch):
        return False
    return not (unicodedata.combining(ch) or unicodedata.east_asian_width(ch) in {"W", "F"})


def parse_graphics(text: str) -> GraphicsCommand:
    """Parse a GRAPHICS ``msg``: ``"x0,y0,x1,y1"``, ``"x0,y0,x1,y1,c"`` or ``"clear"``.

    Raises ``ValueError`` for anything else (the receiver ignores and counts those).
    """
    if len(text) > 64:
        raise ValueError("graphics command too long")
    if text == "clear":
        return ClearBoard()
    parts = text.split(",", 4)
    if len(parts) < 4:
        raise ValueError("segment needs x0,y0,x1,y1")
    coords = []
    for part in parts[:4]:
        if not _INT.fullmatch(part):
            raise ValueError(f"bad coordinate {part!r}")
        value = int(part)
        if abs(value) > MAX_BOARD_COORDINATE:
            raise ValueError("coordinate out of range")
        coords.append(value)
    brush = None
    if len(parts) == 5:
        brush = parts[4]
        if not _valid_brush(brush):
            raise ValueError("brush must be one printable single-width character")
    return Segment(coords[0], coords[1], coords[2], coords[3], brush)


def format_graphics(command: GraphicsCommand) -> str:
    """The wire text of ``command`` (inverse of :func:`parse_graphics`)."""
    if isinstance(command, ClearBoard):
        return "clear"
    text = f"{command.x0},{command.y0},{command.x1},{command.y1}"
    if command.brush is not None:
        if not _valid_brush(command.brush):
            raise ValueError("brush must be one printable single-width character")
        text += "," + command.brush
    return text
