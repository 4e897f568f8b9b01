"""Buddies' presence as the client can vouch for it, and when each one was last seen online.

The relay reports presence only while this client is logged in (a ListBuddyResponse pushed
on every change, PROTOCOL.md section 6) and has no "last seen" field, so both are kept here:

- :attr:`Presence.known` is False from the moment the own connection leaves CONNECTED until
  a buddy list arrives on the new connection (the relay pushes one at login): in between,
  the last reported presence may be stale and is shown as unknown, never as online.
- :meth:`Presence.last_seen` is the wall-clock time (Unix seconds) this client last saw a
  user online: stamped for every user reported online (buddy lists, room member lists), for
  a buddy reported going offline, for the buddies online when the own connection drops, and
  every :data:`STAMP_EVERY` seconds for those online (:meth:`Presence.stamp_online`), so a
  quit loses at most that much.

Invariants:
- No Textual. Times are passed in (``now``: Unix seconds), never read here.
- Persisted per account in the local store's ``meta`` table (key ``tui.last_seen:<uid>``,
  an integer of Unix seconds), through the narrow :class:`MetaStore` interface; a time is
  written only when it moved by :data:`STAMP_EVERY` or more, or the user went offline.
- A time never moves backwards.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Protocol

from tui.client.events import Buddy

STAMP_EVERY = 60  # seconds between persisted stamps of a user who stays online
_KEY = "tui.last_seen:"


class MetaStore(Protocol):
    """The part of :class:`tui.client.store.LocalStore` used here."""

    closed: bool

    def meta_get(self, key: str, default: int = 0) -> int: ...

    def meta_set(self, key: str, value: int) -> None: ...

    def commit(self) -> None: ...


class Presence:
    """See the module docstring."""

    def __init__(self, store: MetaStore, *, connected: bool) -> None:
        self._store = store
        self.connected = connected
        self.known = connected  # the session reached the screen with its buddy list
        self._online: set[int] = set()  # buddies reported online on this connection
        self._seen: dict[int, int] = {}  # uid → last seen (cached from the store)
        self._saved: dict[int, int] = {}  # uid → the value in the store

    # --- what the session reports ------------------------------------------------------------

    def connection(self, connected: bool, now: float) -> bool:
        """The own connection is (``connected``) or is no longer logged in; True if
        :attr:`known` changed."""
        before = self.known
        if self.connected and not connected:
            self._stamp(self._online, now, force=True)  # last seen online: just now
            self._online.clear()
            self.known = False
        self.connected = connected
        return self.known != before

    def buddies(self, buddies: Iterable[Buddy], now: float) -> bool:
        """A buddy list arrived; True if :attr:`known` changed."""
        online = {b.uid for b in buddies if b.online}
        if not self.connected:
            return False
        went = self._online - online
        self._stamp(went, now, force=True)
        self._stamp(online, now)
        self._online = online
        before, self.known = self.known, True
        return not before

    def members_online(self, uids: Iterable[int], now: float) -> None:
        """A room's member list says these users are online now."""
        if self.connected:
            self._stamp(uids, now)

    def stamp_online(self, now: float) -> None:
        """Periodic: the buddies online are still online at ``now``."""
        if self.connected:
            self._stamp(self._online, now)

    # --- queries -------------------------------------------------------------------------------

    def last_seen(self, uid: int) -> int | None:
        """When ``uid`` was last seen online (Unix seconds), None if never."""
        if uid not in self._seen:
            self._seen[uid] = self._saved[uid] = self._store.meta_get(_KEY + str(uid), 0)
        return self._seen[uid] or None

    def describe(self, uid: int, online: bool, now: float) -> str:
        """``online``, ``last seen 14:02``, ``presence unknown…`` or ``never seen``."""
        if not self.known:
            seen = self.last_seen(uid)
            return "presence unknown (you are offline)" + (
                f"; {seen_text(seen, now)}" if seen else ""
            )
        if online:
            return "online"
        return seen_text(self.last_seen(uid), now)

    # --- storing -------------------------------------------------------------------------------

    def _stamp(self, uids: Iterable[int], now: float, *, force: bool = False) -> None:
        if self._store.closed:
            return  # the session ended (quit): its last state change comes after the store
        stamp = int(now)
        dirty = False
        for uid in uids:
            before = self.last_seen(uid) or 0
            if stamp <= before:
                continue
            self._seen[uid] = stamp
            if force or stamp - self._saved.get(uid, 0) >= STAMP_EVERY:
                self._store.meta_set(_KEY + str(uid), stamp)
                self._saved[uid] = stamp
                dirty = True
        if dirty:
            self._store.commit()


def seen_text(seen: int | None, now: float) -> str:
    """``last seen 14:02`` (today), ``last seen yesterday 14:02``, ``last seen Tue 14:02``
    (this week), ``last seen 3 Nov 2026``; ``never seen`` for None. Local time."""
    if seen is None:
        return "never seen"
    when = datetime.datetime.fromtimestamp(seen)
    today = datetime.datetime.fromtimestamp(now).date()
    days = (today - when.date()).days
    if days <= 0:
        return f"last seen {when:%H:%M}"
    if days == 1:
        return f"last seen yesterday {when:%H:%M}"
    if days < 7:
        return f"last seen {when:%a %H:%M}"
    return f"last seen {when.day} {when:%b %Y}"
