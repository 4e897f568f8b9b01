"""File transfer (PROTOCOL.md section 8), built by composition.

Modules (each states its invariants and what it owns):
- :mod:`~tui.client.transfer.manager` — :class:`TransferManager`, the public API (offer,
  accept, decline, cancel, forget); holds an engine and its wire.
- :mod:`~tui.client.transfer.engine` — :class:`~tui.client.transfer.engine.TransferEngine`:
  the runs, offers awaiting the relay, events, throttles; the host every run calls back.
- :mod:`~tui.client.transfer.wire` — session events and file messages → engine calls.
- :mod:`~tui.client.transfer.send` / :mod:`~tui.client.transfer.receive` — one run each way.
- :mod:`~tui.client.transfer.logic` — send window, receive cursor, rate (pure).
- :mod:`~tui.client.transfer.files` / :mod:`~tui.client.transfer.names` — disk, file names.
- :mod:`~tui.client.transfer.store` — the transfers database; ``events`` — event types.
"""

from tui.client.transfer.events import TransferEvent
from tui.client.transfer.logic import TransferOptions
from tui.client.transfer.manager import TransferError, TransferManager
from tui.client.transfer.store import Transfer, TransferState

__all__ = [
    "Transfer",
    "TransferError",
    "TransferEvent",
    "TransferManager",
    "TransferOptions",
    "TransferState",
]
