"""Rooms through the client library (PROTOCOL.md section 10) against the real relay:
the room table and its events, room messages in each member's local history (with their
senders, once, in the relay's order, across a restart), timeline events, refusals, and
blocking (section 12).

Every session here is a v2.1 device (rooms exist only for those).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from protocol import chat_pb2 as pb
from tests.e2e.parley_cli import cli_args, finished, parley
from tests.harness import RelayProcess
from tests.tui.client.sessions import FAST, WAIT, policy_for
from tests.waiting import wait_until
from tui.client import ClientSession, Endpoint, EventStream, MessageReceived, SyncCompleted
from tui.client.events import BuddyListChanged, Event
from tui.client.history import HistoryEntry, MessageState
from tui.client.rooms import RoomChanged, RoomInvited, RoomRemoved
from tui.client.transfer import TransferEvent, TransferManager, TransferState
from tui.client.transfer.events import TransferCompleted, TransferOffered

T = TypeVar("T")

Code = pb.RoomResponse
Role = pb.Member
_M = pb.Message


def device_session(relay: RelayProcess, tmp_path: Path, name: str, device: str) -> ClientSession:
    return ClientSession(
        Endpoint(relay.host, relay.port),
        name,
        f"pw-{name}",
        trust=policy_for(relay),
        data_dir=tmp_path / f"{name}-{device}",
        options=FAST,
        device=device,
    )


async def started(
    relay: RelayProcess, tmp_path: Path, *names: str, register: bool = True
) -> list[ClientSession]:
    sessions = [device_session(relay, tmp_path, name, f"tui@{name}") for name in names]
    for session in sessions:
        if register:
            await session.register()
        await session.start()
    return sessions


async def next_event(stream: EventStream, wanted: Callable[[Event], bool]) -> Event:
    while True:
        event = await stream.next(WAIT)
        if wanted(event):
            return event


def texts(session: ClientSession, room: int, kind: int = _M.MESSAGE) -> list[str]:
    return [e.text for e in session.store.page(-room, limit=10_000) if e.type == kind]


async def until(check: Callable[[], bool]) -> None:
    await wait_until(check, "the room state", timeout=WAIT)


async def form_room(owner: ClientSession, *members: ClientSession) -> int:
    """``owner`` creates the room "dev team" and ``members`` join it; returns its id."""
    created = await owner.create_room("dev team")
    assert created.ok and created.room is not None
    room = created.room.id
    for member in members:
        events = member.events()
        assert member.uid is not None
        assert (await owner.invite(room, member.uid)).ok
        invited = await next_event(events, lambda e: isinstance(e, RoomInvited))
        assert isinstance(invited, RoomInvited) and invited.room.name == "dev team"
        assert member.rooms.get(room) is not None and member.rooms.rooms[room].invited
        joined = await member.join(room)
        assert joined.ok and joined.room is not None and joined.room.my_role == Role.MEMBER
    return room


async def room_of_three(
    relay: RelayProcess, tmp_path: Path
) -> tuple[ClientSession, ClientSession, ClientSession, int]:
    """alice (owner), bob and carol in the room "dev team"; returns them and the room id."""
    alice, bob, carol = await started(relay, tmp_path, "alice", "bob", "carol")
    return alice, bob, carol, await form_room(alice, bob, carol)


async def test_room_table_follows_requests_and_pushes(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob, carol, room = await room_of_three(relay, tmp_path)
    try:
        assert alice.uid and bob.uid and carol.uid
        info = alice.rooms.get(room)
        assert info is not None and info.owned
        assert {m.uid for m in info.joined} == {alice.uid, bob.uid, carol.uid}
        assert carol.rooms.named("DEV TEAM") == [carol.rooms.rooms[room]]

        # A rename by the owner reaches the others as RoomChanged.
        bob_events = bob.events()
        assert (await alice.rename(room, "ops")).ok
        changed = await next_event(
            bob_events, lambda e: isinstance(e, RoomChanged) and e.room.name == "ops"
        )
        assert isinstance(changed, RoomChanged)
        assert bob.store.peer_name(-room) == "ops"
        refused = await bob.rename(room, "mine")
        assert refused.code == Code.NOT_ALLOWED and refused.room is None

        # Typing in a room reaches the others as an ephemeral entry of the room, by bob.
        alice_events = alice.events()
        assert bob.send_typing(-room)
        typing = await next_event(
            alice_events,
            lambda e: isinstance(e, MessageReceived) and e.entry.type == _M.INPUTING,
        )
        assert isinstance(typing, MessageReceived)
        assert (typing.entry.peer, typing.entry.sender) == (-room, bob.uid)

        # A kick removes the room from the kicked member's table; it cannot send any more.
        carol_events = carol.events()
        assert (await alice.kick(room, carol.uid)).ok
        removed = await next_event(carol_events, lambda e: isinstance(e, RoomRemoved))
        assert isinstance(removed, RoomRemoved) and removed.room_id == room
        assert carol.rooms.get(room) is None
        entry = carol.send_room_text(room, "still here?")
        failed = await carol.wait_outcome(entry.msg_id, timeout=WAIT)
        assert failed.state is MessageState.FAILED and failed.code == pb.Ack.NOT_MEMBER

        # LIST agrees with what the pushes built; bob leaves; an invitee declines.
        listed = await bob.list_rooms()
        assert listed.ok and [r.id for r in listed.rooms] == [room]
        assert (await bob.leave(room)).ok
        assert bob.rooms.get(room) is None
        assert (await alice.invite(room, carol.uid)).ok
        await next_event(carol_events, lambda e: isinstance(e, RoomInvited))
        assert (await carol.decline(room)).ok
        assert carol.rooms.get(room) is None
        await until(lambda: (r := alice.rooms.get(room)) is not None and len(r.members) == 1)
    finally:
        for session in (alice, bob, carol):
            await session.close()


async def test_room_messages_once_in_order_with_senders(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob, carol, room = await room_of_three(relay, tmp_path)
    # dave only reads: what he receives is the relay's order of the room.
    (dave,) = await started(relay, tmp_path, "dave")
    sessions = [alice, bob, carol]
    try:
        assert dave.uid is not None
        assert (await alice.invite(room, dave.uid)).ok
        assert (await dave.join(room)).ok
        sent: dict[str, list[HistoryEntry]] = {}
        for round_ in range(10):  # three senders at once, ten rounds
            for session in sessions:
                entry = session.send_room_text(room, f"{session.username}-{round_}")
                sent.setdefault(session.username, []).append(entry)
        for session in sessions:
            for entry in sent[session.username]:
                done = await session.wait_outcome(entry.msg_id, timeout=WAIT)
                assert done.state is MessageState.SENT and done.seq is None  # room Ack: seq 0
        await until(lambda: len(texts(dave, room)) == 30)
        order = texts(dave, room)
        assert sorted(order) == sorted(f"{s.username}-{r}" for s in sessions for r in range(10))

        # Every member has every message once; the others' in dave's order; own as own.
        for session in sessions:
            await until(lambda s=session: len(texts(s, room)) == 30)  # type: ignore[misc]
            entries = [e for e in session.store.page(-room, limit=1000) if e.type == _M.MESSAGE]
            theirs = [e.text for e in entries if not e.outgoing]
            assert theirs == [t for t in order if not t.startswith(session.username)]
            assert all(e.sender != 0 for e in entries if not e.outgoing)
            for entry in entries:
                author = entry.text.split("-")[0]
                assert entry.outgoing == (author == session.username)
                if not entry.outgoing:
                    assert session.store.peer_name(entry.sender) == author

        # The timeline: carol's history holds the invites and joins as events.
        events = [(e.sender, e.text) for e in carol.store.page(-room) if e.type == _M.ROOM_EVENT]
        assert alice.uid and bob.uid and carol.uid
        assert (alice.uid, f"invite {bob.uid}") in events
        assert (bob.uid, "join") in events
        assert (carol.uid, "join") in events
        assert (alice.uid, f"invite {dave.uid}") in events

        # bob stops; carol writes; bob comes back with the same store: the backlog, once.
        await bob.close()
        for n in range(5):
            await carol.wait_outcome(carol.send_room_text(room, f"later-{n}").msg_id, timeout=WAIT)
        bob = device_session(relay, tmp_path, "bob", "tui@bob")
        sessions[1] = bob
        bob_events = bob.events()
        await bob.start()
        await bob.wait_synced(WAIT)
        reported: list[str] = []
        while True:  # what bob's new session reported, up to the end of its backlog
            event = await bob_events.next(WAIT)
            if isinstance(event, MessageReceived) and event.entry.type == _M.MESSAGE:
                reported.append(event.entry.text)
            if isinstance(event, SyncCompleted):
                break
        assert reported == [f"later-{n}" for n in range(5)]
        assert texts(bob, room)[-5:] == [f"later-{n}" for n in range(5)]
        assert len(texts(bob, room)) == 35
        assert bob.store.conversations()[0].peer == -room
    finally:
        for session in (*sessions, dave):
            await session.close()


async def test_rejoining_member_gets_history_without_duplicates(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob, carol, room = await room_of_three(relay, tmp_path)
    try:
        assert bob.uid is not None
        for n in range(3):
            await alice.wait_outcome(alice.send_room_text(room, f"m{n}").msg_id, timeout=WAIT)
        await until(lambda: len(texts(bob, room)) == 3)
        bob_events = bob.events()
        assert (await bob.leave(room)).ok
        assert (await alice.invite(room, bob.uid)).ok
        await next_event(bob_events, lambda e: isinstance(e, RoomInvited))
        assert (await bob.join(room)).ok
        # The join event comes after the replayed history: once it is here, all of it is.
        await until(
            lambda: (
                [e.text for e in bob.store.page(-room) if e.type == _M.ROOM_EVENT].count("join")
                == 2
            )
        )
        assert texts(bob, room) == ["m0", "m1", "m2"]
        assert texts(bob, room, _M.ROOM_EVENT).count("leave") == 1
    finally:
        for session in (alice, bob, carol):
            await session.close()


async def test_block_and_unblock(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob = await started(relay, tmp_path, "alice", "bob")
    try:
        assert alice.uid and bob.uid
        await alice.add_buddy(bob.uid)
        await bob.add_buddy(alice.uid)
        events = alice.events()
        assert await alice.block(bob.uid) == pb.BlockResponse.SUCCESS
        listed = await next_event(
            events,
            lambda e: isinstance(e, BuddyListChanged) and any(b.blocked for b in e.buddies),
        )
        assert isinstance(listed, BuddyListChanged)
        assert [(b.uid, b.blocked) for b in listed.buddies] == [(bob.uid, True)]
        assert alice.is_blocked(bob.uid)
        refused = await bob.wait_outcome(bob.send_text(alice.uid, "hi").msg_id, timeout=WAIT)
        assert refused.state is MessageState.FAILED and refused.code == pb.Ack.NOT_BUDDY
        assert await alice.unblock(bob.uid) == pb.BlockResponse.SUCCESS
        buddies = await alice.list_buddies()
        assert all(not b.blocked for b in buddies)
        assert not alice.is_blocked(bob.uid)
    finally:
        await alice.close()
        await bob.close()


async def test_plain_v2_session_cannot_ask_for_rooms(relay: RelayProcess, tmp_path: Path) -> None:
    session = ClientSession(
        Endpoint(relay.host, relay.port),
        "erin",
        "pw-erin",
        trust=policy_for(relay),
        data_dir=tmp_path / "erin",
        options=FAST,
    )
    await session.register()
    await session.start()
    try:
        try:
            await session.create_room("nope")
        except RuntimeError as exc:
            assert "v2.1" in str(exc)
        else:
            raise AssertionError("a plain v2 session asked for a room")
    finally:
        await session.close()


async def test_file_offered_in_a_room_goes_to_each_member_who_accepts(
    relay: RelayProcess, tmp_path: Path
) -> None:
    sessions = [device_session(relay, tmp_path, n, f"tui@{n}") for n in ("alice", "bob", "carol")]
    managers: list[TransferManager] = []
    queues: list[asyncio.Queue[TransferEvent]] = []
    for session in sessions:
        await session.register()
        downloads = tmp_path / f"{session.username}-downloads"
        downloads.mkdir()
        manager = TransferManager(
            session, data_dir=tmp_path / session.username, downloads_dir=downloads
        )
        queue: asyncio.Queue[TransferEvent] = asyncio.Queue()
        manager.add_listener(queue.put_nowait)
        managers.append(manager)
        queues.append(queue)
        await session.start()

    async def next_of(queue: asyncio.Queue[TransferEvent], kind: type[T]) -> T:
        async with asyncio.timeout(WAIT):
            while True:
                event = await queue.get()
                if isinstance(event, kind):
                    return event

    alice, bob, carol = sessions
    try:
        room = await form_room(alice, bob, carol)
        source = tmp_path / "notes.bin"
        payload = bytes(range(256)) * 1000
        source.write_bytes(payload)
        offer = await managers[0].offer(-room, source)
        assert offer.peer == -room
        for index in (1, 2):
            offered = (await next_of(queues[index], TransferOffered)).transfer
            assert offered.peer == alice.uid and offered.name == "notes.bin"
            await managers[index].accept(offered.id)
            done = await next_of(queues[index], TransferCompleted)
            assert done.path.read_bytes() == payload
        # alice has one finished transfer per member, and the room offer stays open.
        await wait_until(
            lambda: (
                sorted(
                    t.peer
                    for t in managers[0].transfers()
                    if t.state is TransferState.COMPLETED and t.outgoing
                )
                == sorted([bob.uid or 0, carol.uid or 0])
            ),
            "both copies completed on alice's side",
            timeout=WAIT,
        )
        room_offer = managers[0].get(offer.id)
        assert room_offer is not None and room_offer.state is TransferState.OFFERED
        # Cancelled: the room offer ends here (a room takes no FILE_CANCEL).
        cancelled = await managers[0].cancel(offer.id)
        assert cancelled.state is TransferState.CANCELLED
    finally:
        for manager, session in zip(managers, sessions, strict=True):
            await manager.close()
            await session.close()


async def test_parley_send_to_a_room_and_tail_it(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob, carol = await started(relay, tmp_path, "alice", "bob", "carol")
    try:
        room = await form_room(alice, bob)
        assert carol.uid is not None
        tail = parley(
            "tail", *cli_args(relay, tmp_path, "bob", tmp_path / "bob-cli"), "--count", "4"
        )
        await asyncio.to_thread(relay.wait_for_log, r"login uid=\d+ v2 device='tail@", WAIT)
        alice_args = cli_args(relay, tmp_path, "alice", tmp_path / "alice-cli")

        code, out, err = await finished(parley("send", *alice_args, "--room", "Dev Team", "up"))
        assert code == 0, err
        assert "sent to room Dev Team" in out
        await bob.wait_outcome(bob.send_room_text(room, "thanks").msg_id, timeout=WAIT)
        carol_events = carol.events()
        assert (await alice.invite(room, carol.uid)).ok
        await next_event(carol_events, lambda e: isinstance(e, RoomInvited))
        assert (await carol.join(room)).ok

        code, out, err = await finished(tail)
        assert code == 0, err
        lines = out.splitlines()
        expected = [
            "[dev team] alice: up",
            "[dev team] bob: thanks",
            "[dev team] * alice invited carol",
            "[dev team] * carol joined",
        ]
        assert len(lines) == len(expected), out
        for line, end in zip(lines, expected, strict=True):
            assert line.endswith(end), out

        # Unknown and ambiguous names are refused with a reason (exit 1).
        code, _, err = await finished(parley("send", *alice_args, "--room", "nope", "x"))
        assert code == 1 and "you are in no room named 'nope'" in err
        assert (await alice.create_room("DEV TEAM")).ok
        code, _, err = await finished(parley("send", *alice_args, "--room", "dev team", "x"))
        assert code == 1 and "2 of your rooms are named 'dev team'" in err, err
        code, _, err = await finished(parley("send", *alice_args, "--room", "dev team"))
        assert code == 2 and "usage" in err
    finally:
        for session in (alice, bob, carol):
            await session.close()


async def test_room_messages_once_in_order_across_a_relay_crash(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob, carol, room = await room_of_three(relay, tmp_path)
    (dave,) = await started(relay, tmp_path, "dave")
    senders = [alice, bob, carol]
    try:
        assert dave.uid is not None
        assert (await alice.invite(room, dave.uid)).ok
        assert (await dave.join(room)).ok
        entries: list[tuple[ClientSession, HistoryEntry]] = []
        for round_ in range(40):
            if round_ == 20:  # SIGKILL with messages in flight; the rest queue meanwhile
                await asyncio.to_thread(relay.kill)
            for session in senders:
                entry = session.send_room_text(room, f"{session.username}-{round_}")
                entries.append((session, entry))
        await asyncio.to_thread(relay.start)
        for session, entry in entries:
            done = await session.wait_outcome(entry.msg_id, timeout=WAIT)
            assert done.state is MessageState.SENT, done
        expected = sorted(f"{s.username}-{r}" for s in senders for r in range(40))
        await until(lambda: len(texts(dave, room)) >= len(expected))
        order = texts(dave, room)
        assert sorted(order) == expected  # each once
        for session in senders:
            await until(lambda s=session: len(texts(s, room)) >= len(expected))  # type: ignore[misc]
            mine = texts(session, room)
            assert sorted(mine) == expected
            theirs = [
                e.text
                for e in session.store.page(-room, limit=1000)
                if e.type == _M.MESSAGE and not e.outgoing
            ]
            assert theirs == [t for t in order if not t.startswith(session.username)]
    finally:
        for session in (*senders, dave):
            await session.close()
