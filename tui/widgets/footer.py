"""``Footer``: the key hints at the bottom of every Parley screen, drawn as one widget.

It shows what Textual's ``Footer`` shows, laid out the same way (`` ^n Add buddy `` per
key with ``show=True`` from the screen's active bindings, the first binding of each action,
disabled ones dim, the command palette's key on the right after ``▏``) and does what a
click on one of Textual's keys does (the key is simulated; a disabled one rings the bell).
Textual's footer is a container of one widget per key that it rebuilds on every focus
change and screen switch: 1.5–2 MiB of a running client's RSS (styles, render caches and
the garbage of each rebuild; bench/bench_tui_memory.py, docs/BENCHMARKS.md "Client memory")
and, before it was worked around here, a leak of every key ever shown. This one keeps a
list of entries and repaints.

Invariants:
- The entries are recomputed from ``screen.active_bindings`` whenever the screen signals
  that its bindings changed, and nowhere else; rendering only lays them out.
- The palette's key, when shown, ends at the right edge; the other keys are cut where they
  meet it, as Textual's docked palette key covers them.
- Binding groups (Textual's ``Binding.Group``) are shown as separate keys: Parley defines
  none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget

_BORDER = "▏"  # Textual's "vkey" left border before the palette key


@dataclass(frozen=True)
class FooterEntry:
    """One key as shown (``palette``: the command palette's, drawn at the right edge)."""

    key: str
    display: str
    description: str
    enabled: bool
    tooltip: str
    palette: bool = False


class Footer(Widget, can_focus=False):
    """The key hints; see the module docstring."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "footer--item",
        "footer--key",
        "footer--description",
        "footer--hover",
        "footer--border",
    }
    DEFAULT_CSS = """
    Footer {
        dock: bottom;
        height: 1;
        width: 1fr;
        color: $footer-foreground;
        background: $footer-background;
        & > .footer--item {
            background: $footer-item-background;
        }
        & > .footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .footer--hover {
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
        & > .footer--border {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[FooterEntry] = []
        self._spans: list[tuple[int, int, FooterEntry]] = []  # cells of each entry drawn
        self._hovered: FooterEntry | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        app = self.app
        active = screen.active_bindings

        def entry(binding: Binding, enabled: bool, tooltip: str, palette: bool) -> FooterEntry:
            display = app.get_key_display(binding)
            return FooterEntry(binding.key, display, binding.description, enabled, tooltip, palette)

        entries: list[FooterEntry] = []
        actions: set[str] = set()
        for _node, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in actions:
                actions.add(binding.action)
                entries.append(entry(binding, enabled, tooltip, palette=False))
        palette = active.get(app.COMMAND_PALETTE_BINDING) if app.ENABLE_COMMAND_PALETTE else None
        if palette is not None:
            _node, binding, enabled, _tooltip = palette
            tooltip = binding.tooltip or binding.description
            entries.append(entry(binding, enabled, tooltip, palette=True))
        if entries != self.entries:
            self.entries = entries
            self._hovered = None
            self.refresh()

    def render(self) -> Text:
        width = self.size.width
        item = self.get_component_rich_style("footer--item")
        key_style = item + self.get_component_rich_style("footer--key")
        description_style = item + self.get_component_rich_style("footer--description")
        hover = self.get_component_rich_style("footer--hover")
        dim = Style(dim=True)
        text = Text(no_wrap=True, overflow="crop", end="")
        spans: list[tuple[int, int, FooterEntry]] = []
        palette = next((entry for entry in self.entries if entry.palette), None)
        palette_width = (
            0 if palette is None else len(palette.display) + len(palette.description) + 3
        )
        room = max(0, width - palette_width)
        for entry in self.entries:
            if entry.palette:
                continue
            start = len(text)
            if start >= room:
                break
            extra = (hover if entry is self._hovered else Style()) + (
                Style() if entry.enabled else dim
            )
            if entry.description:
                text.append(f" {entry.display} ", key_style + extra)
                text.append(f"{entry.description} ", description_style + extra)
            else:
                text.append(entry.display, key_style + extra)
            spans.append((start, min(len(text), room), entry))
        text.truncate(room, overflow="crop")
        if palette is not None:
            text.append(" " * (room - len(text)))
            start = len(text)
            extra = (hover if palette is self._hovered else Style()) + (
                Style() if palette.enabled else dim
            )
            text.append(_BORDER, item + self.get_component_rich_style("footer--border"))
            text.append(palette.display, key_style + extra)
            text.append(f" {palette.description}", description_style + extra)
            text.append(" ", item + extra)
            spans.append((start, len(text), palette))
        self._spans = spans
        return text

    def _entry_at(self, x: int) -> FooterEntry | None:
        for start, end, entry in self._spans:
            if start <= x < end:
                return entry
        return None

    def on_mouse_down(self, event: events.MouseDown) -> None:
        entry = self._entry_at(event.x)
        if entry is None:
            return
        if entry.enabled:
            self.app.simulate_key(entry.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._hover(self._entry_at(event.x))

    def on_leave(self, _event: events.Leave) -> None:
        self._hover(None)

    def _hover(self, entry: FooterEntry | None) -> None:
        if entry is not self._hovered:
            self._hovered = entry
            self.tooltip = entry.tooltip if entry is not None and entry.tooltip else None
            self.refresh()
