"""Names of received files: unique, bounded, never overwriting (pure; no I/O).

Invariants:
- Every name returned is at most ``MAX_FILE_NAME_BYTES`` UTF-8 bytes and has no path
  separator; all but :func:`part_name` (hidden on purpose) do not start with a dot.
- :func:`unique_name` only returns a name for which the caller's ``taken`` said False: it
  never picks a name in use (the caller re-checks at the final move, see
  :mod:`~tui.client.transfer.files`).
"""

from __future__ import annotations

from collections.abc import Callable

from protocol.validation import MAX_FILE_NAME_BYTES, safe_basename

PART_SUFFIX = ".parley-part"


def _clip_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[: max(limit, 0)].decode("utf-8", "ignore")


def split_extension(name: str) -> tuple[str, str]:
    """``("report", ".pdf")``; keeps compound ``.tar.*`` together; no extension for dot
    files or names ending in a dot."""
    lower = name.lower()
    tar = lower.rfind(".tar.")
    if tar > 0 and "." not in name[tar + 5 :]:
        return name[:tar], name[tar:]
    dot = name.rfind(".")
    if dot <= 0 or dot == len(name) - 1:
        return name, ""
    return name[:dot], name[dot:]


def numbered_name(name: str, number: int) -> str:
    """``"name (number).ext"`` within ``MAX_FILE_NAME_BYTES`` (the stem is shortened)."""
    if number <= 0:
        return name
    stem, ext = split_extension(name)
    suffix = f" ({number}){ext}"
    if len(ext.encode("utf-8")) > 32:  # a pathological "extension": keep the name whole
        stem, suffix = name, f" ({number})"
    stem = _clip_utf8(stem, MAX_FILE_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip()
    return (stem or "file") + suffix


def unique_name(name: str, taken: Callable[[str], bool], limit: int = 10_000) -> str:
    """The first of ``name``, ``name (1)``, ``name (2)``… (before the extension) for which
    ``taken`` is False. ``name`` is reduced with :func:`safe_basename` first.
    ``FileExistsError`` after ``limit`` candidates."""
    base = safe_basename(name)
    for number in range(limit + 1):
        candidate = numbered_name(base, number)
        if not taken(candidate):
            return candidate
    raise FileExistsError(f"no free name like {base!r} after {limit} tries")


def part_name(target_name: str, tag: str) -> str:
    """The hidden temporary name for ``target_name``: ``.name.tag.parley-part`` (at most
    ``MAX_FILE_NAME_BYTES``). ``tag`` makes it unique per transfer, so two transfers whose
    names share a long prefix never share a part file."""
    tail = f".{tag}{PART_SUFFIX}"
    budget = MAX_FILE_NAME_BYTES - 1 - len(tail.encode("utf-8"))
    return "." + _clip_utf8(target_name, budget) + tail
