"""Helpers for the TUI tests and the TUI benches: app configs under tmp_path, waiting,
text captures, peers (``tests/tui/conftest.py`` holds the fixtures built on them).

The relay is the real one (``tests.harness.RelayProcess``); a peer is a real
``ClientSession`` from the client library talking to it. Waiting is by condition with a
generous timeout, never by wall-clock thresholds.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input

from tests import waiting
from tests.harness import RelayProcess
from tui.app import ParleyApp
from tui.client.backoff import RetryPolicy
from tui.client.connection import Endpoint
from tui.client.login import register_account
from tui.client.session import ClientSession, SessionOptions
from tui.client.trust import TrustPolicy
from tui.dialogs.trust import TrustDialog
from tui.screens.login import LoginScreen
from tui.screens.main import MainScreen
from tui.settings import AppConfig

if TYPE_CHECKING:
    from tui.dialogs.save_file import SaveFileDialog
    from tui.widgets.files_pane import FilesPane

PASSWORD = "correct horse"

# Quick reconnects and retries so that relay restarts and failed sends take ~1 s, not 30.
FAST = SessionOptions(
    backoff_base=0.1,
    backoff_cap=0.5,
    ack_delay=0.02,
    retry=RetryPolicy(first_timeout=0.4, cap=1.0, max_attempts=2),
)


def app_config(
    tmp_path: Path, relay: RelayProcess, name: str = "app", **changes: object
) -> AppConfig:
    base = tmp_path / name
    values: dict[str, object] = {
        "host": relay.host,
        "port": relay.port,
        "plaintext": relay.plaintext,
        "data_dir": base / "data",
        "known_relays": base / "config" / "known_relays",
        "settings_path": base / "config" / "tui.json",
        "session_options": FAST,
    }
    values.update(changes)
    return AppConfig(**values)  # type: ignore[arg-type]


async def wait_until(
    pilot: Pilot[object], predicate: Callable[[], object], what: str, timeout: float = 20.0
) -> None:
    """:func:`tests.waiting.wait_until`, letting the app run between checks."""
    await waiting.wait_until(predicate, what, timeout=timeout, pause=pilot.pause)


async def checked_save_dialog(
    pilot: Pilot[object], app: App[object], timeout: float = 30.0
) -> SaveFileDialog:
    """The save dialog that accepting a file offer opens, once it has checked its target
    (the name it proposes, a clash, a path outside the downloads folder). The dialog's module
    is imported here, when used: probes that count a client's modules use this file."""
    from tui.dialogs.save_file import SaveFileDialog

    await wait_until(pilot, lambda: isinstance(app.screen, SaveFileDialog), "the save dialog")
    dialog = app.screen
    assert isinstance(dialog, SaveFileDialog)
    await wait_until(pilot, lambda: dialog.check is not None, "its target checked", timeout)
    return dialog


async def files_of(pilot: Pilot[object], screen: MainScreen) -> FilesPane:
    """The Files pane, built first if it is not yet (as an action that needs it does)."""
    screen.files_action(lambda _: None)
    await wait_until(pilot, lambda: screen.files_pane is not None, "the Files pane built")
    pane = screen.files_pane
    assert pane is not None
    return pane


def screen_text(app: App[object]) -> str:
    """The current screen as plain text, one line per terminal row (like tmux capture-pane)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False)


async def log_in(
    pilot: Pilot[object],
    app: ParleyApp,
    user: str,
    *,
    register: bool = True,
    trust: bool = True,
    password: str = PASSWORD,
) -> MainScreen:
    """Fill the login form (typing it key by key is covered by test_app_login) and submit;
    answer the trust prompt if it shows."""
    await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
    login = app.screen
    assert isinstance(login, LoginScreen)
    login.query_one("#username", Input).value = user
    login.query_one("#password", Input).value = password
    login.query_one("#register", Checkbox).value = register
    await pilot.press("ctrl+l")

    def progressed() -> bool:
        return isinstance(app.screen, TrustDialog | MainScreen)

    await wait_until(pilot, progressed, "the trust prompt or the main screen")
    if isinstance(app.screen, TrustDialog):
        await pilot.press("y" if trust else "n")
    await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, MainScreen)
    return screen


async def start_peer(relay: RelayProcess, tmp_path: Path, name: str) -> ClientSession:
    """A registered, logged-in library client."""
    policy = (
        TrustPolicy.plaintext() if relay.plaintext else TrustPolicy.pinned(relay.fingerprint or "")
    )
    endpoint = Endpoint(relay.host, relay.port)
    await register_account(endpoint, policy, name, PASSWORD)
    session = ClientSession(
        endpoint, name, PASSWORD, trust=policy, data_dir=tmp_path / f"peer-{name}", options=FAST
    )
    await session.start()
    return session
