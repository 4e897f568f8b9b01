"""Who is logged in, on which device and connection, and whose buddies they are.

:class:`Sessions` is the one owner of the session maps and the buddy cache; the loop,
:mod:`relay.presence`, :mod:`relay.delivery` and the handlers ask it.

Invariants (PROTOCOL.md sections 5 and 9):
- A box (one device's inbox) has at most one live session: ``by_box[box]`` is its
  connection, OPEN or being reset. A new login on the same device takes the box over
  (:meth:`Sessions.take_over`); sessions on other devices stay.
- ``online[uid]`` lists the user's live *receiving* sessions (not ``send_only`` ones) and
  exists exactly while it has one: a user is online while any receiving session lives.
  ``of_user[uid]`` lists every live session of the user, ``send_only`` ones included.
- A connection leaves the maps only through :meth:`Sessions.detach` (the loop's one teardown
  path) or when a new login takes its box over.
- ``buddies[uid]`` exists exactly while ``uid`` has a live session and equals the store's
  mutual buddies of ``uid`` as of the last relation change pushed (:meth:`Sessions.refresh`).
- Presence is shown only between buddies: a user sees ``online`` = true for itself and its
  online buddies only (:meth:`Sessions.shows_online`).
"""

from __future__ import annotations

from relay.connection import Connection
from relay.store import Store


class Sessions:
    """The session maps and buddy cache of one relay (module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.by_box: dict[int, Connection] = {}
        self.online: dict[int, list[Connection]] = {}
        self.of_user: dict[int, list[Connection]] = {}
        self.buddies: dict[int, set[int]] = {}

    def __len__(self) -> int:
        """Live sessions, in all."""
        return sum(len(conns) for conns in self.of_user.values())

    def receiving(self, uid: int) -> list[Connection]:
        """``uid``'s live receiving sessions (empty if it is offline)."""
        return self.online.get(uid, [])

    def all_of(self, uid: int) -> list[Connection]:
        """Every live session of ``uid``, ``send_only`` ones included."""
        return self.of_user.get(uid, [])

    def take_over(self, box: int) -> Connection | None:
        """A new login on ``box``'s device begins: its previous session (the caller resets
        it), which leaves the maps now so its teardown announces nothing."""
        old = self.by_box.get(box)
        if old is not None:
            self._remove(old)
        return old

    def attach(self, conn: Connection) -> bool:
        """``conn`` (logged in: uid, box and send_only set) is now a live session; its
        user's buddies are read from the store if it had no session. True if the user has
        just come online (its first receiving session)."""
        uid = conn.uid
        sessions = self.of_user.get(uid)
        if sessions is None:
            self.of_user[uid] = [conn]
            self.buddies[uid] = self.store.buddy_ids(uid)
        else:
            sessions.append(conn)
        if conn.send_only:
            return False
        self.by_box[conn.box] = conn
        receiving = self.online.get(uid)
        if receiving is None:
            self.online[uid] = [conn]
            return True
        receiving.append(conn)
        return False

    def detach(self, conn: Connection) -> bool:
        """``conn`` ends; True if it was its user's last receiving session (now offline)."""
        return self._remove(conn)

    def _remove(self, conn: Connection) -> bool:
        uid = conn.uid
        sessions = self.of_user.get(uid)
        if not uid or sessions is None or conn not in sessions:
            return False
        sessions.remove(conn)
        if not sessions:
            del self.of_user[uid]
            self.buddies.pop(uid, None)
        if conn.send_only:
            return False
        if self.by_box.get(conn.box) is conn:
            del self.by_box[conn.box]
        receiving = self.online.get(uid)
        if receiving is None or conn not in receiving:
            return False
        receiving.remove(conn)
        if receiving:
            return False
        del self.online[uid]
        return True

    def refresh(self, uid: int) -> None:
        """Read a logged-in user's buddies again (a relation of theirs changed)."""
        if uid in self.of_user:
            self.buddies[uid] = self.store.buddy_ids(uid)

    def shows_online(self, viewer: int, uid: int) -> bool:
        """Whether ``viewer`` (logged in) may see ``uid`` online: itself or a buddy, online."""
        return uid in self.online and (uid == viewer or uid in self.buddies.get(viewer, ()))

    def viewers_of(self, uid: int) -> list[int]:
        """Logged-in users whose cached buddies include ``uid``."""
        return [viewer for viewer, buddies in self.buddies.items() if uid in buddies]
