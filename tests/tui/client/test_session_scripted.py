"""Session behaviour the real relay cannot be made to show: a hole in the inbox seqs.

This is the one place with a scripted stand-in for the relay (a loopback asyncio server
speaking real frames): the real relay always delivers in order, so a skipped seq, a
duplicate push and out-of-order replay can only be produced by hand. Everything else is
tested against the real relay in tests/e2e/test_client_*.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol import Direction, FrameDecoder, FrameType, decode_payload, encode_frame
from protocol import chat_pb2 as pb
from tui.client import (
    ClientSession,
    Endpoint,
    MessageReceived,
    SessionOptions,
    SyncCompleted,
    TrustPolicy,
)


class ScriptedRelay:
    """Accepts one client, logs it in, then lets the test push frames and read requests."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[FrameType, object]] = asyncio.Queue()
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.push(FrameType.RAW, b"hello")
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                message = decode_payload(frame.type, frame.payload, Direction.TO_RELAY)
                if frame.type == FrameType.LOGIN:
                    self.push(
                        FrameType.LOGIN,
                        pb.LoginResponse(uid=1, protocol_version=2, token="t", head_seq=0),
                    )
                    self.push(FrameType.SYNC, pb.Sync(head_seq=0))
                    self.connected.set()
                elif frame.type != FrameType.PING:
                    await self.received.put((FrameType(frame.type), message))
        writer.close()

    def push(
        self, frame_type: FrameType, message: pb.Message | pb.LoginResponse | pb.Sync | bytes
    ) -> None:
        assert self.writer is not None
        self.writer.write(encode_frame(frame_type, message))

    def message(self, seq: int) -> None:
        self.push(FrameType.MESSAGE, pb.Message(uid=2, seq=seq, id=100 + seq, msg=f"m{seq}"))

    async def expect(self, frame_type: FrameType) -> object:
        while True:
            kind, message = await asyncio.wait_for(self.received.get(), 10)
            if kind is frame_type:
                return message


async def test_hole_triggers_sync_and_each_message_shows_once(tmp_path: Path) -> None:
    relay = ScriptedRelay()
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        session = ClientSession(
            Endpoint("127.0.0.1", port),
            "bob",
            "pw",
            trust=TrustPolicy.plaintext(),
            data_dir=tmp_path,
            options=SessionOptions(ack_delay=0.01),
        )
        events = session.events()
        await session.start()
        await asyncio.wait_for(relay.connected.wait(), 10)
        for seq in (1, 2, 2, 4):  # a duplicate, then seq 3 is skipped
            relay.message(seq)
        sync = await relay.expect(FrameType.SYNC)
        assert isinstance(sync, pb.Sync) and sync.since_seq == 2
        # The client asked for the replay while handling m4 (same event loop): by now m4
        # is stored, yet the cursor, and so any Ack, stays below the hole.
        assert session.inbox.cursor == 2 and session.acks.acked <= 2
        for seq in (3, 4):  # the replay
            relay.message(seq)
        relay.push(FrameType.SYNC, pb.Sync(head_seq=4))
        shown = []
        while True:
            event = await events.next(10)
            if isinstance(event, MessageReceived):
                shown.append(event.entry.text)
            if isinstance(event, SyncCompleted) and event.head_seq == 4:
                break
        assert shown == ["m1", "m2", "m4", "m3"]
        acks: list[int] = []
        while not acks or acks[-1] < 4:
            ack = await relay.expect(FrameType.ACK)
            assert isinstance(ack, pb.Ack)
            acks.append(ack.seq)
        assert acks == sorted(acks) and 3 not in acks
        assert session.store.count(2) == 4
        await session.close()
