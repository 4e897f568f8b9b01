"""The buddy list as data: unread counts per peer and the rows of the roster.

No Textual and no I/O, except :func:`stored_unread`, which reads the counts from the local
store; the rows are built from buddies, counts and typing markers passed in.

Invariants:
- Only chat messages (:data:`CHAT_TYPES`) count as unread; board strokes and transfer
  traffic belong to other panes.
- Row names are :func:`tui.display.safe_name` of the peer's name (plain text, bounded).
- A row's :attr:`RosterRow.key` is stable: the same person keeps it across updates.
- A message is counted once: counts read from the store (:func:`stored_unread`) remember the
  newest ``local_id`` they include, and :meth:`UnreadCounts.bump` ignores the events of
  messages at or below it (the session reports its backlog as events *after* storing it,
  possibly before the screen read the store).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from protocol import chat_pb2 as pb
from tui.client.events import Buddy
from tui.client.history import HistoryEntry
from tui.client.store import LocalStore
from tui.display import safe_name

# Message types shown in a conversation (the Files and Board panes own the others).
CHAT_TYPES = frozenset({pb.Message.MESSAGE, pb.Message.FILE_OFFER, pb.Message.FILE})


class UnreadCounts:
    """Unread messages per peer (what the buddy list shows).

    ``counted_through``: the newest ``local_id`` the initial counts include (0: none)."""

    def __init__(
        self, initial: Iterable[tuple[int, int]] = (), *, counted_through: int = 0
    ) -> None:
        self._counts: dict[int, int] = {peer: n for peer, n in initial if n > 0}
        self.counted_through = counted_through

    def bump(self, peer: int, local_id: int | None = None) -> int:
        """Count one more message from ``peer`` unless its ``local_id`` (the store's id of
        the message) is already in the initial counts; returns the count."""
        if local_id is None or local_id > self.counted_through:
            self._counts[peer] = self._counts.get(peer, 0) + 1
        return self._counts.get(peer, 0)

    def clear(self, peer: int) -> bool:
        """Forget the count of ``peer``; True if there was one."""
        return self._counts.pop(peer, 0) > 0

    def get(self, peer: int) -> int:
        return self._counts.get(peer, 0)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def total_where(self, keep: Callable[[int], bool]) -> int:
        """The total over the peers ``keep`` accepts (e.g. the chats not muted)."""
        return sum(n for peer, n in self._counts.items() if keep(peer))


def chat_unread(newest_last: Sequence[HistoryEntry], stored_unread: int) -> int:
    """How many of a conversation's ``stored_unread`` messages are chat messages.

    The store counts every durable incoming message as unread (board strokes too); the
    buddy list counts chat messages only. ``newest_last`` is a recent page of the
    conversation; the newest ``stored_unread`` incoming entries in it are the unread ones.
    """
    count = seen = 0
    for entry in reversed(newest_last):
        if seen >= stored_unread:
            break
        if not entry.outgoing:
            seen += 1
            count += entry.type in CHAT_TYPES
    return count


def stored_unread(store: LocalStore) -> UnreadCounts:
    """Unread chat messages per peer, from the store (see :func:`chat_unread`)."""
    counts = []
    conversations = store.conversations()
    newest = max((c.last_local_id for c in conversations), default=0)
    for conversation in conversations:
        if conversation.unread > 0:
            limit = min(2 * conversation.unread, 2_000)
            page = store.page(conversation.peer, limit=limit, types=CHAT_TYPES)
            counts.append((conversation.peer, chat_unread(page, conversation.unread)))
    return UnreadCounts(counts, counted_through=newest)


class RowKind(enum.Enum):
    HEADER = "header"
    INCOMING = "incoming"  # they asked us: accept / decline
    BUDDY = "buddy"
    OUTGOING = "outgoing"  # we asked them: pending


@dataclass(frozen=True)
class RosterRow:
    kind: RowKind
    uid: int = 0
    name: str = ""
    online: bool = False
    unread: int = 0
    typing: bool = False

    @property
    def key(self) -> str:
        """Stable option id: the same person keeps the same id across updates."""
        return f"{self.kind.value}-{self.uid}" if self.uid else f"{self.kind.value}-{self.name}"


_SECTIONS = (
    (RowKind.INCOMING, pb.User.REQUEST_RECEIVED, "Buddy requests"),
    (RowKind.BUDDY, pb.User.BUDDY, "Buddies"),
    (RowKind.OUTGOING, pb.User.REQUEST_SENT, "Waiting for answer"),
)


def build_roster(
    buddies: Iterable[Buddy], unread: UnreadCounts, typing: frozenset[int]
) -> list[RosterRow]:
    """Rows of the buddy list: requests first, then buddies (online first, by name), then
    our pending requests. A section header precedes each non-empty section."""
    by_relation: dict[int, list[Buddy]] = {}
    for buddy in buddies:
        by_relation.setdefault(buddy.relation, []).append(buddy)
    rows: list[RosterRow] = []
    for kind, relation, title in _SECTIONS:
        members = by_relation.get(relation, [])
        if not members and kind is not RowKind.BUDDY:
            continue
        rows.append(RosterRow(RowKind.HEADER, name=title))
        members.sort(key=lambda b: (not b.online, safe_name(b.username).casefold(), b.uid))
        for buddy in members:
            rows.append(
                RosterRow(
                    kind,
                    uid=buddy.uid,
                    name=safe_name(buddy.username, buddy.uid),
                    online=buddy.online,
                    unread=unread.get(buddy.uid) if kind is RowKind.BUDDY else 0,
                    typing=kind is RowKind.BUDDY and buddy.uid in typing,
                )
            )
    return rows
