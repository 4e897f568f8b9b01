"""``StyledLinesView``: a ScrollView that draws its own lines (Textual's Line API) with the
styles of its component classes, looked up once and cached until the styles change.

Subclasses set ``STYLE_PREFIX`` (e.g. ``"conversation-view--"``) and declare the matching
``COMPONENT_CLASSES``; :meth:`StyledLinesView._style` is the per-segment lookup of
``render_line`` (a dict hit once warm).
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from textual.scroll_view import ScrollView


class StyledLinesView(ScrollView):
    STYLE_PREFIX: ClassVar[str] = ""

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        self._styles: dict[str, Style] = {}  # before super(): styles may update during it
        super().__init__(name=name, id=id)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def _style(self, key: str) -> Style:
        """The widget's style plus component class ``STYLE_PREFIX + key`` ("" = none)."""
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            if key:
                style += self.get_component_rich_style(f"{self.STYLE_PREFIX}{key}", partial=True)
            self._styles[key] = style
        return style
