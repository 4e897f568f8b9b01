"""One connection's bug stays with that connection: the loop, and everyone else, go on.

Once the relay's handlers are fixed, no frame reaches a handler bug from the wire, so this
drives the real :class:`relay.loop.Relay` in-process (its loop in a thread, real loopback
sockets, a real SQLite file) with a handler table in which PING raises for one nonce. The
hash worker's callbacks are checked the same way, with real threads.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from protocol.types import FrameType, parse_message
from relay.auth import HashWorker
from relay.cli import _open_store
from relay.config import RelayConfig
from relay.connection import Connection
from relay.handlers import HANDLERS
from relay.handlers.control import handle_ping
from relay.loop import Relay
from tests.wire import WireClient

FAULTY_NONCE = 13


def _ping_with_a_bug(relay: Relay, conn: Connection, payload: bytes) -> None:
    if parse_message(pb.Ping, payload).nonce == FAULTY_NONCE:
        raise RuntimeError("a handler bug")
    handle_ping(relay, conn, payload)


@pytest.fixture
def relay_in_thread(tmp_path: Path) -> Iterator[Relay]:
    config = RelayConfig(
        host="127.0.0.1", port=0, data_dir=tmp_path, plaintext=True, scrypt_n=1024
    ).validate()
    started: list[Relay] = []
    listening = threading.Event()

    def run() -> None:  # SQLite objects belong to the thread that made them: the loop's
        relay = Relay(
            config, _open_store(config), None, {**HANDLERS, FrameType.PING: _ping_with_a_bug}
        )
        relay.listen()
        started.append(relay)
        listening.set()
        relay.serve_forever()

    loop = threading.Thread(target=run, daemon=True)
    loop.start()
    assert listening.wait(30)
    relay = started[0]
    yield relay
    relay.stopping = True
    relay.hasher.wake_socket.send(b"\0")  # out of select at once
    loop.join(30)
    assert not loop.is_alive()


def test_a_handler_exception_resets_only_its_connection(
    relay_in_thread: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = relay_in_thread.acceptor.address
    caplog.set_level(logging.ERROR, logger="parley.relay")
    bystander = WireClient(host, port, tls=False)
    victim = WireClient(host, port, tls=False)
    victim.send(FrameType.PING, pb.Ping(nonce=FAULTY_NONCE))
    reset = victim.expect_closed()
    assert reset is not None and reset.code == pb.Reset.UNKNOWN_ERROR
    assert reset.msg == "internal error in the relay"
    bystander.send(FrameType.PING, pb.Ping(nonce=1))
    assert bystander.expect(FrameType.PING, pb.Ping).nonce == 1
    newcomer = WireClient(host, port, tls=False)  # the listener is still served too
    newcomer.send(FrameType.PING, pb.Ping(nonce=2))
    assert newcomer.expect(FrameType.PING, pb.Ping).nonce == 2
    (record,) = [r for r in caplog.records if r.exc_info]  # logged once, with the traceback
    assert "internal error" in record.getMessage() and "conn=" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_a_failing_hash_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    worker = HashWorker(workers=1)
    results: list[int] = []

    def failing(result: int, error: BaseException | None) -> None:
        raise RuntimeError("a callback bug")

    def recording(result: int, error: BaseException | None) -> None:
        results.append(result)

    worker.submit(pow, (2, 10), failing)
    worker.submit(pow, (2, 11), recording)
    ran = 0
    while ran < 2:
        assert select.select([worker.fileno()], [], [], 30)[0], "no job came back"
        ran += worker.run_callbacks()
    assert results == [2048]
    assert worker.pending == 0
    assert any(r.exc_info for r in caplog.records)
    worker.close()
