"""Fixtures for the TUI tests; the helpers they use live in :mod:`tests.tui.pilot` (shared
with bench/) and are re-exported here for the tests that import them from this module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import RelayProcess
from tests.tui.pilot import (
    FAST,
    PASSWORD,
    app_config,
    log_in,
    screen_text,
    start_peer,
    wait_until,
)
from tui.client.session import ClientSession

__all__ = ["FAST", "PASSWORD", "app_config", "log_in", "screen_text", "start_peer", "wait_until"]


@pytest.fixture
async def bob(relay: RelayProcess, tmp_path: Path) -> AsyncIterator[ClientSession]:
    session = await start_peer(relay, tmp_path, "bob")
    yield session
    await session.close()
