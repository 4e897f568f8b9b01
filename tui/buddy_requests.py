"""``BuddyRequests``: the buddy-list requests the user makes, and what to tell them after.

Adding (which also accepts a request), removing (which also declines one) and refreshing
the buddy list are requests to the relay; each method awaits the answer and returns the
:class:`~tui.state.chat.Notice` to show. No Textual here: the main screen runs these in its
workers and shows the notices.

Invariants:
- No failure escapes: a lost connection, a timeout or a session error becomes an error
  notice (or, for a refresh, nothing — its answer also arrives as a session event).
- Notice texts contain peer names (already made safe by the caller) and error texts: plain
  text, shown with ``markup=False``.
- The buddy list itself is never changed here: the relay's answer arrives as a
  ``BuddyListChanged`` event, which :class:`~tui.state.chat.ChatState` applies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from protocol import chat_pb2 as pb
from tui.client.login import SessionError
from tui.client.session import ClientSession
from tui.state.chat import Notice

REQUEST_ERRORS = (SessionError, TimeoutError, ConnectionError)


class BuddyRequests:
    """See the module docstring."""

    def __init__(
        self, session: ClientSession, on_remove: Callable[[int], None] = lambda uid: None
    ) -> None:
        self.session = session
        self.on_remove = on_remove  # told before a removal is asked for (its end is ours)

    async def refresh(self) -> None:
        """Ask for the buddy list (the answer arrives as an event; failures are ignored)."""
        with contextlib.suppress(*REQUEST_ERRORS):
            await self.session.list_buddies()

    async def add(self, uid: int, name: str) -> Notice:
        """Send a buddy request to ``uid`` (or accept theirs)."""
        try:
            code = await self.session.add_buddy(uid)
        except REQUEST_ERRORS as exc:
            return Notice(f"Adding {name} failed: {exc}", severity="error")
        if code == pb.AddBuddyResponse.SUCCESS:
            return Notice(f"You and {name} are now buddies.")
        if code == pb.AddBuddyResponse.PENDING:
            return Notice(f"Buddy request sent to {name}.")
        return Notice(f"The relay refused to add {name}.", severity="error")

    async def remove(self, uid: int, name: str, *, declined: bool = False) -> Notice:
        """Remove buddy ``uid`` — or, with ``declined``, decline their request."""
        self.on_remove(uid)
        try:
            code = await self.session.remove_buddy(uid)
        except REQUEST_ERRORS as exc:
            return Notice(f"Removing {name} failed: {exc}", severity="error")
        if code != pb.RemoveBuddyResponse.SUCCESS:
            return Notice(f"The relay refused to remove {name}.", severity="error")
        if declined:
            return Notice(f"Declined {name}'s request.")
        return Notice(f"{name} removed from your buddies.")
