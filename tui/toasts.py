"""``Toasts``: the screen's notices as Textual toasts, one toast per key.

A notice with a key (:attr:`tui.state.chat.Notice.key`) replaces the toast of the previous
notice with the same key: a burst of 150 messages is one "new messages" toast whose text
is updated, not 150 stacked toasts.

Invariants:
- Texts are never parsed as markup (notices carry hostile names and message previews).
- A replaced toast is expired (its timeout set to 0), and Textual drops expired
  notifications when the next one is added; nothing else of Textual's notification list is
  touched.
"""

from __future__ import annotations

from textual.app import App
from textual.notifications import Notification, Notify

from tui.state.chat import Notice


class Toasts:
    """See the module docstring."""

    def __init__(self) -> None:
        self._keyed: dict[str, Notification] = {}

    def show(self, app: App[object], notice: Notice) -> None:
        timeout = app.NOTIFICATION_TIMEOUT if notice.timeout is None else notice.timeout
        notification = Notification(
            notice.text, notice.title, notice.severity, timeout, markup=False
        )
        if notice.key:
            previous = self._keyed.get(notice.key)
            if previous is not None:
                previous.timeout = 0  # expired: gone when the new one is added
            self._keyed[notice.key] = notification
        app.post_message(Notify(notification))
