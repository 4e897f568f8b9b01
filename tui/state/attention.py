"""Getting the user's attention, as data: the numbered chats (Alt+1…9), one bell per burst,
the window title, and which chats are muted.

No Textual. :class:`MutedChats` reads and writes the local store (its ``meta`` table); the
rest is pure.

Invariants:
- The numbered chats are the first :data:`NUMBERED` chats in the order the sidebar lists
  them: the buddies (buddy rows only, not requests) and then the joined rooms (not
  invitations). The numbers shown in the lists and the Alt+N keys read the same order.
- :class:`BellThrottle` rings once per burst: a message rings only when the previous
  qualifying message came more than :data:`~tui.state.chat.BURST_WINDOW` seconds earlier
  (the same window that sums toasts up).
- :func:`title_sequence` is the only place an OSC title sequence is built; its text has
  every control character removed and is bounded, so nothing from the network can end the
  sequence early or inject another one.
- A muted chat (persisted per account, key ``tui.muted:<peer>``, a room as its negative
  id) still counts unread messages and mentions; it only makes no bell, title count or toast.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.validation import printable_text
from tui.state.chat import BURST_WINDOW
from tui.state.presence import MetaStore

NUMBERED = 9  # Alt+1 … Alt+9
TITLE = "Parley"
_MUTED_KEY = "tui.muted:"


def numbered_chats(buddies: Iterable[int], rooms: Iterable[int]) -> list[int]:
    """The peers (a room: its negative id) that Alt+1 … Alt+9 open, in list order."""
    return [*buddies, *rooms][:NUMBERED]


class BellThrottle:
    """One bell per burst of messages; see the module docstring."""

    def __init__(self, window: float = BURST_WINDOW) -> None:
        self.window = window
        self._last = float("-inf")

    def ring(self, now: float) -> bool:
        """A message that may ring came at ``now`` (monotonic seconds): ring?"""
        ring = now - self._last > self.window
        self._last = now
        return ring


def window_title(unread: int) -> str:
    """``Parley (3)`` while unmuted chats hold unread messages, else ``Parley``."""
    return f"{TITLE} ({unread})" if unread > 0 else TITLE


def title_sequence(title: str) -> str:
    """The OSC 2 sequence that sets the terminal's window title to ``title`` (controls
    removed, at most 80 characters)."""
    text = printable_text(title[:320], keep_newlines=False)[:80]
    return f"\x1b]2;{text}\x07"


class MutedChats:
    """Which chats are muted, persisted in the store; see the module docstring."""

    def __init__(self, store: MetaStore) -> None:
        self._store = store
        self._cache: dict[int, bool] = {}

    def __call__(self, peer: int) -> bool:
        """Is ``peer``'s chat muted?"""
        if peer not in self._cache:
            self._cache[peer] = bool(self._store.meta_get(_MUTED_KEY + str(peer), 0))
        return self._cache[peer]

    def set(self, peer: int, muted: bool) -> None:
        self._cache[peer] = muted
        self._store.meta_set(_MUTED_KEY + str(peer), int(muted))
        self._store.commit()
