"""Reconnection against the real relay: restart, crash, silence, client restart."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.client.sessions import FAST, WAIT, buddies, buddy_pair, make_session, wait_for
from tui.client import (
    ConnectionState,
    ConnectionStateChanged,
    MessageReceived,
    MessageState,
    ResetReceived,
    SessionOptions,
)


async def test_relay_crash_and_restart_resume_by_token(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob = await buddy_pair(relay, tmp_path)
    alice_events, bob_events = alice.events(), bob.events()

    relay.kill()  # SIGKILL: the crash case
    down = await wait_for(
        alice_events, ConnectionStateChanged, lambda e: e.state is ConnectionState.RECONNECTING
    )
    assert down.retry_in is not None and 0 < down.retry_in <= FAST.backoff_cap
    entry = alice.send_text(bob.uid, "sent while the relay was down")
    assert entry.state is MessageState.PENDING
    await asyncio.to_thread(relay.start)  # same port, same data dir

    await wait_for(
        alice_events, ConnectionStateChanged, lambda e: e.state is ConnectionState.CONNECTED
    )
    assert alice.resumed_by_token
    outcome = await alice.wait_outcome(entry.msg_id, timeout=WAIT)
    assert outcome.state in (MessageState.SENT, MessageState.DELIVERED)
    got = await wait_for(bob_events, MessageReceived)
    assert got.entry.text == "sent while the relay was down"
    await bob.wait_connected(WAIT)
    assert bob.resumed_by_token
    await alice.close()
    await bob.close()
    assert relay.stop() == 0
    stats = [line for line in relay.logs().splitlines() if "stats:" in line][-1]
    assert "scrypt=0" in stats  # the restarted relay hashed no password: tokens only


async def test_silent_relay_is_detected_and_reconnected(
    relay: RelayProcess, tmp_path: Path
) -> None:
    options = SessionOptions(
        ping_interval=0.2,
        dead_after=1.0,
        connect_timeout=1.0,
        login_timeout=2.0,
        backoff_base=0.05,
        backoff_cap=0.5,
    )
    alice = make_session(relay, tmp_path, "alice", options=options)
    await alice.register()
    await alice.start()
    events = alice.events()
    os.kill(relay.pid, signal.SIGSTOP)  # connection stays open, nothing comes back
    try:
        dropped = await wait_for(
            events, ConnectionStateChanged, lambda e: e.state is ConnectionState.RECONNECTING
        )
        assert "nothing received" in dropped.reason
    finally:
        os.kill(relay.pid, signal.SIGCONT)
    await wait_for(events, ConnectionStateChanged, lambda e: e.state is ConnectionState.CONNECTED)
    await alice.close()


async def test_pending_outbox_survives_a_client_restart(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob = await buddy_pair(relay, tmp_path)
    relay.kill()
    entry = alice.send_text(bob.uid, "queued across a client restart")
    await alice.close()  # the client quits with the message still PENDING
    await bob.close()
    await asyncio.to_thread(relay.start)

    alice = make_session(relay, tmp_path, "alice")  # same data dir: same outbox
    assert [e.msg_id for e in alice.store.pending()] == [entry.msg_id]
    await alice.start()
    outcome = await alice.wait_outcome(entry.msg_id, timeout=WAIT)
    assert outcome.state is MessageState.SENT
    bob = make_session(relay, tmp_path, "bob")
    events = bob.events()
    await bob.start()
    got = await wait_for(events, MessageReceived)
    assert got.backlog and got.entry.msg_id == entry.msg_id
    await alice.close()
    await bob.close()


async def test_plaintext_relay(plaintext_relay: RelayProcess, tmp_path: Path) -> None:
    alice = make_session(plaintext_relay, tmp_path, "alice")
    bob = make_session(plaintext_relay, tmp_path, "bob")
    for s in (alice, bob):
        await s.register()
        await s.start()
    assert alice.fingerprint is None
    await buddies(alice, bob)
    assert bob.uid is not None
    events = bob.events()
    alice.send_text(bob.uid, "in the clear")
    assert (await wait_for(events, MessageReceived)).entry.text == "in the clear"
    await alice.close()
    await bob.close()


async def test_graceful_relay_restart_resets_then_reconnects(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice = make_session(relay, tmp_path, "alice")
    await alice.register()
    await alice.start()
    events = alice.events()
    assert await asyncio.to_thread(relay.stop) == 0  # SIGTERM
    reset = await wait_for(events, ResetReceived)
    assert reset.code == pb.Reset.SERVER_SHUTDOWN
    await asyncio.to_thread(relay.start)
    await wait_for(events, ConnectionStateChanged, lambda e: e.state is ConnectionState.CONNECTED)
    assert alice.resumed_by_token
    await alice.close()


async def test_pings_keep_an_idle_session_alive(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay", extra_args=["--idle-timeout", "2"]) as relay:
        quiet = SessionOptions(ping_interval=100.0, dead_after=200.0)
        chatty = SessionOptions(ping_interval=0.2)
        idle = make_session(relay, tmp_path, "idle", options=quiet)
        pinging = make_session(relay, tmp_path, "pinging", options=chatty)
        for s in (idle, pinging):
            await s.register()
        idle_events, pinging_events = idle.events(), pinging.events()
        await idle.start()
        await pinging.start()
        # The silent session is timed out by the relay (the check is meaningful)...
        reset = await wait_for(idle_events, ResetReceived)
        assert reset.code == pb.Reset.TIMEOUT
        await idle.close()
        # ...while the pinging one, idle for as long, was never dropped.
        await pinging.close()
        dropped = []
        async for event in pinging_events:
            if isinstance(event, ConnectionStateChanged | ResetReceived):
                dropped.append(event)
        assert [getattr(e, "state", e) for e in dropped] == [
            ConnectionState.CONNECTING,
            ConnectionState.CONNECTED,
            ConnectionState.OFFLINE,
        ]
