"""The tokens table: hashes of resume tokens (never the tokens).

Invariants:
- Only a token's hash is stored; a token is valid while now < its expiry.
- A user's tokens go with it (``ON DELETE CASCADE``).
- Adding a token is best effort: skipped while the store cannot write (a login must still
  work then).

Owns no state beyond the rows.
"""

from __future__ import annotations

from relay.store.database import Database

SQL_ADD_TOKEN = "INSERT OR REPLACE INTO tokens (token_hash, uid, expires) VALUES (?, ?, ?)"
SQL_TOKEN_OWNER = "SELECT uid FROM tokens WHERE token_hash = ? AND expires > ?"
SQL_REVOKE_TOKENS = "DELETE FROM tokens WHERE uid = ?"
SQL_PRUNE_TOKENS = "DELETE FROM tokens WHERE expires <= ?"


class Tokens:
    """Reads and writes of the tokens table."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_token(self, uid: int, token_hash: bytes, expires: int) -> None:
        """Store the hash (never the token) of a resume token valid while now < ``expires``.

        Best effort: skipped while the store is unavailable, so a login still works then (the
        token is refused later and the client falls back to its password).
        """
        if self._db.available:
            self._db.write().execute(SQL_ADD_TOKEN, (token_hash, uid, expires))

    def token_owner(self, token_hash: bytes, now: int) -> int | None:
        """The uid owning the token, or None if unknown or expired."""
        row = self._db._con.execute(SQL_TOKEN_OWNER, (token_hash, now)).fetchone()
        return None if row is None else int(row[0])

    def revoke_tokens(self, uid: int) -> int:
        """Delete every token of ``uid``; returns how many."""
        return self._db.write().execute(SQL_REVOKE_TOKENS, (uid,)).rowcount

    def prune_tokens(self, now: int) -> int:
        """Delete expired tokens; returns how many."""
        return self._db.write().execute(SQL_PRUNE_TOKENS, (now,)).rowcount
