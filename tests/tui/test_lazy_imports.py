"""What a starting client does not import: every module loaded costs each running client
memory (issue 15 item 7, bench/bench_tui_memory.py), so modules only a user action or a
rare error needs are imported where they are used. A fresh interpreter imports ``tui.cli``
(the ``parley`` entry point) and runs the app headless up to its login screen; then the
lazily imported help screen must still open."""

from __future__ import annotations

from pathlib import Path

from tests.probe import run_probe

# Imported only when used: --version (email, zipfile, csv… ~1 MiB), `parley send/tail`,
# F1 (with Textual's DataTable), a trust prompt (tui/cli.py, tui/app.py), protobuf's
# pure-Python layer (~0.8 MiB; upb does the work).
LAZY = (
    "importlib.metadata",
    "tui.client.cli",
    "tui.screens.help",
    "textual.widgets._data_table",
    "tui.dialogs.trust",
    "google.protobuf.text_format",  # protobuf's Python layer (tui/lean_imports.py)
)
# Loaded at start: if these were missing the probe itself would be broken.
EAGER = ("tui.app", "tui.screens.login", "tui.widgets.footer", "textual.widgets._input")

PROBE = """
import asyncio, json, sys
from pathlib import Path

from tui.cli import build_parser, config_from_args

base = Path(sys.argv[1])
args = ["--host", "localhost", "--data-dir", str(base / "data"),
        "--known-relays", str(base / "known_relays")]
config = config_from_args(build_parser().parse_args(args))


async def main() -> None:
    from dataclasses import replace

    from tui.app import ParleyApp
    from tui.screens.login import LoginScreen

    app = ParleyApp(replace(config, settings_path=base / "tui.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        while not isinstance(app.screen, LoginScreen):
            await pilot.pause()
        await pilot.pause()
        at_login = sorted(sys.modules)
        await pilot.press("f1")
        while type(app.screen).__name__ != "HelpScreen":
            await pilot.pause()
        print(json.dumps({"at_login": at_login, "help_opened": True}))
        await app.action_quit()


asyncio.run(main())
"""


def test_a_starting_client_leaves_the_on_demand_modules_unimported(tmp_path: Path) -> None:
    result = run_probe(PROBE, str(tmp_path))
    loaded = set(result["at_login"])
    assert set(EAGER) <= loaded
    assert sorted(loaded & set(LAZY)) == []
    assert result["help_opened"]  # F1 still opens the help screen, importing it then
