"""Request correlation without a relay: responses by frame type, outcomes by message id."""

from __future__ import annotations

import asyncio

import pytest

from protocol import FrameType
from protocol import chat_pb2 as pb
from tui.client.history import ANSWERED, HistoryEntry, MessageState
from tui.client.requests import OutcomeWaiters, PendingRequests
from tui.client.supervisor import NotConnected


def outgoing(msg_id: int, state: MessageState) -> HistoryEntry:
    return HistoryEntry(1, 7, True, msg_id, None, pb.Message.MESSAGE, "hi", b"", None, 0, state)


async def test_responses_of_one_type_resolve_the_oldest_call_first() -> None:
    requests = PendingRequests()
    first, second = requests.expect(FrameType.ADD_BUDDY), requests.expect(FrameType.ADD_BUDDY)
    other = requests.expect(FrameType.REMOVE_BUDDY)
    answer = pb.AddBuddyResponse(code=pb.AddBuddyResponse.PENDING)
    assert requests.resolve(FrameType.ADD_BUDDY, answer)
    assert first.result() is answer and not second.done() and not other.done()


async def test_a_timed_out_call_still_consumes_its_response() -> None:
    requests = PendingRequests()
    late = requests.expect(FrameType.LIST_USER)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(late, 0.01)
    waiting = requests.expect(FrameType.LIST_USER)
    assert requests.resolve(FrameType.LIST_USER, pb.ListUserResponse())  # the late one's
    assert not waiting.done()
    assert requests.resolve(FrameType.LIST_USER, pb.ListUserResponse())
    assert waiting.done()
    assert not requests.resolve(FrameType.LIST_USER, pb.ListUserResponse())  # nobody waits


async def test_a_lost_connection_fails_every_waiting_call() -> None:
    requests = PendingRequests()
    calls = [requests.expect(FrameType.LIST_BUDDY), requests.expect(FrameType.ADD_BUDDY)]
    requests.fail_all(NotConnected("connection lost"))
    for call in calls:
        with pytest.raises(NotConnected, match="connection lost"):
            call.result()
    assert not requests.resolve(FrameType.LIST_BUDDY, pb.ListBuddyResponse())


async def test_outcome_waiters_wake_only_for_their_message_and_states() -> None:
    outcomes = OutcomeWaiters()
    answered = asyncio.ensure_future(outcomes.wait(5, ANSWERED, 5.0))
    delivered = asyncio.ensure_future(outcomes.wait(5, frozenset({MessageState.DELIVERED}), 5.0))
    await asyncio.sleep(0)
    outcomes.notify(outgoing(6, MessageState.SENT))  # another message
    outcomes.notify(outgoing(5, MessageState.PENDING))  # not a wanted state
    await asyncio.sleep(0)
    assert not answered.done() and not delivered.done()
    outcomes.notify(outgoing(5, MessageState.SENT))
    assert (await answered).state is MessageState.SENT
    assert not delivered.done()
    outcomes.fail_all(NotConnected("session closed"))
    with pytest.raises(NotConnected):
        await delivered
