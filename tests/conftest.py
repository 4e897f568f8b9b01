"""Shared fixtures: a real relay subprocess per test (TLS or plaintext)."""

from __future__ import annotations

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
