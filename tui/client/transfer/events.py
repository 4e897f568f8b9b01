"""Events of the file-transfer engine and how they are delivered.

Delivery mirrors :mod:`tui.client.events`: ``manager.add_listener(callback)``; callbacks run
synchronously on the event loop, must not block, and their exceptions are logged and
swallowed. The Textual app's callback can be one line:
``lambda ev: app.post_message(TransferEvent(ev))``.

Invariants:
- Events are immutable values carrying a :class:`~tui.client.transfer.store.Transfer`
  snapshot; nothing in them refers back into the engine.
- Per transfer, events come in the order things happened; exactly one of
  TransferCompleted / TransferFailed / TransferCancelled / TransferDeclined ends it.
- TransferProgress is throttled (at most one per transfer per ``progress_interval``, plus
  one when the bytes are complete), so a fast transfer cannot flood a UI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tui.client.transfer.store import Transfer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferOffered:
    """A peer offers us a file (v2 FILE_OFFER or a v1 FILE): accept or decline it."""

    transfer: Transfer


@dataclass(frozen=True)
class TransferUpdated:
    """Anything else changed: we offered, it was accepted (``start_offset`` > 0: resumed),
    a restart, a new target path… Re-render the row from ``transfer``."""

    transfer: Transfer


@dataclass(frozen=True)
class TransferProgress:
    """Bytes confirmed so far (``bytes`` of ``total``), rate in bytes/s, ETA in s (None:
    unknown yet)."""

    transfer: Transfer
    bytes: int
    total: int
    rate: float
    eta: float | None


@dataclass(frozen=True)
class TransferCompleted:
    """Verified and done. ``path``: receiver: the final file; sender: the source."""

    transfer: Transfer
    path: Path


@dataclass(frozen=True)
class TransferFailed:
    """Ended by an error (relay refusal, checksum mismatch, disk error…): ``reason``."""

    transfer: Transfer
    reason: str


@dataclass(frozen=True)
class TransferCancelled:
    """Cancelled by us or (``by_peer``) by the other side; ``reason`` is untrusted text
    when it comes from the peer."""

    transfer: Transfer
    by_peer: bool
    reason: str


@dataclass(frozen=True)
class TransferDeclined:
    """The receiver declined (``by_peer`` True on the sender's side)."""

    transfer: Transfer
    by_peer: bool


TransferEvent = (
    TransferOffered
    | TransferUpdated
    | TransferProgress
    | TransferCompleted
    | TransferFailed
    | TransferCancelled
    | TransferDeclined
)
TransferListener = Callable[[TransferEvent], None]


class TransferHub:
    """Fans events out to listeners, in order."""

    def __init__(self) -> None:
        self._listeners: list[TransferListener] = []

    def add_listener(self, listener: TransferListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def emit(self, event: TransferEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("transfer listener failed on %s", type(event).__name__)

    def clear(self) -> None:
        self._listeners.clear()
