"""Around a login: when a running session needs the user to log in again (and what to tell
them), and which chat to reopen after logging in.

The relay ends a session whose password an administrator changed (``parley-relay user
passwd``) with Reset KICKED and a reason saying so; the session's token is void, so every
retry (F5, "take the session back") fails with PASSWORD_ERROR. Retrying the old password
cannot help: the app goes back to the login form with :func:`relogin_reason`'s sentence.

Invariant: pure (no widgets, no session); the protocol has no code for "credentials
changed", so a KICKED Reset counts only when its reason mentions the password, and any
login refusal of the password or the user (LoginFailed) counts too.

The last open chat is kept per device in the user's history database (its ``meta`` table),
so it follows the relay and user and survives a crash; it is reopened only if that
conversation still has history there.
"""

from __future__ import annotations

from protocol import chat_pb2 as pb
from tui.client.events import ConnectionState, ConnectionStateChanged
from tui.client.login import LoginFailed, RelayReset
from tui.client.session import ClientSession
from tui.feed import FeedItem


def relogin_reason(event: FeedItem) -> str | None:
    """The sentence for the login form when ``event`` means the session cannot go on with
    the credentials it has; None otherwise."""
    if not isinstance(event, ConnectionStateChanged) or event.state is not ConnectionState.OFFLINE:
        return None
    error = event.error
    if isinstance(error, RelayReset) and error.code == pb.Reset.KICKED:
        if "password" in error.reason.casefold():
            return "Your password was changed on the relay: log in with the new one."
        return None
    if isinstance(error, LoginFailed):
        if error.code == pb.LoginResponse.USER_NOT_FOUND:
            return "The relay no longer knows your account: log in or register again."
        if error.code == pb.LoginResponse.PASSWORD_ERROR:
            return "The relay refused your password (was it changed?): log in again."
    return None


def _last_chat_key(session: ClientSession) -> str:
    return f"tui.last_chat:{session.device}"


def remember_chat(session: ClientSession, peer: int) -> None:
    """``peer``'s chat (a room: its negative id) was opened."""
    session.store.meta_set(_last_chat_key(session), peer)
    session.store.commit()


def last_chat(session: ClientSession) -> int | None:
    """The chat to reopen after logging in, if it still has history here."""
    peer = session.store.meta_get(_last_chat_key(session), 0)
    if peer and any(c.peer == peer for c in session.store.conversations()):
        return peer
    return None
