"""Large test files: random content written in blocks, and an independent SHA-256 of a file
(the oracle the file-transfer tests and bench compare the product's result against)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

BLOCK = 4 * 1024 * 1024


def random_file(path: Path, size: int) -> bytes:
    """Write ``size`` random bytes to ``path``; returns their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, BLOCK))
            digest.update(block)
            fh.write(block)
            remaining -= len(block)
    return digest.digest()


def sha256_of(path: Path) -> bytes:
    """SHA-256 of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return digest.digest()
