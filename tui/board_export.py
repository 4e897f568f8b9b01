"""Writing a drawing board to a text file the user can keep.

Invariants:
- A file is only ever created, never overwritten: the name is claimed with ``O_EXCL`` and a
  counter is added until a free one is found.
- The peer's name (untrusted) only contributes ``[A-Za-z0-9_-]`` characters to the file
  name, so it can neither leave the chosen directory nor hide as a dot file.
- The default directory is the user's documents directory (``~/Documents``, or what the
  XDG user-dirs configuration names, via platformdirs) when it exists, else their home
  directory — never created by us (README says the same). An explicitly configured
  directory (``AppConfig.export_dir``) is created.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import platformdirs

MAX_TRIES = 1000


def default_export_dir() -> Path:
    """Where exported boards go when nothing is configured: Documents, else home."""
    documents = Path(platformdirs.user_documents_dir())
    return documents if documents.is_dir() else Path.home()


def export_stem(peer_name: str, when: datetime.datetime) -> str:
    """``parley-board-<name>-<YYYYmmdd-HHMMSS>`` with the name reduced to safe characters."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", peer_name, flags=re.ASCII).strip("_-")[:40]
    return f"parley-board-{safe or 'peer'}-{when:%Y%m%d-%H%M%S}"


def export_text(
    text: str,
    peer_name: str,
    directory: Path | None = None,
    when: datetime.datetime | None = None,
) -> Path:
    """Write ``text`` (plus a final newline) to a new file in ``directory``; returns its
    path. ``OSError`` if the directory cannot be created or no free name is found."""
    folder = default_export_dir() if directory is None else directory
    folder.mkdir(parents=True, exist_ok=True)
    stem = export_stem(peer_name, when or datetime.datetime.now())
    data = (text + "\n").encode("utf-8")
    for attempt in range(1, MAX_TRIES + 1):
        path = folder / (f"{stem}.txt" if attempt == 1 else f"{stem}-{attempt}.txt")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path
    raise FileExistsError(f"no free file name for {stem}.txt in {folder}")
