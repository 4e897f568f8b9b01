"""The client library against the real relay: login, buddies, messages, backlog, receipts."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import FrameType
from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.client.sessions import WAIT, buddy_pair, make_session, wait_for
from tui.client import (
    AckReceived,
    BuddyListChanged,
    ConnectionState,
    ConnectionStateChanged,
    LocalStore,
    LoginFailed,
    MessageReceived,
    MessageState,
    OutgoingStateChanged,
    RegisterFailed,
    SyncCompleted,
    history_path,
)


async def test_register_login_and_lists(relay: RelayProcess, tmp_path: Path) -> None:
    alice = make_session(relay, tmp_path, "alice")
    bob = make_session(relay, tmp_path, "bob")
    uid_a, uid_b = await alice.register(), await bob.register()
    with pytest.raises(RegisterFailed, match="taken"):
        await make_session(relay, tmp_path, "ALICE").register()
    await alice.start()
    assert alice.state is ConnectionState.CONNECTED and alice.uid == uid_a
    assert alice.greeting is not None and alice.greeting.startswith("This is a chat server")
    assert alice.fingerprint == relay.fingerprint
    assert not alice.resumed_by_token
    users = await alice.list_users(query="bo")
    assert [(u.uid, u.username) for u in users.users] == [(uid_b, "bob")]
    assert (await alice.find_user("BOB")) is not None
    assert await alice.find_user("nobody") is None
    assert await alice.list_buddies() == []
    await alice.close()
    assert alice.state in (ConnectionState.OFFLINE,)


async def test_wrong_password_is_fatal(relay: RelayProcess, tmp_path: Path) -> None:
    await make_session(relay, tmp_path, "alice").register()
    wrong = make_session(relay, tmp_path, "alice", password="nope")
    with pytest.raises(LoginFailed, match="wrong password"):
        await wrong.start(retry_first=True)  # fatal even when retrying
    assert wrong.state is ConnectionState.OFFLINE
    await wrong.close()


async def test_buddies_on_both_sides_and_a_conversation(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice = make_session(relay, tmp_path, "alice")
    bob = make_session(relay, tmp_path, "bob")
    for s in (alice, bob):
        await s.register()
        await s.start()
    bob_events = bob.events()
    assert alice.uid is not None and bob.uid is not None
    assert await alice.add_buddy(bob.uid) == pb.AddBuddyResponse.PENDING
    pushed = await wait_for(bob_events, BuddyListChanged, lambda e: bool(e.buddies))
    assert pushed.buddies[0].relation == pb.User.REQUEST_RECEIVED
    assert await bob.add_buddy(alice.uid) == pb.AddBuddyResponse.SUCCESS
    listed = await alice.list_buddies()
    assert [(b.uid, b.relation, b.online) for b in listed] == [(bob.uid, pb.User.BUDDY, True)]
    assert listed[0].protocol_version == 2

    alice_events = alice.events()
    sent = alice.send_text(bob.uid, "hello bob")
    got = await wait_for(bob_events, MessageReceived)
    assert (got.entry.text, got.entry.peer, got.entry.msg_id) == (
        "hello bob",
        alice.uid,
        sent.msg_id,
    )
    assert not got.backlog and got.entry.seq is not None
    acked = await alice.wait_outcome(sent.msg_id)
    assert acked.state in (MessageState.SENT, MessageState.DELIVERED)
    delivered = await alice.wait_outcome(sent.msg_id, {MessageState.DELIVERED}, timeout=WAIT)
    assert delivered.state is MessageState.DELIVERED
    states: list[MessageState] = []
    while len(states) < 3:
        event = await wait_for(alice_events, OutgoingStateChanged)
        states.append(event.entry.state)
    assert states == [MessageState.PENDING, MessageState.SENT, MessageState.DELIVERED]

    reply = bob.send_text(alice.uid, "hi alice")
    back = await wait_for(alice_events, MessageReceived)
    assert back.entry.text == "hi alice"
    await bob.wait_outcome(reply.msg_id)
    # Typing hints are ephemeral: delivered live, never stored.
    assert alice.send_typing(bob.uid)
    typing = await wait_for(bob_events, MessageReceived)
    assert typing.entry.type == pb.Message.INPUTING and typing.entry.local_id is None
    # Local history has both directions, in order.
    page = alice.store.page(bob.uid)
    assert [(e.outgoing, e.text) for e in page] == [(True, "hello bob"), (False, "hi alice")]
    await alice.close()
    await bob.close()


async def test_not_buddy_is_refused(relay: RelayProcess, tmp_path: Path) -> None:
    alice = make_session(relay, tmp_path, "alice")
    bob = make_session(relay, tmp_path, "bob")
    for s in (alice, bob):
        await s.register()
    await alice.start()
    assert bob.uid is None
    user = await alice.find_user("bob")
    assert user is not None
    entry = alice.send_text(user.uid, "hello?")
    outcome = await alice.wait_outcome(entry.msg_id, timeout=WAIT)
    assert outcome.state is MessageState.FAILED and outcome.code == pb.Ack.NOT_BUDDY
    await alice.close()


async def test_offline_backlog_arrives_before_sync_exactly_once(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob = await buddy_pair(relay, tmp_path)
    bob_uid = bob.uid
    assert bob_uid is not None
    await bob.close()
    entries = [alice.send_text(bob_uid, f"offline {i}") for i in range(100)]
    for entry in entries:
        assert (await alice.wait_outcome(entry.msg_id, timeout=WAIT)).state is MessageState.SENT

    bob = make_session(relay, tmp_path, "bob")  # a new process: same data dir
    events = bob.events()
    await bob.start()
    texts = []
    while True:
        event = await events.next(WAIT)
        if isinstance(event, MessageReceived):
            assert event.backlog
            texts.append(event.entry.text)
        elif isinstance(event, SyncCompleted):
            break
    assert texts == [f"offline {i}" for i in range(100)]
    last = entries[-1].msg_id
    assert (
        await alice.wait_outcome(last, {MessageState.DELIVERED}, timeout=WAIT)
    ).state is MessageState.DELIVERED
    await bob.close()

    # Next start: the cursor was acknowledged and persisted, nothing is shown twice.
    bob = make_session(relay, tmp_path, "bob")
    events = bob.events()
    await bob.start()
    await bob.wait_synced(WAIT)
    assert bob.store.count(alice.uid or 0) == 100
    while True:
        event = await events.next(WAIT)
        assert not isinstance(event, MessageReceived)
        if isinstance(event, SyncCompleted):
            break
    await bob.close()
    await alice.close()


async def test_resending_the_same_id_returns_the_same_ack(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob = await buddy_pair(relay, tmp_path)
    bob_events = bob.events()
    alice_events = alice.events()
    entry = alice.send_text(bob.uid, "once")
    first = await wait_for(alice_events, AckReceived, lambda e: not e.ack.delivered)
    # The Ack was "lost": the client sends the same id again, as its retry would.
    alice._send(FrameType.MESSAGE, entry.to_wire())
    second = await wait_for(alice_events, AckReceived, lambda e: not e.ack.delivered)
    assert (second.ack.id, second.ack.seq, second.ack.code, second.ack.timestamp) == (
        first.ack.id,
        first.ack.seq,
        first.ack.code,
        first.ack.timestamp,
    )
    later = alice.send_text(bob.uid, "twice")
    received = [await wait_for(bob_events, MessageReceived) for _ in range(2)]
    assert [m.entry.text for m in received] == ["once", "twice"]  # stored once
    assert received[1].entry.seq == (received[0].entry.seq or 0) + 1
    await alice.wait_outcome(later.msg_id)
    await alice.close()
    await bob.close()


async def test_second_login_kicks_the_first_without_reconnect_war(
    relay: RelayProcess, tmp_path: Path
) -> None:
    first = make_session(relay, tmp_path / "one", "alice")
    await first.register()
    await first.start()
    events = first.events()
    second = make_session(relay, tmp_path / "two", "alice")
    await second.start()
    offline = await wait_for(
        events, ConnectionStateChanged, lambda e: e.state is ConnectionState.OFFLINE
    )
    assert "KICKED" in offline.reason
    assert second.state is ConnectionState.CONNECTED
    await first.close()
    await second.close()


async def test_relay_inbox_behind_our_cursor_is_replayed_from_zero(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob = await buddy_pair(relay, tmp_path)
    await bob.close()
    for i in range(3):
        await alice.wait_outcome(alice.send_text(bob.uid, f"m{i}").msg_id, timeout=WAIT)
    # Our cursor is ahead of anything this relay ever assigned (its history was reset).
    store = LocalStore.open(history_path(tmp_path / "bob", relay.host, relay.port, "bob"))
    store.set_last_seq(1000)
    store.close()
    bob = make_session(relay, tmp_path, "bob")
    assert bob.inbox.cursor == 1000
    events = bob.events()
    await bob.start()
    texts: list[str] = []
    while len(texts) < 3:
        texts.append((await wait_for(events, MessageReceived)).entry.text)
    assert texts == ["m0", "m1", "m2"]
    await wait_for(events, SyncCompleted)
    assert bob.inbox.cursor == bob.head_seq == 3
    await bob.close()
    await alice.close()
