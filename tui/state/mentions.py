"""``@name`` mentions in rooms: which messages mention this user, and how many mentions
each room holds that the user has not looked at yet.

No Textual and no I/O. :class:`MentionCounts` is owned by the room half of the main screen
(:class:`tui.screens.rooms.RoomScreen`); it is counted apart from the ordinary unread
counts (which the chat state owns) and shown next to them in the room list.

Invariants:
- A mention is ``@`` + this user's name, case-insensitive, not inside a longer word:
  ``@bob`` and ``@Bob,`` mention bob; ``@bobby`` and ``mail@bob`` do not.
- A room's count only grows from live messages of others and drops to zero when the room
  is looked at (:meth:`MentionCounts.clear`).
"""

from __future__ import annotations

import re


def mention_pattern(own_name: str) -> re.Pattern[str]:
    """The pattern that finds ``@own_name`` in a message (for highlighting too)."""
    return re.compile(rf"(?<![\w@])@{re.escape(own_name)}(?![\w])", re.IGNORECASE)


def mentions(text: str, own_name: str) -> bool:
    """Does ``text`` mention ``own_name``?"""
    return bool(own_name) and mention_pattern(own_name).search(text) is not None


class MentionCounts:
    """Mentions not yet seen, per room conversation (the room's negative id)."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}

    def add(self, peer: int) -> None:
        self._counts[peer] = self._counts.get(peer, 0) + 1

    def get(self, peer: int) -> int:
        return self._counts.get(peer, 0)

    def clear(self, peer: int) -> bool:
        """The room was looked at; True if it held mentions."""
        return self._counts.pop(peer, 0) > 0
