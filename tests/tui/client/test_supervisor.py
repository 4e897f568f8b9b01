"""The connection supervisor without a relay: what is fatal, and no frame without a link."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import FrameType, ProtocolError
from protocol import chat_pb2 as pb
from tui.client.backoff import Backoff
from tui.client.connection import Endpoint
from tui.client.login import LoginFailed, RelayReset
from tui.client.session import ClientSession
from tui.client.supervisor import NotConnected, Supervisor, is_fatal
from tui.client.trust import TrustError, TrustPolicy


@pytest.mark.parametrize(
    ("error", "fatal"),
    [
        (TrustError("changed fingerprint"), True),
        (LoginFailed("wrong password"), True),
        (RelayReset(pb.Reset.KICKED, "logged in elsewhere"), True),
        (RelayReset(pb.Reset.SERVER_SHUTDOWN, "restarting"), False),
        (ConnectionRefusedError(), False),
        (TimeoutError(), False),
        (NotConnected("gone"), False),
        (ProtocolError("bad frame"), False),
        (RuntimeError("a bug"), True),
    ],
)
def test_only_errors_the_user_must_act_on_stop_reconnecting(
    error: BaseException, fatal: bool
) -> None:
    assert is_fatal(error) is fatal


async def test_nothing_is_sent_without_a_live_connection(tmp_path: Path) -> None:
    session = ClientSession(
        Endpoint("127.0.0.1", 9), "alice", "pw", trust=TrustPolicy.plaintext(), data_dir=tmp_path
    )
    supervisor = Supervisor(
        session, session.endpoint, Backoff(0.5, cap=1.0), ping_interval=25.0, dead_after=70.0
    )
    assert supervisor.connection is None and not supervisor.is_open and not supervisor.running
    with pytest.raises(NotConnected):
        supervisor.send(FrameType.PING, pb.Ping(nonce=1))
    await session.close()
