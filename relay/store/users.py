"""The users table: accounts, their names and password hashes.

Invariants:
- uids are never reused (AUTOINCREMENT); a rejected insert does not consume one.
- A new user's name differs from every stored one in ``username_key`` (case-insensitive,
  UNIQUE; logins look users up by it) and in ``username_skeleton`` (look-alikes, Unicode
  TR39; indexed, not unique: pairs registered before the skeleton existed are both kept).
- ``unix_uid`` binds an account to one local Unix user (UNIQUE; NULL for network-only
  accounts). A local account created on first login has the password hash ``""``, which no
  password matches, until an admin sets one.
- ``users.head_seq`` and ``users.delivered_seq`` belong to the user's inbox
  (:mod:`relay.store.inboxes` writes them); :class:`UserRecord` only reports ``head_seq``.

Owns no state beyond the rows (the connection is :class:`relay.store.database.Database`'s).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import starmap

from protocol.validation import username_skeleton
from relay.store.database import Database, fold

_USER_COLS = (
    "uid, username, username_key, password_hash, protocol_version, head_seq, created, unix_uid"
)

# Not ON CONFLICT DO NOTHING: that would still consume a uid from the AUTOINCREMENT sequence.
SQL_ADD_USER = (
    "INSERT INTO users (username, username_key, username_skeleton, password_hash, created)"
    " SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS"
    " (SELECT 1 FROM users WHERE username_key = ?2 OR username_skeleton = ?3)"
)
SQL_ADD_LOCAL_USER = (
    "INSERT INTO users (username, username_key, username_skeleton, password_hash, created,"
    " unix_uid) SELECT ?1, ?2, ?3, '', ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM users"
    " WHERE username_key = ?2 OR username_skeleton = ?3 OR unix_uid = ?5)"
)
SQL_USER_BY_UNIX_UID = f"SELECT {_USER_COLS} FROM users WHERE unix_uid = ?"
SQL_BIND_UNIX_UID = (
    "UPDATE users SET unix_uid = ?1 WHERE uid = ?2"
    " AND NOT EXISTS (SELECT 1 FROM users WHERE unix_uid = ?1 AND uid != ?2)"
)
SQL_USERNAME_TAKEN = "SELECT 1 FROM users WHERE username_key = ? OR username_skeleton = ?"
SQL_USER_BY_UID = f"SELECT {_USER_COLS} FROM users WHERE uid = ?"
SQL_USER_BY_KEY = f"SELECT {_USER_COLS} FROM users WHERE username_key = ?"
SQL_LIST_USERS = f"SELECT {_USER_COLS} FROM users ORDER BY uid LIMIT ?"
SQL_LIST_USERS_MATCHING = (
    f"SELECT {_USER_COLS} FROM users WHERE instr(parley_fold(username), ?) > 0 ORDER BY uid LIMIT ?"
)
SQL_SET_PASSWORD_HASH = "UPDATE users SET password_hash = ? WHERE uid = ?"
SQL_SET_PROTOCOL_VERSION = "UPDATE users SET protocol_version = ? WHERE uid = ?"
SQL_REMOVE_USER = "DELETE FROM users WHERE uid = ?"
SQL_USER_COUNT = "SELECT count(*) FROM users"


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user row. ``head_seq`` is the highest inbox seq ever assigned to the user."""

    uid: int
    username: str
    username_key: str
    password_hash: str
    protocol_version: int
    head_seq: int
    created: int
    unix_uid: int | None = None


class Users:
    """Reads and writes of the users table."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_user(
        self, username: str, username_key: str, password_hash: str, now: int
    ) -> int | None:
        """Create a user and return its uid (from 1, never reused); None if the name is taken
        (see :meth:`username_taken`)."""
        cur = self._db.write().execute(
            SQL_ADD_USER, (username, username_key, username_skeleton(username), password_hash, now)
        )
        return cur.lastrowid if cur.rowcount == 1 else None

    def add_local_user(
        self, username: str, username_key: str, unix_uid: int, now: int
    ) -> int | None:
        """Create an account bound to ``unix_uid`` with no usable password; None if the name
        is taken (as for :meth:`add_user`) or the Unix uid is bound already."""
        cur = self._db.write().execute(
            SQL_ADD_LOCAL_USER, (username, username_key, username_skeleton(username), now, unix_uid)
        )
        return cur.lastrowid if cur.rowcount == 1 else None

    def user_by_unix_uid(self, unix_uid: int) -> UserRecord | None:
        row = self._db._con.execute(SQL_USER_BY_UNIX_UID, (unix_uid,)).fetchone()
        return None if row is None else UserRecord(*row)

    def bind_unix_uid(self, uid: int, unix_uid: int) -> bool:
        """Bind account ``uid`` to ``unix_uid``; False if no such account or another account
        holds that Unix uid."""
        cur = self._db.write().execute(SQL_BIND_UNIX_UID, (unix_uid, uid))
        return cur.rowcount == 1

    def username_taken(self, username: str, username_key: str) -> bool:
        """True if a user has this key (the same name, whatever its case) or a name that looks
        like ``username`` (the same confusable skeleton)."""
        row = self._db._con.execute(
            SQL_USERNAME_TAKEN, (username_key, username_skeleton(username))
        ).fetchone()
        return row is not None

    def user_by_uid(self, uid: int) -> UserRecord | None:
        row = self._db._con.execute(SQL_USER_BY_UID, (uid,)).fetchone()
        return None if row is None else UserRecord(*row)

    def user_by_key(self, username_key: str) -> UserRecord | None:
        row = self._db._con.execute(SQL_USER_BY_KEY, (username_key,)).fetchone()
        return None if row is None else UserRecord(*row)

    def list_users(self, query: str, limit: int) -> tuple[list[UserRecord], bool]:
        """Users whose name contains ``query`` case-insensitively, by uid, at most ``limit``.

        The flag is True when more users matched than were returned.
        """
        limit = max(limit, 0)
        if query:
            cur = self._db._con.execute(SQL_LIST_USERS_MATCHING, (fold(query), limit + 1))
        else:
            cur = self._db._con.execute(SQL_LIST_USERS, (limit + 1,))
        users = list(starmap(UserRecord, cur))
        return users[:limit], len(users) > limit

    def set_password_hash(self, uid: int, password_hash: str) -> bool:
        """Replace a user's password hash; False if there is no such user."""
        return self._db.write().execute(SQL_SET_PASSWORD_HASH, (password_hash, uid)).rowcount == 1

    def set_protocol_version(self, uid: int, version: int) -> None:
        """Record the protocol version of the user's latest login. Best effort: skipped while
        the store is unavailable (a login must still work then)."""
        if self._db.available:
            self._db.write().execute(SQL_SET_PROTOCOL_VERSION, (version, uid))

    def remove_user(self, uid: int) -> bool:
        """Delete the user row; its relations and tokens go with it (``ON DELETE CASCADE``).
        False if no such user."""
        return self._db.write().execute(SQL_REMOVE_USER, (uid,)).rowcount == 1

    def user_count(self) -> int:
        count: int = self._db._con.execute(SQL_USER_COUNT).fetchone()[0]
        return count
