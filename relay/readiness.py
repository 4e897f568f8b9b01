"""What the loop waits for on each socket, and which connections it serves without waiting.

:class:`Readiness` owns the selector's registrations of connections, the set of connections
to serve next pass whatever ``select`` says, and the two ways reading is suspended:
backpressure (output above high water) and the input budget (:mod:`relay.intake`).

Invariants:
- A connection's socket is registered for exactly ``conn.registered_mask``; 0 means it is not
  in the selector. Only :meth:`Readiness.set_interest` changes either.
- A connection whose reads are suspended (``conn.output_blocked`` or ``conn.input_paused``)
  is neither selected for reading nor in ``ready``; when both suspensions end it goes back
  to ``ready`` (OpenSSL may hold decrypted bytes ``select`` cannot see) and is selected for
  reading again.
- ``ready`` holds open connections only: the loop removes a connection from it
  (:meth:`Readiness.forget`) when it is reset or closed.

State owned: the selector, ``ready``, the input budget's bookkeeping through ``intake``.
"""

from __future__ import annotations

import selectors

from relay.connection import Connection, ConnState
from relay.intake import InputBudget


class Readiness:
    """The selector and read suspension of one relay's connections (module docstring)."""

    def __init__(self, intake: InputBudget) -> None:
        self.selector = selectors.DefaultSelector()
        self.intake = intake
        self.ready: set[Connection] = set()

    def take_ready(self) -> set[Connection]:
        """The connections to serve this pass without waiting; ``ready`` starts empty."""
        ready, self.ready = self.ready, set()
        return ready

    def forget(self, conn: Connection, now: float) -> None:
        """``conn`` is being reset or closed: it holds no input budget and is not served
        without waiting any more."""
        self.intake.release(conn, now)
        self.ready.discard(conn)

    def watch(self, conn: Connection, writing: bool | None = None) -> None:
        """Select ``conn`` for reading unless its reads are suspended, and for writing while
        ``writing`` (None: as now)."""
        if writing is None:
            writing = bool(conn.registered_mask & selectors.EVENT_WRITE)
        mask = selectors.EVENT_WRITE if writing else 0
        if not (conn.output_blocked or conn.input_paused):
            mask |= selectors.EVENT_READ
        self.set_interest(conn, mask)

    def set_interest(self, conn: Connection, mask: int) -> None:
        """Select ``conn``'s socket for ``mask``; 0 takes it out of the selector."""
        current = conn.registered_mask
        if mask == current:
            return
        if not mask:
            self.selector.unregister(conn.sock)
        elif not current:
            self.selector.register(conn.sock, mask, conn)
        else:
            self.selector.modify(conn.sock, mask, conn)
        conn.registered_mask = mask

    def block_reads(self, conn: Connection) -> None:
        """Queued output is above high water: read nothing more until it drains to half."""
        if not conn.output_blocked:
            conn.output_blocked = True
            self.ready.discard(conn)
            self.watch(conn)

    def unblock_reads(self, conn: Connection, now: float) -> None:
        """Queued output drained to half the high-water mark."""
        conn.output_blocked = False
        self.resume_reading(conn, now)

    def pause_input(self, conn: Connection) -> None:
        """The input budget is spent and ``conn`` holds input: it waits until there is room."""
        self.intake.pause(conn)
        self.watch(conn)

    def resume_reading(self, conn: Connection, now: float) -> None:
        """Read ``conn`` again if nothing suspends its reads any more."""
        if conn.output_blocked or conn.input_paused or conn.state is not ConnState.OPEN:
            return
        conn.input_since = now  # the frame timeout does not count the wait
        self.ready.add(conn)  # OpenSSL may hold decrypted bytes select cannot see
        self.watch(conn)
