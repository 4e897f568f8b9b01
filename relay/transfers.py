"""Per-user accounting of open file transfers (PROTOCOL.md section 8, relay limits).

The relay does not interpret file contents; it only counts how many transfers each user
has offered and not yet finished, so one user cannot open unbounded concurrent transfers,
and refuses offers above the configured file size.

Invariants:
- Memory is bounded: at most ``max_per_user`` open transfers per user are remembered, and
  an offer nobody answered stops counting after ``OFFER_LIFETIME`` seconds.
- The ledger is advisory state in memory: a relay restart forgets it, which can only
  loosen the limit, never lose a message (offers themselves are durable messages).
"""

from __future__ import annotations

OFFER_LIFETIME = 3600.0


class TransferLedger:
    def __init__(self, max_per_user: int) -> None:
        self.max_per_user = max_per_user
        self._open: dict[int, dict[int, tuple[int, float]]] = {}

    def _live(self, uid: int, now: float) -> dict[int, tuple[int, float]]:
        transfers = self._open.get(uid)
        if transfers is None:
            return {}
        expired = [tid for tid, (_, since) in transfers.items() if now - since > OFFER_LIFETIME]
        for tid in expired:
            del transfers[tid]
        if not transfers:
            del self._open[uid]
            return {}
        return transfers

    def offer(self, uid: int, transfer_id: int, size: int, now: float) -> bool:
        """Record an offer; False if the user already has the maximum open."""
        transfers = self._live(uid, now)
        if transfer_id in transfers:
            transfers[transfer_id] = (size, now)
            return True
        if len(transfers) >= self.max_per_user:
            return False
        self._open.setdefault(uid, {})[transfer_id] = (size, now)
        return True

    def touch(self, offerer: int, transfer_id: int, now: float) -> None:
        """Activity on a transfer (accept, progress): it keeps counting as open."""
        transfers = self._open.get(offerer)
        if transfers is not None and transfer_id in transfers:
            size, _ = transfers[transfer_id]
            transfers[transfer_id] = (size, now)

    def finished(self, offerer: int, transfer_id: int) -> None:
        transfers = self._open.get(offerer)
        if transfers is not None:
            transfers.pop(transfer_id, None)
            if not transfers:
                del self._open[offerer]

    def progress(self, offerer: int, transfer_id: int, offset: int, now: float) -> None:
        """The receiver reported ``offset`` bytes: the transfer ends when it reaches size."""
        transfers = self._open.get(offerer)
        if transfers is None or transfer_id not in transfers:
            return
        size, _ = transfers[transfer_id]
        if offset >= size:
            self.finished(offerer, transfer_id)
        else:
            transfers[transfer_id] = (size, now)
