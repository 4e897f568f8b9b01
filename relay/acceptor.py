"""Accepting connections: the listener, admission at the door, the TLS handshake, the
greeting.

Invariants:
- At most ``_ACCEPTS_PER_PASS`` accepts per loop pass: the rest of a connection flood waits
  in the kernel's backlog for the next pass instead of holding this one.
- A connection that is not logged in is admitted only within :mod:`relay.admission`'s
  bounds (per address, in all); when there is no room the oldest of them is closed, never
  a logged-in session. Past ``max_connections`` the same applies.
- When accept fails for want of descriptors and nothing can be evicted, the listener is
  taken out of the selector for ``_ACCEPT_BACKOFF`` seconds (the loop would spin on it
  otherwise), and the failure is logged at most every ``_ACCEPT_ERROR_LOG_INTERVAL``.
- On a TLS port, plaintext first bytes get a PROTOCOL_MISMATCH Reset in the clear, once;
  the handshake's WANT_READ/WANT_WRITE become selector interest.
- Every accepted connection has a handshake timer; every opened one a login timer, and is
  greeted with the RAW frame the original protocol sends.
- The Unix socket's connections (:mod:`relay.local_socket`) skip TLS, carry the peer's
  kernel credentials from accept on (``Connection.local_peer``), and count in admission
  under the address ``unix:<uid>``. An accept pause stops both listeners.

State owned: the listeners, their pause, the connection id counter, the accepted count.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import selectors
import socket
import ssl
from pathlib import Path
from typing import Protocol

from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.framing import encode_header
from protocol.types import FrameType
from relay.admission import Admission
from relay.config import RelayConfig
from relay.connection import Connection, ConnState
from relay.local_socket import (
    LocalListener,
    PeerCredentials,
    bind_local_socket,
    peer_credentials,
    remove_local_socket,
)
from relay.readiness import Readiness
from relay.timers import TIMER_HANDSHAKE, TIMER_LOGIN

log = logging.getLogger("parley.relay")

_ACCEPT_BACKOFF = 0.1
_ACCEPT_ERROR_LOG_INTERVAL = 10.0
_ACCEPTS_PER_PASS = 64
_TLS_RECORD_HANDSHAKE = 0x16


class AcceptorLoop(Protocol):
    """What accepting uses of the loop."""

    now: float
    stopping: bool
    connections: dict[int, Connection]
    to_reap: list[Connection]

    def close(self, conn: Connection, reason: str) -> None: ...

    def add_timer(self, delay: float, kind: str, conn: Connection) -> None: ...

    def send(self, conn: Connection, frame: bytes) -> None: ...


class Acceptor:
    """The listener and the way from accept to an open connection (module docstring)."""

    def __init__(
        self,
        config: RelayConfig,
        ssl_context: ssl.SSLContext | None,
        admission: Admission,
        readiness: Readiness,
        loop: AcceptorLoop,
    ) -> None:
        self._config = config
        self._ssl_context = ssl_context
        self._admission = admission
        self._readiness = readiness
        self._loop = loop
        self.listener: socket.socket | None = None
        self.local: LocalListener | None = None
        self.address: tuple[str, int] = ("", 0)
        self.paused_until = 0.0  # monotonic time accepts resume after a failure; 0: not paused
        self._error_logged_at = float("-inf")
        self._conn_ids = itertools.count(1)
        self.accepted_count = 0

    def listen(self) -> tuple[str, int]:
        """Bind and listen on the configured address; returns the (host, port) bound."""
        config = self._config
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sock.listen(4096)
        sock.setblocking(False)
        self.listener = sock
        self._readiness.selector.register(sock, selectors.EVENT_READ, None)
        self.address = sock.getsockname()[:2]
        return self.address

    def listen_local(self, path: str) -> None:
        """Bind and listen on the Unix socket at ``path`` (:mod:`relay.local_socket`)."""
        local = bind_local_socket(Path(path), 4096)
        self.local = local
        self._readiness.selector.register(local.sock, selectors.EVENT_READ, None)

    def _listeners(self) -> list[socket.socket]:
        found = [self.listener] if self.listener is not None else []
        return found + ([self.local.sock] if self.local is not None else [])

    def resume_if_due(self, now: float) -> None:
        """Watch the listeners again once an accept pause is over."""
        if self.paused_until and now >= self.paused_until:
            self.paused_until = 0.0
            for listener in self._listeners():
                self._readiness.selector.register(listener, selectors.EVENT_READ, None)

    def stop(self) -> None:
        """Close the listeners and remove the Unix socket's file (shutdown)."""
        if not self.paused_until:
            for listener in self._listeners():
                self._readiness.selector.unregister(listener)
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.local is not None:
            remove_local_socket(self.local)
            self.local = None

    def accept(self, listener: socket.socket) -> None:
        """Accept what ``listener`` holds, within this pass's bound (module docstring)."""
        config = self._config
        local = self.local is not None and listener is self.local.sock
        admission = self._admission
        # A bounded number of accepts per pass: the listener stays readable, so the rest of a
        # connection flood waits for the next pass instead of holding this one.
        for _ in range(_ACCEPTS_PER_PASS):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # reset by the peer while it waited in the backlog
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE) and self.evict_oldest_waiting(
                    "the open-file limit is reached"
                ):
                    continue  # a descriptor is free again
                # Nothing to evict (or no memory): the listener stays readable, so stop
                # watching it for a moment, or the loop would spin on accept.
                if self._loop.now - self._error_logged_at >= _ACCEPT_ERROR_LOG_INTERVAL:
                    self._error_logged_at = self._loop.now
                    log.error(
                        "accept failed: %s (raise the open-file limit); pausing accepts for %g s",
                        exc,
                        _ACCEPT_BACKOFF,
                    )
                for paused in self._listeners():
                    self._readiness.selector.unregister(paused)
                self.paused_until = self._loop.now + _ACCEPT_BACKOFF
                return
            credentials: PeerCredentials | None = None
            if local:
                try:
                    credentials = peer_credentials(sock)
                except OSError:
                    sock.close()
                    continue
                host = f"unix:{credentials.uid}"
            else:
                host = addr[0]
            if self._loop.stopping:
                sock.close()
                continue
            if not admission.allows(host):
                sock.close()
                admission.refused(
                    host,
                    f"{admission.per_address} connections from this address are not logged in yet",
                    self._loop.now,
                )
                continue
            if (
                len(self._loop.connections) - len(self._loop.to_reap) >= config.max_connections
                or admission.full
            ) and not self.evict_oldest_waiting(
                f"{len(admission.waiting)} connections are not logged in yet"
                if admission.full
                else "the connection limit is reached"
            ):
                sock.close()
                admission.refused(
                    host,
                    f"all {config.max_connections} connections are logged-in sessions",
                    self._loop.now,
                )
                continue
            try:
                sock.setblocking(False)
                if not local:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                sock.close()  # already reset by the peer
                continue
            conn = Connection(
                next(self._conn_ids),
                sock,
                f"{host}:pid={credentials.pid}" if credentials else f"{host}:{addr[1]}",
                host,
                config.max_frame_before_login,
                self._loop.now,
            )
            conn.local_peer = credentials
            self._loop.connections[conn.id] = conn
            admission.add(conn)
            self.accepted_count += 1
            log.info("conn=%d peer=%s accepted", conn.id, conn.peer)
            self._readiness.set_interest(conn, selectors.EVENT_READ)
            self._loop.add_timer(config.handshake_timeout, TIMER_HANDSHAKE, conn)
            if self._ssl_context is None or local:
                self.open(conn)

    def evict_oldest_waiting(self, why: str) -> bool:
        """Close the connection that has waited longest for its login, to make room."""
        oldest = self._admission.oldest()
        if oldest is None:
            return False
        self._loop.close(oldest, f"evicted to make room for a new connection: {why}")
        return True

    def peek_then_wrap(self, conn: Connection) -> None:
        """First bytes on a TLS port: a TLS handshake record is wrapped, anything else gets
        a Reset in the clear."""
        try:
            first = conn.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._loop.close(conn, f"error before handshake: {exc}")
            return
        if not first:
            self._loop.close(conn, "closed before handshake")
            return
        if first[0] != _TLS_RECORD_HANDSHAKE:
            # Plain protocol bytes (or garbage) on the TLS port: say so in the clear, once.
            reset = pb.Reset(
                code=pb.Reset.PROTOCOL_MISMATCH,
                msg="this relay requires TLS; connect with TLS enabled",
            )
            # Read what the peer sent and half-close first: closing with unread input makes
            # the kernel answer RST, which can destroy the Reset before the peer reads it.
            with contextlib.suppress(OSError):
                conn.sock.send(encode_frame(FrameType.RESET, reset))
                conn.sock.shutdown(socket.SHUT_WR)
                while conn.sock.recv(65536):
                    pass
            self._loop.close(conn, "handshake failed: plaintext bytes on the TLS port")
            return
        assert self._ssl_context is not None
        self._readiness.set_interest(conn, 0)  # the TLS wrapper is a new socket object
        conn.sock = self._ssl_context.wrap_socket(
            conn.sock, server_side=True, do_handshake_on_connect=False
        )
        conn.tls = True
        conn.state = ConnState.HANDSHAKE
        self._readiness.set_interest(conn, selectors.EVENT_READ)
        self.handshake(conn)

    def handshake(self, conn: Connection) -> None:
        """Advance the TLS handshake; once done, the connection opens."""
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._readiness.set_interest(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._readiness.set_interest(conn, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as exc:
            self._loop.close(conn, f"handshake failed: {getattr(exc, 'reason', None) or exc}")
            return
        self._readiness.set_interest(conn, selectors.EVENT_READ)
        self.open(conn)

    def open(self, conn: Connection) -> None:
        """The connection is ready for frames: start its login timer and greet it."""
        conn.state = ConnState.OPEN
        conn.last_rx = self._loop.now
        self._loop.add_timer(self._config.login_timeout, TIMER_LOGIN, conn)
        greeting = f"This is a chat server. Hello, {conn.peer_host}!".encode()
        self._loop.send(conn, encode_header(FrameType.RAW, len(greeting)) + greeting)
