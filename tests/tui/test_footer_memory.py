"""The key footer does not keep its old keys alive (tui/widgets/footer.py): Textual's own
recomposes on every focus change and kept each removed ``FooterKey`` reachable, so a client
grew by about 0.4 MiB per focus change, and Textual's ``get_inner_outer`` cache kept the
render caches of 1,024 removed widgets (bench/bench_tui_memory.py)."""

from __future__ import annotations

import gc
from pathlib import Path

from textual._styles_cache import StylesCache
from textual.widget import Widget
from textual.widgets import Footer as TextualFooter
from textual.widgets._footer import FooterKey  # not exported by textual.widgets

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, wait_until
from tui.app import ParleyApp
from tui.screens.login import LoginScreen
from tui.widgets.footer import Footer

FOCUS_CHANGES = 30


def live_footer_keys() -> list[FooterKey]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, FooterKey)]


async def test_focus_changes_leave_only_the_shown_footer_keys_alive(
    relay: RelayProcess, tmp_path: Path
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
        assert isinstance(app.screen.query_one(TextualFooter), Footer)
        screen = await log_in(pilot, app, "alice")
        footer = screen.query_one(TextualFooter)
        assert isinstance(footer, Footer)
        recomposed = 0
        for _ in range(FOCUS_CHANGES):
            before = footer.query(FooterKey).first()
            screen.focus_next()
            await pilot.pause()
            await wait_until(pilot, lambda: footer.query(FooterKey), "the footer's keys")
            recomposed += footer.query(FooterKey).first() is not before
            del before  # a removed key: this test must not be what keeps it alive
        assert recomposed >= FOCUS_CHANGES // 2  # the footer did rebuild its keys each time
        shown = set(footer.query(FooterKey))
        assert shown
        alive = live_footer_keys()
        assert set(alive) == shown, f"{len(alive) - len(shown)} removed footer keys still alive"
        del alive
        # Every widget owns one render cache; Textual's lru_cache kept 1,024 of them alive.
        widgets = [o for o in gc.get_objects() if isinstance(o, Widget)]
        caches = [o for o in gc.get_objects() if isinstance(o, StylesCache)]
        assert len(caches) <= len(widgets), f"{len(caches)} render caches, {len(widgets)} widgets"
        await app.action_quit()
