"""Shared fixtures: a real relay subprocess per test (TLS or plaintext, or TLS plus a Unix
socket)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import RelayProcess


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path / "relay")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def plaintext_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path / "relay-plain", plaintext=True)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def socket_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    """A TLS relay that also listens on a Unix socket under a short path (sun_path is
    small; pytest's tmp_path can be too long)."""
    short = Path(tempfile.mkdtemp(prefix="parley-sock-"))
    process = RelayProcess(tmp_path / "relay", unix_socket=short / "run" / "relay.sock")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        shutil.rmtree(short, ignore_errors=True)
