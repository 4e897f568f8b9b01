"""Admission: which connections that have not logged in yet the relay keeps.

Invariants:
- Every connection that is not logged in (TLS handshake, greeting, REGISTER/LOGIN under way)
  is in :attr:`Admission.waiting`, in accept order, and counted under its peer address (an
  IPv6 /64 counts as one, :func:`relay.auth.address_key`), from accept until it logs in or
  closes. :meth:`allows`, :meth:`add`, :meth:`remove` and :meth:`oldest` are O(1).
- At most ``per_address`` of them per peer address: the caller refuses a further one at once.
  When the total reaches ``total`` (or the connection or open-file limit is hit) the caller
  closes :meth:`oldest` to make room, so a flood of idle connections cannot lock new users
  out; logged-in sessions are never evicted for room.
- Refusals are logged at most once per address per ``REFUSAL_LOG_INTERVAL`` seconds, with the
  number refused since the previous line; at most ``MAX_REFUSAL_KEYS`` addresses are tracked
  (the rest share one line), so the log and this table stay bounded whatever peers do.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from relay.auth import address_key

if TYPE_CHECKING:
    from relay.connection import Connection

log = logging.getLogger("parley.relay")

REFUSAL_LOG_INTERVAL = 10.0
MAX_REFUSAL_KEYS = 1024
_OTHER_ADDRESSES = "other addresses"


class Admission:
    """Connections not logged in yet, by accept time and by peer address."""

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self.waiting: OrderedDict[int, Connection] = OrderedDict()
        self._per_address: dict[str, int] = {}
        # address -> (refusals not logged yet, when its last line was logged, last reason)
        self._refusals: dict[str, tuple[int, float, str]] = {}

    def allows(self, host: str) -> bool:
        """Whether one more connection from ``host`` may wait for its login."""
        return self._per_address.get(address_key(host), 0) < self.per_address

    @property
    def full(self) -> bool:
        return len(self.waiting) >= self.total

    def add(self, conn: Connection) -> None:
        self.waiting[conn.id] = conn
        address = address_key(conn.peer_host)
        self._per_address[address] = self._per_address.get(address, 0) + 1

    def remove(self, conn: Connection) -> None:
        """``conn`` logged in or closed (idempotent)."""
        if self.waiting.pop(conn.id, None) is None:
            return
        address = address_key(conn.peer_host)
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]

    def oldest(self) -> Connection | None:
        """The connection that has waited longest, if any."""
        for conn in self.waiting.values():
            return conn
        return None

    def refused(self, host: str, reason: str, now: float) -> None:
        """Count a refused connection; log it unless its address was logged recently."""
        key = address_key(host)
        if key not in self._refusals and len(self._refusals) >= MAX_REFUSAL_KEYS:
            key = _OTHER_ADDRESSES
        count, logged_at, _ = self._refusals.get(key, (0, float("-inf"), reason))
        count += 1
        if now - logged_at >= REFUSAL_LOG_INTERVAL:
            _log_refusals(key, count, reason)
            self._refusals[key] = (0, now, reason)
        else:
            self._refusals[key] = (count, logged_at, reason)

    def flush_refusal_log(self, now: float) -> None:
        """Log counts held back for ``REFUSAL_LOG_INTERVAL``; forget quiet addresses."""
        for key, (count, logged_at, reason) in list(self._refusals.items()):
            if now - logged_at < REFUSAL_LOG_INTERVAL:
                continue
            if count:
                _log_refusals(key, count, reason)
                self._refusals[key] = (0, now, reason)
            else:
                del self._refusals[key]


def _log_refusals(address: str, count: int, reason: str) -> None:
    log.warning(
        "refused %d connection%s from %s: %s", count, "" if count == 1 else "s", address, reason
    )
