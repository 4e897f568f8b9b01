"""Tab completion of a file path typed in an ``Input`` (the file dialogs).

:func:`complete` is pure (the listing is passed in); :func:`complete_path` does the I/O:
one ``os.scandir`` of one directory, at most :data:`MAX_ENTRIES` entries. Callers run it
off the event loop (``asyncio.to_thread``): even a bounded listing can stall on a slow or
network file system.

Invariants:
- Work is bounded whatever the directory: at most ``MAX_ENTRIES`` entries are looked at
  and at most ``SHOWN`` candidates returned (``more`` says when there were others).
- The text typed is kept as typed (``~`` stays ``~``, a relative path stays relative);
  only the last component is extended. Directories complete with a trailing separator.
- Hidden entries are offered only when the typed prefix starts with a dot.
- Errors (missing directory, no permission) give "no completion", never an exception.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MAX_ENTRIES = 5000
SHOWN = 40


@dataclass(frozen=True)
class Completion:
    text: str  # the input's new text (unchanged when there was nothing to add)
    candidates: tuple[str, ...] = ()  # matching names, directories with a trailing "/"
    more: bool = False  # more matches than shown, or the directory was not read to the end

    @property
    def unique(self) -> bool:
        return len(self.candidates) == 1 and not self.more


def split_input(text: str) -> tuple[str, str]:
    """``("~/Doc", )`` → ``("~/", "Doc")``: the directory part as typed and the prefix."""
    cut = text.rfind(os.sep) + 1
    return text[:cut], text[cut:]


def resolve_dir(dir_text: str, base: Path) -> Path:
    """The path ``dir_text`` names: ``~`` expanded, relative to ``base``; empty: ``base``."""
    path = Path(dir_text).expanduser() if dir_text else base
    return path if path.is_absolute() else base / path


def complete(text: str, entries: Iterable[tuple[str, bool]], truncated: bool = False) -> Completion:
    """Complete ``text`` from ``entries`` ((name, is_dir) of its directory)."""
    dir_text, prefix = split_input(text)
    show_hidden = prefix.startswith(".")
    matches = sorted(
        (name + os.sep if is_dir else name)
        for name, is_dir in entries
        if name.startswith(prefix) and (show_hidden or not name.startswith("."))
    )
    if not matches:
        return Completion(text, (), truncated)
    if len(matches) == 1 and not truncated:
        return Completion(dir_text + matches[0], (matches[0],))
    common = _common_prefix([m.rstrip(os.sep) for m in matches])
    new_text = dir_text + common if len(common) > len(prefix) else text
    return Completion(new_text, tuple(matches[:SHOWN]), truncated or len(matches) > SHOWN)


def _common_prefix(names: list[str]) -> str:
    """The longest string every name starts with (character-wise, not path-wise)."""
    first, last = min(names), max(names)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def list_directory(
    directory: Path, prefix: str, limit: int = MAX_ENTRIES
) -> tuple[list[tuple[str, bool]], bool]:
    """(name, is_dir) of the entries of ``directory`` starting with ``prefix``, reading at
    most ``limit`` entries; the flag says the listing stopped early. Blocking I/O."""
    found: list[tuple[str, bool]] = []
    truncated = False
    try:
        with os.scandir(directory) as it:
            for count, entry in enumerate(it):
                if count >= limit:
                    truncated = True
                    break
                if entry.name.startswith(prefix):
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    found.append((entry.name, is_dir))
    except OSError:
        return [], False
    return found, truncated


def complete_path(text: str, base: Path) -> Completion:
    """Complete ``text`` against the file system (relative paths start at ``base``).
    Blocking I/O (one bounded scandir): call it in a thread."""
    dir_text, prefix = split_input(text)
    entries, truncated = list_directory(resolve_dir(dir_text, base), prefix)
    return complete(text, entries, truncated)
