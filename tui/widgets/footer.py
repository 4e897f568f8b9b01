"""``Footer``: Textual's key footer without its leaks: every screen of Parley uses this one.

Textual 8's ``Footer`` recomposes whenever the bindings change (every focus change, every
screen switch), and two things kept each removed ``FooterKey`` (10-15 per recompose) alive:

- each new key is bound to the footer's ``compact`` reactive with ``data_bind``: a watcher
  entry on the footer that Textual prunes only when ``compact`` changes, which never happens
  here — unbounded, about 0.4 MiB per focus change (135 MiB after 200);
- ``StylesCache.get_inner_outer`` is an ``lru_cache(1024)`` on a method, so it keeps the
  render cache (lines and strips) of the last 1,024 widgets drawn, removed or not — bounded,
  but about 4 MiB once full.

``bench/bench_tui_memory.py`` measures the client after 200 focus changes;
``tests/tui/test_footer_memory.py`` counts the keys and render caches left alive.

Invariant: after a recompose the footer's watcher list holds only its mounted keys (a
mutation of ``compact``, same value, makes Textual drop the entries of closed keys), and
Textual's ``get_inner_outer`` cache is emptied (it refills with the widgets drawn next).
"""

from __future__ import annotations

from textual._styles_cache import StylesCache
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    """The key footer; see the module docstring."""

    async def recompose(self) -> None:
        await super().recompose()
        if self.is_attached:
            # Textual prunes the watchers of closed nodes when it runs them; this runs them
            # (the keys still shown get the value they already have).
            self.mutate_reactive(TextualFooter.compact)
        StylesCache.get_inner_outer.cache_clear()  # two Style objects per widget to refill
