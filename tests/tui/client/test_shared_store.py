"""Two processes of one user sharing one history file (the TUI and ``parley send`` on a
shared box): whichever moves an outgoing row first, the sender still learns the outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol import FrameType
from protocol import chat_pb2 as pb
from tui.client.connection import Endpoint
from tui.client.history import MessageState
from tui.client.session import ClientSession
from tui.client.store import LocalStore, history_path
from tui.client.trust import TrustPolicy


async def test_the_sender_learns_an_outcome_another_process_recorded_first(
    tmp_path: Path,
) -> None:
    endpoint = Endpoint("relay.invalid", 1025)
    sender = ClientSession(
        endpoint, "alice", "pw", trust=TrustPolicy.plaintext(), data_dir=tmp_path, send_only=True
    )
    entry = sender.send_text(7, "from a script")  # not connected: stays PENDING
    outcome = asyncio.ensure_future(sender.wait_outcome(entry.msg_id, timeout=10))
    await asyncio.sleep(0)  # it is waiting now (the row was PENDING when it looked)
    assert not outcome.done()
    # The TUI, sharing the file, got the receipt first (the relay sends receipts to every
    # session of the sender) and moved the row to DELIVERED.
    other = LocalStore.open(history_path(tmp_path, endpoint.host, endpoint.port, "alice"))
    assert other.mark_delivered(entry.msg_id) is not None
    other.close()
    # Now the sender's own Ack OK and the receipt arrive: no transition is left for them.
    sender.dispatch(FrameType.ACK, pb.Ack(id=entry.msg_id, seq=3, code=pb.Ack.OK, timestamp=5))
    done = await outcome
    assert done.state is MessageState.DELIVERED
    await sender.close()
