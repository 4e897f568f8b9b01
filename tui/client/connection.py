"""One connection to a relay: TLS (or plaintext) + the shared frame codec, nothing more.

Invariants:
- A local endpoint (:attr:`Endpoint.unix_path`, PROTOCOL.md section 11) is opened with
  ``asyncio.open_unix_connection`` and never with TLS or a trust policy: the kernel carries
  the bytes and tells the relay who we are.
- With a pinning policy the certificate fingerprint is checked right after the handshake and
  BEFORE any byte is sent or any frame is read; a refused relay is disconnected at once.
- Framing is :mod:`protocol` (``encode_frame`` / ``FrameDecoder``): never re-implemented here.
- Frames from the relay are decoded with ``Direction.TO_CLIENT``; a malformed frame answers
  ``Reset(code, reason)`` and closes (:class:`protocol.ProtocolError` propagates).
- :meth:`FrameConnection.close` is idempotent and never raises.
- :meth:`FrameConnection.receive` yields to the event loop at least every
  :data:`YIELD_EVERY` frames, so a burst of small frames (one read can hold thousands)
  never keeps the loop — and the UI running on it — busy for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections import deque
from dataclasses import dataclass

from google.protobuf.message import Message as ProtoMessage

from certs import fingerprint_of_der
from protocol import (
    Direction,
    FrameDecoder,
    FrameType,
    ProtocolError,
    decode_payload,
    encode_frame,
)
from protocol import chat_pb2 as pb
from tui.client.trust import CertificateVerificationFailed, TrustPolicy

log = logging.getLogger(__name__)

DEFAULT_PORT = 1025
# A relayed frame is the sender's frame plus a few header fields; leave room above the
# relay's 4 MiB default so a maximal v1 FILE still fits.
CLIENT_MAX_FRAME = 8 * 1024 * 1024
READ_CHUNK = 64 * 1024
YIELD_EVERY = 64


@dataclass(frozen=True)
class Endpoint:
    """Where a relay listens: a TCP host and port, or (``unix_path`` set) its local socket."""

    host: str
    port: int = DEFAULT_PORT
    unix_path: str | None = None

    @classmethod
    def local(cls, path: str) -> Endpoint:
        """The relay's Unix socket at ``path``; ``host`` is the path so history stays apart
        per socket."""
        return cls(path, 0, path)

    @property
    def is_local(self) -> bool:
        return self.unix_path is not None

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class ConnectionClosed(ConnectionError):
    """The relay closed the connection (EOF), possibly after a Reset."""


# A decoded incoming frame: its type and its message (str for the RAW greeting).
Incoming = tuple[FrameType, ProtoMessage | str]


class FrameConnection:
    """An open, trusted connection: send protobuf messages, receive decoded frames."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        fingerprint: str | None,
        max_frame: int = CLIENT_MAX_FRAME,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_frame)
        self._ready: deque[Incoming] = deque()
        self._closed = False
        self.fingerprint = fingerprint
        self.bytes_sent = 0
        self._received = 0

    @property
    def closed(self) -> bool:
        return self._closed or self._writer.is_closing()

    def send(self, frame_type: FrameType, message: ProtoMessage) -> None:
        """Queue one frame (non-blocking); :meth:`drain` waits for the buffer to empty."""
        if self.closed:
            raise ConnectionClosed("connection is closed")
        data = encode_frame(frame_type, message)
        self.bytes_sent += len(data)
        self._writer.write(data)

    async def drain(self) -> None:
        """Flow control: wait until the transport's write buffer is below its high mark."""
        await self._writer.drain()

    async def receive(self) -> Incoming:
        """The next decoded frame. Raises ConnectionClosed on EOF, ProtocolError on bad bytes
        (after answering Reset and closing)."""
        self._received += 1
        if self._ready and self._received % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # let the rest of the loop run between buffered frames
        while not self._ready:
            data = await self._reader.read(READ_CHUNK)
            try:
                if not data:
                    self._decoder.close()
                    raise ConnectionClosed("relay closed the connection")
                for frame in self._decoder.feed(data):
                    try:
                        frame_type = FrameType(frame.type)
                    except ValueError:
                        raise ProtocolError(f"unknown frame type {frame.type}") from None
                    message = decode_payload(frame.type, frame.payload, Direction.TO_CLIENT)
                    self._ready.append((frame_type, message))
            except ProtocolError as exc:
                log.warning("relay broke the protocol: %s", exc.reason)
                with contextlib.suppress(Exception):
                    code = pb.Reset.Code.ValueType(exc.code)
                    self.send(FrameType.RESET, pb.Reset(code=code, msg=exc.reason))
                await self.close()
                raise
        return self._ready.popleft()

    async def close(self, reset: pb.Reset | None = None, *, abort: bool = False) -> None:
        """Send ``reset`` (if given and still possible), then close. Idempotent.

        ``abort`` drops the connection at once (no TLS close_notify exchange): for a peer
        that stopped answering, whose orderly shutdown would hang.
        """
        if self._closed:
            return
        self._closed = True
        if abort:
            self._writer.transport.abort()
            return
        if reset is not None and not self._writer.is_closing():
            with contextlib.suppress(Exception):
                self._writer.write(encode_frame(FrameType.RESET, reset))
                await asyncio.wait_for(self._writer.drain(), 2.0)
        with contextlib.suppress(Exception):
            self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)
        except Exception:
            self._writer.transport.abort()


async def open_connection(
    endpoint: Endpoint,
    policy: TrustPolicy,
    *,
    timeout: float = 15.0,
    max_frame: int = CLIENT_MAX_FRAME,
) -> FrameConnection:
    """Connect, handshake and authenticate the relay per ``policy``.

    Raises ``OSError``/``TimeoutError`` for network trouble (worth retrying) and
    :class:`tui.client.trust.TrustError` when the relay must not be trusted (never retried).
    ``timeout`` bounds connect + handshake, not the user's answer to a first-contact question;
    after such a question the connection is opened afresh (and verified again). A local
    endpoint ignores ``policy``.
    """
    if endpoint.unix_path is not None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(endpoint.unix_path), timeout
        )
        return FrameConnection(reader, writer, fingerprint=None, max_frame=max_frame)
    conn, asked = await _open_once(endpoint, policy, timeout, max_frame)
    if asked:
        await conn.close(abort=True)
        conn, _ = await _open_once(endpoint, policy, timeout, max_frame)
    return conn


def _server_name(host: str, ctx: ssl.SSLContext | None) -> str | None:
    """The name the TLS handshake sends (SNI) and, in CA mode, checks: ``host``, except an
    IP literal of a pinned relay, which needs neither (RFC 6066 puts no IP address in SNI;
    the pin is checked after the handshake). An empty name makes asyncio pass none, so
    Python does not load its IDNA codec for it (stringprep, 0.25 MiB of a TLS client's RSS:
    bench/bench_tui_memory.py)."""
    if ctx is None:
        return None
    if not ctx.check_hostname:
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            return ""
    return host


async def _open_once(
    endpoint: Endpoint, policy: TrustPolicy, timeout: float, max_frame: int
) -> tuple[FrameConnection, bool]:
    ctx = policy.ssl_context()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=ctx,
                server_hostname=_server_name(endpoint.host, ctx),
                ssl_handshake_timeout=timeout if ctx is not None else None,
            ),
            timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        raise CertificateVerificationFailed(
            f"certificate of relay {endpoint} did not verify against {policy.cafile}: "
            f"{exc.verify_message or exc}"
        ) from exc
    fingerprint: str | None = None
    asked = False
    if ctx is not None:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            writer.transport.abort()
            raise CertificateVerificationFailed(f"relay {endpoint} presented no certificate")
        fingerprint = fingerprint_of_der(der)
        try:
            asked = await policy.verify_presented(endpoint.host, endpoint.port, fingerprint)
        except BaseException:
            writer.transport.abort()  # refused: not even a TLS close_notify goes out
            raise
    return FrameConnection(reader, writer, fingerprint=fingerprint, max_frame=max_frame), asked
