"""Who is logged in, on which connection, and whose buddies they are.

:class:`Sessions` is the one owner of the online map and the buddy cache; the loop,
:mod:`relay.presence`, :mod:`relay.delivery` and the handlers ask it.

Invariants:
- A user has at most one live session: ``online[uid]`` is its connection, OPEN or being
  reset; a connection leaves the map only through :meth:`Sessions.detach` (the loop's one
  teardown path) or when a new login takes the user over (:meth:`Sessions.take_over`).
- ``buddies[uid]`` exists exactly while ``uid`` is online and equals the store's mutual
  buddies of ``uid`` as of the last relation change pushed (:meth:`Sessions.refresh`).
- Presence is shown only between buddies: a user sees ``online`` = true for itself and its
  online buddies only (:meth:`Sessions.shows_online`).
"""

from __future__ import annotations

from relay.connection import Connection
from relay.store import Store


class Sessions:
    """The online map and buddy cache of one relay (module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.online: dict[int, Connection] = {}
        self.buddies: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return len(self.online)

    def get(self, uid: int) -> Connection | None:
        """``uid``'s live session, if it is online."""
        return self.online.get(uid)

    def take_over(self, uid: int) -> Connection | None:
        """A new login of ``uid`` begins: its previous session (the caller resets it), which
        leaves the map now so its teardown announces nothing."""
        return self.online.pop(uid, None)

    def attach(self, uid: int, conn: Connection) -> None:
        """``conn`` is now ``uid``'s session; its buddies are read from the store."""
        self.online[uid] = conn
        self.buddies[uid] = self.store.buddy_ids(uid)

    def detach(self, conn: Connection) -> bool:
        """``conn`` ends; True if it was its user's live session (now offline)."""
        uid = conn.uid
        if uid and self.online.get(uid) is conn:
            del self.online[uid]
            self.buddies.pop(uid, None)
            return True
        return False

    def refresh(self, uid: int) -> None:
        """Read an online user's buddies again (a relation of theirs changed)."""
        if uid in self.online:
            self.buddies[uid] = self.store.buddy_ids(uid)

    def shows_online(self, viewer: int, uid: int) -> bool:
        """Whether ``viewer`` (logged in) may see ``uid`` online: itself or a buddy, online."""
        return uid in self.online and (uid == viewer or uid in self.buddies.get(viewer, ()))

    def viewers_of(self, uid: int) -> list[int]:
        """Online users whose cached buddies include ``uid``."""
        return [viewer for viewer, buddies in self.buddies.items() if uid in buddies]
