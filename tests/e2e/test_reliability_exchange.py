"""Reliability of the durable path end to end: ClientSession ↔ real relay, under failure.

Acceptance (issue 4): whatever happens to the relay process (SIGKILL at random moments,
restarted on the same port and data dir), to a client (closed for a while, then started
again on the same data dir) or to the TCP connections (cut mid-stream dozens of times), every
message is shown at its recipient exactly once, in its sender's order, and none is missing.

How it is checked, per direction (sender → recipient):
- the sender sends ``total`` numbered texts (``"a>b 00042"``) through ``send_text``, keeping
  at most ``WINDOW`` of them unacknowledged (a user typing fast; while the relay is down they
  stay PENDING and the session re-sends them by itself);
- every id the sender saw acknowledged (OutgoingStateChanged SENT/DELIVERED) is recorded;
- at the recipient every MessageReceived is recorded (across restarts of its session), and
  at the end its LocalStore history with the sender is read back from disk.
The history must be exactly the ``total`` texts in order with the sender's ids, the
MessageReceived events likewise (no duplicate, nothing missing), every acknowledged id among
them, and no outgoing message left PENDING or FAILED.

Timing is never asserted: the waits are upper bounds against hangs only. Kill and cut moments
come from seeded ``random.Random`` instances (the exact interleaving with the relay still
varies from run to run, which is the point of killing it "at random moments").
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.harness import RelayProcess
from tests.tui.client.sessions import buddies, policy_for
from tests.waiting import wait_until
from tui.client import (
    ClientSession,
    ConnectionState,
    ConnectionStateChanged,
    Endpoint,
    Event,
    LocalStore,
    MessageReceived,
    MessageState,
    OutgoingStateChanged,
    SessionOptions,
    history_path,
)

# Quick reconnects (the relay is back within a second); everything else is the default.
OPTIONS = SessionOptions(backoff_base=0.05, backoff_cap=0.5)
WINDOW = 200  # unacknowledged messages a sender allows itself
HANG = 60.0  # upper bound for any single phase; only there to turn a hang into a failure


class Stream:
    """One direction of the exchange: numbered texts from one session to another."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.next_index = 0
        self.ids: list[int] = []  # msg_id of text i, as returned by send_text
        self.index_of: dict[int, int] = {}
        self.acked: set[int] = set()  # ids the sender saw SENT or DELIVERED
        self.failed: list[tuple[int, int]] = []  # (msg_id, code) the sender saw FAILED
        self.received: list[tuple[str, int, int]] = []  # (text, msg_id, seq) per event
        self.paused = False  # the sender's session is closed for now
        self.limit = total  # the pump sends texts below this index only (for now)
        self.progress = asyncio.Event()

    def text(self, index: int) -> str:
        return f"{self.label} {index:05d}"

    @property
    def unacked(self) -> int:
        return len(self.ids) - len(self.acked)

    @property
    def done(self) -> bool:
        return len(self.acked) == self.total and len({r[0] for r in self.received}) == self.total

    def describe(self) -> str:
        return (
            f"{self.label}: {len(self.ids)} sent, {len(self.acked)} acked, "
            f"{len(self.received)} received, {len(self.failed)} failed"
        )

    def on_sender_event(self, event: Event) -> None:
        if isinstance(event, OutgoingStateChanged) and event.entry.msg_id in self.index_of:
            if event.entry.state in (MessageState.SENT, MessageState.DELIVERED):
                self.acked.add(event.entry.msg_id)
                self.progress.set()
            elif event.entry.state is MessageState.FAILED:
                self.failed.append((event.entry.msg_id, event.entry.code))

    def on_recipient_event(self, event: Event) -> None:
        if isinstance(event, MessageReceived) and event.entry.text.startswith(self.label + " "):
            entry = event.entry
            self.received.append((entry.text, entry.msg_id, entry.seq or 0))
            self.progress.set()

    async def pump(self, sender: Callable[[], ClientSession], peer: int) -> None:
        """Send every text, never more than WINDOW unacknowledged, pausing while closed."""
        while self.next_index < self.total:
            if self.paused or self.unacked >= WINDOW or self.next_index >= self.limit:
                self.progress.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):  # not wait_for: see the 3.11 note below
                        await self.progress.wait()
                continue
            entry = sender().send_text(peer, self.text(self.next_index))
            self.ids.append(entry.msg_id)
            self.index_of[entry.msg_id] = self.next_index
            self.next_index += 1
            if self.next_index % 16 == 0:
                await asyncio.sleep(0)  # let acks and incoming messages in

    def check(self, recipient_store: LocalStore, sender_store: LocalStore, sender_uid: int) -> None:
        """The acceptance criteria for this direction, on the events and on both stores."""
        expected = [self.text(i) for i in range(self.total)]
        assert self.failed == [], f"{self.label}: messages FAILED at the sender"
        assert len(self.ids) == self.total and len(set(self.ids)) == self.total
        assert self.acked == set(self.ids), f"{self.label}: not every message was acked"

        # Shown exactly once (MessageReceived), in the sender's order, nothing missing.
        texts = [r[0] for r in self.received]
        duplicates = [t for t, n in Counter(texts).items() if n > 1]
        assert not duplicates, f"{self.label}: shown more than once: {duplicates[:10]}"
        missing = sorted(set(expected) - set(texts))
        assert not missing, f"{self.label}: {len(missing)} never shown, e.g. {missing[:10]}"
        assert texts == expected, f"{self.label}: MessageReceived out of the sender's order"
        assert [r[1] for r in self.received] == self.ids
        seqs = [r[2] for r in self.received]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

        # Stored exactly once, in order, in the recipient's history on disk.
        history = [e for e in recipient_store.page(sender_uid, limit=10**9) if not e.outgoing]
        stored = [e.text for e in history]
        duplicates = [t for t, n in Counter(stored).items() if n > 1]
        assert not duplicates, f"{self.label}: stored more than once: {duplicates[:10]}"
        assert stored == expected, f"{self.label}: history differs from what was sent"
        assert [e.msg_id for e in history] == self.ids
        assert all(e.state is MessageState.RECEIVED for e in history)

        # The sender's side: nothing left PENDING or FAILED, every message at least SENT.
        assert sender_store.pending() == []
        for msg_id in self.ids:
            entry = sender_store.find_outgoing(msg_id)
            assert entry is not None
            assert entry.state in (MessageState.SENT, MessageState.DELIVERED), entry


class Exchange:
    """Named sessions, their streams, and a trail of connection events for failure reports."""

    def __init__(self, relay: RelayProcess, endpoints: dict[str, Endpoint], data_dir: Path) -> None:
        self.relay = relay
        self.endpoints = endpoints
        self.data_dir = data_dir
        self.sessions: dict[str, ClientSession] = {}
        self.streams: list[Stream] = []
        self.trail: list[str] = []
        self.seed = 0

    def session(self, name: str) -> ClientSession:
        """A new session for ``name`` (same data dir every time: same history and outbox)."""
        self.seed += 1
        session = ClientSession(
            self.endpoints[name],
            name,
            f"pw-{name}",
            trust=policy_for(self.relay),
            data_dir=self.data_dir / name,
            options=OPTIONS,
            rng=random.Random(self.seed).random,
        )
        session.add_listener(self._tracker(name))
        self.sessions[name] = session
        return session

    def note(self, what: str) -> None:
        self.trail.append(f"{time.monotonic():.3f} {what}")

    def _tracker(self, name: str) -> Callable[[Event], None]:
        def listener(event: Event) -> None:
            if isinstance(event, ConnectionStateChanged):
                self.note(f"{name} {event.state.value} {event.reason!r}")

        return listener

    def stream(self, label: str, total: int, sender: str, recipient: str) -> Stream:
        """A stream from ``sender`` to ``recipient``, listening on their current sessions
        (a session started later must be given the stream's listeners by the caller)."""
        stream = Stream(label, total)
        self.streams.append(stream)
        self.sessions[sender].add_listener(stream.on_sender_event)
        self.sessions[recipient].add_listener(stream.on_recipient_event)
        return stream

    def describe(self) -> str:
        lines = [s.describe() for s in self.streams]
        for name, session in self.sessions.items():
            lines.append(
                f"{name}: {session.state.value}, connected={session.connected}, "
                f"outbox in flight {session.outbox.in_flight}, inbox cursor "
                f"{session.inbox.cursor}, supervisor "
                f"{getattr(session, '_supervisor', None)!r}"
            )
        return (
            "\n".join(lines)
            + "\nconnection events:\n"
            + "\n".join(self.trail[-30:])
            + "\nrelay log:\n"
            + "\n".join(self.relay.logs().splitlines()[-30:])
        )

    async def wait_until(
        self, condition: Callable[[], bool], what: str, timeout: float = HANG
    ) -> None:
        await wait_until(condition, what, timeout=timeout, poll=0.01, describe=self.describe)

    async def finish(self, pumps: list[asyncio.Task[None]]) -> None:
        """Every text sent, acknowledged and received; then a pause for late duplicates."""
        await self.wait_until(lambda: all(p.done() for p in pumps), "every message was sent")
        await asyncio.gather(*pumps)
        await self.wait_until(
            lambda: all(s.done for s in self.streams), "every message was acked and received"
        )
        await asyncio.sleep(0.3)  # a duplicate would show up now, if the relay sent one

    def open_store(self, name: str) -> LocalStore:
        endpoint = self.endpoints[name]
        return LocalStore.open(
            history_path(self.data_dir / name, endpoint.host, endpoint.port, name)
        )


async def start_pair(exchange: Exchange) -> tuple[ClientSession, ClientSession]:
    alice, bob = exchange.session("alice"), exchange.session("bob")
    for s in (alice, bob):
        await s.register()
        await s.start()
    await buddies(alice, bob)
    assert alice.uid is not None and bob.uid is not None
    return alice, bob


def check_all(
    exchange: Exchange, a2b: Stream, b2a: Stream | None, alice_uid: int, bob_uid: int
) -> None:
    a_store, b_store = exchange.open_store("alice"), exchange.open_store("bob")
    try:
        a2b.check(b_store, a_store, alice_uid)
        if b2a is not None:
            b2a.check(a_store, b_store, bob_uid)
    finally:
        a_store.close()
        b_store.close()


# --- 1. SIGKILL the relay at random moments; one client offline for a while ----------------

PER_DIRECTION = 10_000


async def test_relay_sigkilled_at_random_moments_while_two_clients_exchange(
    relay: RelayProcess, tmp_path: Path
) -> None:
    rng = random.Random(20240404)
    endpoint = Endpoint(relay.host, relay.port)
    exchange = Exchange(relay, {"alice": endpoint, "bob": endpoint}, tmp_path)
    alice, bob = await start_pair(exchange)
    assert alice.uid is not None and bob.uid is not None
    a2b = exchange.stream("a>b", PER_DIRECTION, "alice", "bob")
    b2a = exchange.stream("b>a", PER_DIRECTION, "bob", "alice")
    sessions = exchange.sessions
    pumps = [
        asyncio.create_task(a2b.pump(lambda: sessions["alice"], bob.uid)),
        asyncio.create_task(b2a.pump(lambda: sessions["bob"], alice.uid)),
    ]
    kills = 0
    backlog: list[int] = []  # seqs bob's second session got as backlog

    async def kill_and_restart() -> None:
        nonlocal kills
        await asyncio.to_thread(relay.kill)  # SIGKILL: nothing flushed, nothing committed
        kills += 1
        exchange.note(f"relay killed ({a2b.describe()}; {b2a.describe()})")
        await asyncio.sleep(rng.uniform(0.0, 0.4))  # senders keep going: PENDING piles up
        await asyncio.to_thread(relay.start)  # same port, same data dir
        exchange.note("relay restarted")

    async def after_acks(count: int, streams: tuple[Stream, ...]) -> None:
        """Wait until ``count`` more messages of ``streams`` are acked (or all of them)."""
        target = min(sum(len(s.acked) for s in streams) + count, sum(s.total for s in streams))
        await exchange.wait_until(
            lambda: sum(len(s.acked) for s in streams) >= target, f"{target} messages acked"
        )

    both = (a2b, b2a)
    try:
        # Two kills with both clients online.
        for _ in range(2):
            await after_acks(rng.randrange(1_000, 2_500), both)
            await kill_and_restart()
        # Bob quits (closing his session; what he has not got acked stays in his outbox)...
        await after_acks(rng.randrange(500, 1_500), both)
        b2a.paused = True
        await sessions["bob"].close()
        exchange.note(f"bob closed ({a2b.describe()}; {b2a.describe()})")
        # ...Alice keeps writing to him; the relay is killed while he is away...
        await after_acks(rng.randrange(300, 900), (a2b,))
        await kill_and_restart()
        await after_acks(rng.randrange(300, 900), (a2b,))
        # ...then Bob starts again on the same data dir and gets the backlog.
        bob2 = exchange.session("bob")
        bob2.add_listener(b2a.on_sender_event)
        bob2.add_listener(a2b.on_recipient_event)
        bob2.add_listener(
            lambda e: (
                backlog.append(e.entry.seq or 0)
                if isinstance(e, MessageReceived) and e.backlog
                else None
            )
        )
        await bob2.start(retry_first=True)
        b2a.paused = False
        # Two more kills with both online again.
        for _ in range(2):
            await after_acks(rng.randrange(1_000, 2_500), both)
            await kill_and_restart()
        await exchange.finish(pumps)
    finally:
        for pump in pumps:
            pump.cancel()
        for session in sessions.values():
            await session.close()

    assert kills == 5
    assert len(backlog) >= 300, "bob's second session got no backlog"
    check_all(exchange, a2b, b2a, alice.uid, bob.uid)


# --- 2. The TCP connections cut mid-stream dozens of times --------------------------------


def _reset(transport: asyncio.Transport) -> None:
    """Drop the connection with a TCP RST: bytes buffered here or in the kernel are lost."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Half(asyncio.Protocol):
    """One side of a proxied connection: what it reads is written to the other side."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.link.closed:  # cut before this side was even set up
            _reset(transport)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(data)
        else:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        peer = self.peer.transport if self.peer is not None else None
        if peer is not None and peer.can_write_eof():
            peer.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.close()

    def pause_writing(self) -> None:  # flow control: stop reading the other side
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Link:
    """A client connection and its upstream connection to the relay."""

    def __init__(self, cutter: CableCutter) -> None:
        self.cutter = cutter
        self.down = _Half(self)
        self.up = _Half(self)
        self.down.peer, self.up.peer = self.up, self.down
        self.closed = False

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.cutter.links.discard(self)
        for half in (self.down, self.up):
            if half.transport is not None:
                if abort:
                    _reset(half.transport)
                else:
                    half.transport.close()


class CableCutter:
    """A loopback TCP proxy in front of the relay whose connections the test can cut.

    Bytes (TLS records) pass through unchanged; :meth:`cut` resets every current connection
    on both sides at once, so whatever was in flight in either direction is lost.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.links: set[_Link] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.cuts = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def _accept(self) -> asyncio.Protocol:
        link = _Link(self)
        self.links.add(link)
        task = asyncio.get_running_loop().create_task(self._connect_upstream(link))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return link.down

    async def _connect_upstream(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: link.up, *self.target)
        except OSError:
            link.close(abort=True)
            return
        if link.closed or link.up.transport is None:
            return  # cut meanwhile (connection_made aborted the new side)
        for data in link.down.early:
            link.up.transport.write(data)
        link.down.early.clear()

    def cut(self) -> int:
        """Reset every live connection; returns how many were cut."""
        links = list(self.links)
        for link in links:
            link.close(abort=True)
        self.cuts += bool(links)
        return len(links)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for link in list(self.links):
            link.close(abort=True)


TRANSFER = 10_000
CUTS = 40


async def test_connections_cut_dozens_of_times_during_a_transfer(
    relay: RelayProcess, tmp_path: Path
) -> None:
    rng = random.Random(4242)
    cutters = {name: CableCutter(relay.host, relay.port) for name in ("alice", "bob")}
    for cutter in cutters.values():
        await cutter.start()
    endpoints = {name: Endpoint("127.0.0.1", c.port) for name, c in cutters.items()}
    exchange = Exchange(relay, endpoints, tmp_path)
    alice, bob = await start_pair(exchange)
    assert alice.uid is not None and bob.uid is not None
    a2b = exchange.stream("a>b", TRANSFER, "alice", "bob")
    b2a = exchange.stream("b>a", TRANSFER // 10, "bob", "alice")  # some traffic back, too
    pumps = [
        asyncio.create_task(a2b.pump(lambda: alice, bob.uid)),
        asyncio.create_task(b2a.pump(lambda: bob, alice.uid)),
    ]

    sessions = {"alice": alice, "bob": bob}
    slot = TRANSFER // CUTS
    cut = 0
    try:
        for k in range(CUTS):
            # Cut k falls at a random point of the k-th slot of the transfer. Alice may send
            # only a little beyond the slot before the cut, so it always falls mid-stream,
            # with messages and acks in flight, never after the transfer is over.
            a2b.limit = (k + 1) * slot + WINDOW // 2
            target = int((k + rng.uniform(0.2, 0.8)) * slot)
            victims = rng.choice((("alice",), ("bob",), ("alice", "bob")))
            await exchange.wait_until(
                lambda t=target, vs=victims: (
                    len(a2b.received) >= t  # type: ignore[misc]
                    and all(sessions[v].connected for v in vs)
                ),
                f"{target} messages received with {victims} connected",
            )
            for victim in victims:
                cut += cutters[victim].cut()
            exchange.note(f"cut {victims} ({a2b.describe()}; {b2a.describe()})")
        a2b.limit = TRANSFER
        await exchange.finish(pumps)
    finally:
        for pump in pumps:
            pump.cancel()
        await alice.close()
        await bob.close()
        for cutter in cutters.values():
            await cutter.close()

    assert sum(c.cuts for c in cutters.values()) >= CUTS and cut >= CUTS
    check_all(exchange, a2b, b2a, alice.uid, bob.uid)


async def test_a_send_racing_a_cut_never_wedges_the_session(
    relay: RelayProcess, tmp_path: Path
) -> None:
    """The cut lands a few loop iterations before a send: the session must still notice the
    dead connection, reconnect and deliver.

    3.11 note: ``asyncio.wait_for`` returns the inner result instead of raising when it is
    cancelled just as the inner awaitable completes; a retry loop waiting on an Event that a
    send has just set then swallows its cancellation, and the session stays "connected" to a
    dead socket forever. ``asyncio.timeout`` does not have that problem."""
    cutter = CableCutter(relay.host, relay.port)
    await cutter.start()
    exchange = Exchange(
        relay,
        {"alice": Endpoint("127.0.0.1", cutter.port), "bob": Endpoint(relay.host, relay.port)},
        tmp_path,
    )
    alice, bob = await start_pair(exchange)
    assert alice.uid is not None and bob.uid is not None
    stream = exchange.stream("a>b", 24, "alice", "bob")
    logins: list[float] = []  # one entry per CONNECTED event of alice's session

    def on_event(event: Event) -> None:
        if isinstance(event, ConnectionStateChanged) and event.state is ConnectionState.CONNECTED:
            logins.append(time.monotonic())

    alice.add_listener(on_event)
    try:
        for index in range(stream.total):
            await exchange.wait_until(lambda: alice.connected, "alice is connected")
            before = len(logins)
            cutter.cut()
            for _ in range(index % 6):  # 0-5 loop iterations between the cut and the send
                await asyncio.sleep(0)
            stream.ids.append(alice.send_text(bob.uid, stream.text(index)).msg_id)
            stream.index_of[stream.ids[-1]] = index
            stream.next_index += 1
            await exchange.wait_until(
                lambda b=before: len(logins) > b,  # type: ignore[misc]
                f"alice reconnected after cut {index}",
                timeout=10.0,
            )
        await exchange.wait_until(lambda: stream.done, "every message was acked and received")
    finally:
        await alice.close()
        await bob.close()
        await cutter.close()
    check_all(exchange, stream, None, alice.uid, bob.uid)
