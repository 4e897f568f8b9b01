"""relay.connection write buffering over a real socket pair: order, bounds, accounting."""

from __future__ import annotations

import os
import socket

from relay.connection import MAX_WRITE, Connection


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
    chunks = [b"a" * 10, os.urandom(3 * MAX_WRITE + 7), b"b" * 5, os.urandom(MAX_WRITE // 2),
              os.urandom(MAX_WRITE)]
    for chunk in chunks:
        conn.queue(chunk)
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
