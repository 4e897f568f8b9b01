"""``TransferBook``: the Files pane's record of the transfers it shows.

No Textual and no I/O: transfer snapshots and events in, the newest snapshot per transfer
out, so it is unit-tested without an app.

State owned: the newest :class:`~tui.client.transfer.store.Transfer` snapshot of every
transfer the book was told about (by the initial load or by events), keyed by local id.

Invariant: a transfer in a final state is never moved back by a later (stale) snapshot or
event, because the engine's events per transfer come in order and end with exactly one
final event.
"""

from __future__ import annotations

from tui.client.transfer.events import TransferEvent, TransferProgress
from tui.client.transfer.store import Transfer


class TransferBook:
    """The newest snapshot of each transfer, oldest first (see the module docstring)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Transfer] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, local_id: object) -> bool:
        return local_id in self._by_id

    def get(self, local_id: int) -> Transfer | None:
        return self._by_id.get(local_id)

    def ordered(self) -> list[Transfer]:
        return [self._by_id[key] for key in sorted(self._by_id)]

    def put(self, transfer: Transfer) -> tuple[Transfer, bool]:
        """Record ``transfer``; returns (what is now recorded, whether it is new). A
        snapshot never replaces a final one."""
        current = self._by_id.get(transfer.id)
        if current is not None and current.state.final and not transfer.state.final:
            return current, False
        self._by_id[transfer.id] = transfer
        return transfer, current is None

    def apply(self, event: TransferEvent) -> tuple[Transfer, bool]:
        """Record the snapshot an event carries (a progress event's live offset, rate and
        ETA included); returns (the row's transfer, whether it is new)."""
        transfer = event.transfer
        if isinstance(event, TransferProgress):
            current = self._by_id.get(transfer.id)
            if current is not None and current.state.final:
                return current, False
        return self.put(transfer)

    def forget(self, local_id: int) -> None:
        self._by_id.pop(local_id, None)
