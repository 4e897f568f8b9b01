"""``StatusBar``: connection state (with the reconnect countdown), the unread and mention
totals across chats, user, relay, fingerprint.

Invariants:
- Renders a ``Content`` assembled from plain strings: the reason of a disconnect can come
  from the relay (a Reset text) and is never parsed as markup; controls are stripped.
- The countdown ticks only while reconnecting (one timer, paused otherwise).
- The totals (muted chats included: muting silences, it does not hide) follow the state,
  whenever non-zero and the line has room for them (they go first after the state).
"""

from __future__ import annotations

import time

from textual.content import Content
from textual.timer import Timer
from textual.widget import Widget

from certs import short_fingerprint
from protocol.validation import printable_text
from tui.client.events import ConnectionState

_STATE_LOOK: dict[ConnectionState, tuple[str, str]] = {
    ConnectionState.CONNECTING: ("◌ connecting…", "$text-warning"),
    ConnectionState.CONNECTED: ("● connected", "$text-success"),
    ConnectionState.RECONNECTING: ("◌ reconnecting", "$text-warning"),
    ConnectionState.OFFLINE: ("○ offline", "$text-error"),
}


class StatusBar(Widget):
    """One line at the bottom of the main screen; see the module docstring."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = ConnectionState.CONNECTING
        self.reason = ""
        self.retry_at: float | None = None
        self.user = ""
        self.relay = ""
        self.fingerprint: str | None = None
        self.plaintext = False
        self.unread = 0  # unread messages, all chats
        self.mentions = 0  # unseen @mentions, all rooms
        self._ticker: Timer | None = None

    def on_mount(self) -> None:
        self._ticker = self.set_interval(0.5, self.refresh, pause=True)

    def set_identity(
        self, user: str, relay: str, fingerprint: str | None, *, plaintext: bool
    ) -> None:
        self.user, self.relay, self.plaintext = user, relay, plaintext
        self.fingerprint = fingerprint
        self.refresh()

    def set_attention(self, unread: int, mentions: int) -> None:
        if (unread, mentions) != (self.unread, self.mentions):
            self.unread, self.mentions = unread, mentions
            self.refresh()

    @property
    def attention_text(self) -> str:
        """``3 unread, 1 mention`` (empty when nothing waits)."""
        parts = [f"{self.unread} unread"] if self.unread else []
        if self.mentions:
            parts.append(f"{self.mentions} mention{'s' if self.mentions != 1 else ''}")
        return ", ".join(parts)

    def set_state(
        self, state: ConnectionState, *, retry_in: float | None = None, reason: str = ""
    ) -> None:
        self.state = state
        self.reason = printable_text(reason[:200], keep_newlines=False)
        self.retry_at = time.monotonic() + retry_in if retry_in is not None else None
        if self._ticker is not None:
            if state is ConnectionState.RECONNECTING:
                self._ticker.resume()
            else:
                self._ticker.pause()
        self.refresh()

    @property
    def state_text(self) -> str:
        label, _ = _STATE_LOOK[self.state]
        if self.state is ConnectionState.RECONNECTING and self.retry_at is not None:
            seconds = max(0, round(self.retry_at - time.monotonic()))
            label = f"{label} in {seconds} s" if seconds else f"{label} now"
        if self.state is ConnectionState.OFFLINE and self.reason:
            label = f"{label}: {self.reason}"
        return label

    def render(self) -> Content:
        """State first; then the user, the fingerprint, and the relay address only if the
        line still has room (a 60-column terminal keeps the important parts)."""
        _, style = _STATE_LOOK[self.state]
        bar = ("  │  ", "$text-muted")
        parts: list[tuple[str, str]] = [(self.state_text, f"bold {style}")]
        optional: list[list[tuple[str, str]]] = []
        if self.attention_text:
            optional.append([bar, (self.attention_text, "bold $text-accent")])
        if self.user:
            optional.append([bar, (self.user, "bold")])
        if self.plaintext:
            optional.append([bar, ("PLAINTEXT, no TLS", "bold $text-error")])
        elif self.fingerprint:
            short = short_fingerprint(self.fingerprint)
            optional.append([bar, ("TLS ", "$text-muted"), (short, "$text-accent")])
        if self.relay:
            optional.append([bar, (self.relay, "")])
        room = self.size.width or 200
        used = sum(len(text) for text, _ in parts)
        for group in optional:
            size = sum(len(text) for text, _ in group)
            if used + size <= room:
                parts += group
                used += size
        return Content.assemble(*parts)
