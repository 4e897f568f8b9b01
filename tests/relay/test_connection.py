"""relay.connection over a real socket pair: write order, bounds and accounting; read
budgets; dropping unsent output."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from certs import ensure_certificate
from protocol import FrameDecoder, encode_frame
from protocol import chat_pb2 as pb
from protocol.types import FrameType
from relay.connection import MAX_WRITE, Connection, ReadResult


class _RecordingSocket:
    """A real socket whose send() sizes are recorded."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sizes: list[int] = []

    def send(self, data: bytes | memoryview) -> int:
        self.sizes.append(len(data))
        return self.sock.send(data)


def test_flush_cuts_large_chunks_and_keeps_bytes_in_order() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    recorder = _RecordingSocket(left)
    conn = Connection(1, left, "test", "test", 1024, 0.0)
    conn.sock = recorder  # type: ignore[assignment]
    chunks = [
        b"a" * 10,
        os.urandom(3 * MAX_WRITE + 7),
        b"b" * 5,
        os.urandom(MAX_WRITE // 2),
        os.urandom(MAX_WRITE),
    ]
    for chunk in chunks:
        conn.queue(chunk)
    conn.release_staged()
    expected = b"".join(chunks)
    received = bytearray()
    while True:
        done = conn.flush()
        assert conn.bytes_sent + conn.pending_bytes == len(expected)
        try:
            while data := right.recv(1 << 20, socket.MSG_DONTWAIT):
                received += data
        except BlockingIOError:
            pass
        if done:
            break
    while len(received) < len(expected):
        received += right.recv(1 << 20)
    assert bytes(received) == expected
    assert max(recorder.sizes) <= MAX_WRITE  # bytes_sent advances at least every MAX_WRITE
    assert conn.bytes_sent == len(expected) and conn.pending_bytes == 0
    left.close()
    right.close()


def _ping(nonce: int) -> bytes:
    return encode_frame(FrameType.PING, pb.Ping(nonce=nonce))


def test_a_read_takes_at_most_the_frame_budget_and_keeps_the_rest_as_bytes() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    conn = Connection(1, left, "test", "test", 1024, 0.0)
    pings = [_ping(n) for n in range(1, 201)]
    right.sendall(b"".join(pings))
    nonces: list[int] = []
    results = []
    while True:
        result, frames = conn.read_frames(1 << 20, 64)
        assert len(frames) <= 64
        nonces += [pb.Ping.FromString(f.payload).nonce for f in frames]
        results.append(result)
        if result is not ReadResult.MORE:
            break
        # Only the frames of this pass were decoded; the rest waits as raw bytes.
        assert conn.decoder.buffered == sum(map(len, pings[len(nonces) :]))
    assert nonces == list(range(1, 201))
    assert results == [ReadResult.MORE] * 3 + [ReadResult.OK]
    left.close()
    right.close()


def test_a_read_stops_at_the_byte_budget() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    conn = Connection(1, left, "test", "test", 1 << 20, 0.0)
    right.sendall(encode_frame(FrameType.MESSAGE, b"m" * 100_000))
    result, frames = conn.read_frames(4096, 64)
    assert (result, frames, conn.decoder.buffered) == (ReadResult.MORE, [], 4096)
    left.close()
    right.close()


def test_dropping_unsent_output_keeps_in_flight_bytes_and_ends_on_a_frame() -> None:
    """A slow consumer's Reset goes right after the bytes already handed to the socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    right = socket.socket()
    right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # a peer that reads slowly
    right.connect(listener.getsockname())
    left, _ = listener.accept()
    listener.close()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    left.setblocking(False)
    conn = Connection(1, left, "test", "test", 1024, 0.0)
    frames = [encode_frame(FrameType.MESSAGE, os.urandom(1000)) for _ in range(3000)]
    conn.queue(b"".join(frames[:2500]))  # one chunk of many frames, like a backlog batch
    for frame in frames[2500:]:
        conn.queue(frame)
    offset = 0
    conn.v1_unacked = unacked = deque()
    for seq, frame in enumerate(frames, 1):  # v1 delivery accounting: (stream end, seq, id?)
        offset += len(frame)
        unacked.append((offset, seq, False))
    conn.release_staged()
    assert not conn.flush()  # the peer reads nothing yet: the socket fills up
    conn.queue(frames[0])  # staged (this pass's output): dropped as well
    dropped = conn.drop_unsent()
    assert dropped > len(frames[0])
    assert (
        conn.bytes_sent + conn.pending_bytes
        == conn.bytes_queued
        == offset + len(frames[0]) - dropped
    )
    reset = encode_frame(FrameType.RESET, pb.Reset(code=pb.Reset.SLOW_CONSUMER))
    conn.queue(reset)
    conn.release_staged()
    received = bytearray()
    while not conn.flush():
        received += right.recv(1 << 20)
    right.shutdown(socket.SHUT_WR)
    left.close()
    while data := right.recv(1 << 20):
        received += data
    got = FrameDecoder(1 << 20).feed(received)
    assert got[-1] == (FrameType.RESET, reset[5:])
    kept = [encode_frame(t, p) for t, p in got[:-1]]
    assert kept == frames[: len(kept)] and len(kept) < len(frames)
    # Exactly the frames that reach the peer are still accounted as (to be) delivered.
    assert [seq for _, seq, _ in conn.v1_unacked or ()] == list(range(1, len(kept) + 1))
    right.close()


def test_staged_frames_wait_for_their_release_or_are_taken_back() -> None:
    """Issue 11: a write in the middle of a pass sent frames queued earlier in that pass,
    before the commit they depend on; now only a release (after the commit) makes them
    writable, and a failed commit takes them back."""
    left, right = socket.socketpair()
    left.setblocking(False)
    conn = Connection(1, left, "test", "test", 1024, 0.0)
    committed, lost = _ping(1), _ping(2)
    conn.queue(committed)
    conn.release_staged()
    conn.queue(lost)  # queued during the pass
    conn.v1_unacked = deque([(len(committed) + len(lost), 7, True)])
    assert not conn.flush()  # the released frame is written; the staged one waits
    assert right.recv(1 << 16) == committed
    assert conn.take_staged() == lost
    assert (conn.pending_bytes, conn.bytes_queued, list(conn.v1_unacked or ())) == (
        0,
        len(committed),
        [],
    )
    assert conn.flush()
    left.close()
    right.close()


def test_a_v1_frame_the_peer_can_read_over_tls_always_counts_as_written(tmp_path: Path) -> None:
    """v1 rows are deleted once "written": over TLS, every frame the peer is able to
    decrypt must already be counted in ``bytes_sent``, at every moment of a backlog that
    fills the socket (a send of several TLS records could leave the first ones readable by
    the peer while reporting nothing, and those messages came again at the next login)."""
    pair, _ = ensure_certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pair.cert_path, pair.key_path)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    with ThreadPoolExecutor(1) as pool:
        server_side = pool.submit(server_context.wrap_socket, left, server_side=True)
        peer = client_context.wrap_socket(right)
        relay_side = server_side.result()
    relay_side.setblocking(False)
    peer.setblocking(False)
    conn = Connection(1, relay_side, "test", "test", 1024, 0.0)
    conn.tls = True
    frame = encode_frame(FrameType.MESSAGE, pb.Message(uid=2, msg="x" * 4000))
    conn.v1_unacked = unacked = deque()
    for seq in range(1, 201):  # 800 KB: far more than the socket buffers hold
        conn.queue(frame)
        unacked.append((conn.bytes_queued, seq, False))
    conn.release_staged()
    decoder = FrameDecoder(max_frame=1 << 20)
    readable = 0
    partial_sends = 0
    while True:
        done = conn.flush()
        partial_sends += not done
        with contextlib.suppress(ssl.SSLWantReadError):
            while data := peer.recv(1 << 20):
                readable += len(decoder.feed(data))
        assert readable * len(frame) <= conn.bytes_sent  # never read but "unwritten"
        if done and readable == 200:
            break
    assert partial_sends > 0  # the socket did fill: the case under test happened
    peer.close()
    relay_side.close()
