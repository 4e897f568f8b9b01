"""One user on several devices at once (PROTOCOL.md section 9), through the client library
and the real ``parley`` commands against the real relay.

alice runs a TUI-like session (device ``tui@box``), ``parley tail`` (a process, device
``tail@<host>``) and ``parley send`` (a process, send-only), all three sharing one data
directory and so one history file, as they do on a shared box. Nothing is kicked; every
receiving device gets every message once and in the relay's order; what alice sent from one
device shows on the others as hers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from protocol import chat_pb2 as pb
from tests.e2e.parley_cli import cli_args, finished, parley
from tests.harness import RelayProcess
from tests.tui.client.sessions import FAST, WAIT, buddies, make_session, policy_for
from tui.client import ClientSession, Endpoint, EventStream, MessageReceived, ResetReceived
from tui.client.events import ConnectionState, Event
from tui.client.history import ANSWERED

TAIL_LOGIN = r"login uid=\d+ v2 device='tail@{host}'"


async def collect(stream: EventStream, until: Callable[[Event], bool]) -> list[Event]:
    """Every event of ``stream`` up to and including the first one ``until`` accepts."""
    seen: list[Event] = []
    while True:
        event = await stream.next(WAIT)
        seen.append(event)
        if until(event):
            return seen


async def alice_and_bob(relay: RelayProcess, tmp_path: Path) -> ClientSession:
    """Register alice and bob as buddies; returns bob's session, still running."""
    alice = make_session(relay, tmp_path, "alice")
    bob = make_session(relay, tmp_path, "bob")
    for session in (alice, bob):
        await session.register()
        await session.start()
    await buddies(alice, bob)
    await alice.close()
    return bob


def tui_session(relay: RelayProcess, data_dir: Path, device: str) -> ClientSession:
    return ClientSession(
        Endpoint(relay.host, relay.port),
        "alice",
        "pw-alice",
        trust=policy_for(relay),
        data_dir=data_dir,
        options=FAST,
        device=device,
    )


async def test_tui_tail_and_send_of_one_user_at_once(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await alice_and_bob(relay, tmp_path)
    bob_events = bob.events()
    shared = tmp_path / "alice-box"  # one data dir: TUI, tail and send share the history
    tui = tui_session(relay, shared, "tui@box")
    tui_events = tui.events()
    await tui.start()
    alice_uid, bob_uid = tui.uid, bob.uid
    assert alice_uid is not None and bob_uid is not None
    args = cli_args(relay, tmp_path, "alice", shared)
    tail = parley("tail", *args, "--count", "4")
    await asyncio.to_thread(relay.wait_for_log, TAIL_LOGIN.format(host="[^']*"), WAIT)

    # The exchange, one message at a time so that the relay's order is known:
    # bob → alice, alice (TUI, once she has read it) → bob, alice (parley send) → bob,
    # bob → alice.
    def text_received(text: str) -> Callable[[Event], bool]:
        return lambda e: isinstance(e, MessageReceived) and e.entry.text == text

    await bob.wait_outcome(bob.send_text(alice_uid, "b1").msg_id, timeout=WAIT)
    seen = await collect(tui_events, text_received("b1"))
    sent = await tui.wait_outcome(tui.send_text(bob_uid, "a1").msg_id, timeout=WAIT)
    assert sent.state in ANSWERED and sent.code == pb.Ack.OK
    code, out, err = await finished(parley("send", *args, "bob", "a2"))
    assert code == 0, err
    assert "sent to bob" in out
    await bob.wait_outcome(bob.send_text(alice_uid, "b2").msg_id, timeout=WAIT)

    # parley tail printed all four, in order, alice's own as "alice → bob".
    code, out, err = await finished(tail)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4, out
    for line, expected in zip(
        lines, ["bob: b1", "alice → bob: a1", "alice → bob: a2", "bob: b2"], strict=True
    ):
        assert line.endswith(expected), out

    # The TUI got bob's two and the copy of what parley send sent, never its own a1 back.
    seen += await collect(tui_events, text_received("b2"))
    received = [
        (e.entry.text, e.entry.outgoing, e.entry.peer)
        for e in seen
        if isinstance(e, MessageReceived) and e.entry.type == pb.Message.MESSAGE
    ]
    assert received == [("b1", False, bob_uid), ("a2", True, bob_uid), ("b2", False, bob_uid)]
    assert not [e for e in seen if isinstance(e, ResetReceived)]  # nobody was kicked
    assert tui.state is ConnectionState.CONNECTED

    # The shared history holds the whole conversation once, in order, alice's as hers.
    page = tui.store.page(bob_uid, types=[pb.Message.MESSAGE])
    assert [(e.text, e.outgoing) for e in page] == [
        ("b1", False),
        ("a1", True),
        ("a2", True),
        ("b2", False),
    ]
    # bob got each of alice's messages once.
    got = await collect(bob_events, text_received("a2"))
    texts = [e.entry.text for e in got if isinstance(e, MessageReceived) and e.entry.text]
    assert texts == ["a1", "a2"]
    await tui.close()
    await bob.close()
    assert "KICKED" not in relay.logs()


async def test_two_tails_of_one_user_take_two_slots(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await alice_and_bob(relay, tmp_path)
    args = cli_args(relay, tmp_path, "alice", tmp_path / "alice-box")
    first = parley("tail", *args, "--count", "1")
    await asyncio.to_thread(relay.wait_for_log, TAIL_LOGIN.format(host=r"[^#']*"), WAIT)
    second = parley("tail", *args, "--count", "1")
    await asyncio.to_thread(relay.wait_for_log, TAIL_LOGIN.format(host=r"[^']*#2"), WAIT)
    assert bob.uid is not None
    alice = await bob.find_user("alice")
    assert alice is not None
    await bob.wait_outcome(bob.send_text(alice.uid, "to both").msg_id, timeout=WAIT)
    for tail in (first, second):
        code, out, err = await finished(tail)
        assert code == 0, err
        assert out.rstrip().endswith("bob: to both") and out.count("\n") == 1
    await bob.close()
    assert "KICKED" not in relay.logs()


async def test_a_device_gets_its_backlog_and_copies_after_being_away(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await alice_and_bob(relay, tmp_path)
    shared = tmp_path / "alice-box"
    args = cli_args(relay, tmp_path, "alice", shared)
    code, out, err = await finished(parley("tail", *args, "--once", "--device", "tail@away"))
    assert (code, out) == (0, ""), err  # the device exists now, with nothing for it
    tui = tui_session(relay, shared, "tui@box")
    await tui.start()
    assert tui.uid is not None and bob.uid is not None
    await bob.wait_outcome(bob.send_text(tui.uid, "while away").msg_id, timeout=WAIT)
    await tui.wait_outcome(tui.send_text(bob.uid, "answered from the tui").msg_id, timeout=WAIT)
    await tui.close()
    code, out, err = await finished(parley("tail", *args, "--once", "--device", "tail@away"))
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0].endswith("bob: while away")
    assert lines[1].endswith("alice → bob: answered from the tui")
    code, out, err = await finished(parley("tail", *args, "--once", "--device", "tail@away"))
    assert (code, out) == (0, ""), err  # acknowledged: never printed twice
    await bob.close()


async def test_a_tail_kicked_by_a_login_on_its_device_says_so(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await alice_and_bob(relay, tmp_path)
    await bob.close()
    args = cli_args(relay, tmp_path, "alice", tmp_path / "alice-box")
    first = parley("tail", *args, "--device", "same")
    await asyncio.to_thread(relay.wait_for_log, r"device='same'", WAIT)
    code, _, err = await finished(parley("tail", *args, "--device", "same", "--once"))
    assert code == 0, err
    code, _, err = await finished(first)
    assert code == 5
    assert "device 'same'" in err and "--device NAME runs both" in err
