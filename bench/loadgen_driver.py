"""Drive the C load client (``bench/loadgen``) against a relay or mosquitto.

Set-up over the wire, done here in Python and never measured: registering users (the relay
runs with a cheap scrypt, ``tests/harness.py``), mutual buddies for sender→receiver pairs,
and rooms with their members (CREATE, INVITE, JOIN). The Python side logs every user in
with exactly the device the load client will use later (``bench-0`` when devices are on,
none otherwise), so set-up creates no extra device that would hold copies nobody reads.

:func:`run_loadgen` writes the load client's config file (``G``/``R`` lines, see
``loadgen.c``), runs the binary and returns the JSON figures it prints; the load client
reads the CPU time of the ``watch`` processes itself at the edges of its measured phase.

Invariant: nothing here runs at import time; every connection opened is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import tempfile
from dataclasses import dataclass

from bench.benchlib import BENCH_PASSWORD, RelayProcess, client_tls_context, read_until
from bench.build_loadgen import build
from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.types import FrameType

__all__ = [
    "BENCH_DEVICE",
    "LoadResult",
    "LoadgenError",
    "Pair",
    "Room",
    "config_for_pairs",
    "config_for_room",
    "prepare_pairs",
    "prepare_room",
    "run_loadgen",
]

BENCH_DEVICE = "bench-0"
SETUP_CONCURRENCY = 50


class LoadgenError(RuntimeError):
    """The load client failed (its stderr is in the message) or set-up was refused."""


@dataclass(frozen=True)
class Pair:
    sender: str
    receiver: str
    receiver_uid: int


@dataclass(frozen=True)
class Room:
    sender: str
    room_id: int
    members: list[str]


@dataclass(frozen=True)
class LoadResult:
    """The load client's figures (see loadgen.c): copies delivered to receivers in the
    measured phase, its own CPU seconds and each watched process's CPU seconds then."""

    delivered: int
    sent: int
    seconds: float
    loadgen_cpu: float
    watch_cpu: list[float]
    errors: int
    ok: bool
    connections: int
    setup_seconds: float
    longest_gap: float  # longest wait for any event in the measured phase, seconds

    @classmethod
    def from_json(cls, text: str) -> LoadResult:
        data = json.loads(text)
        return cls(
            delivered=int(data["delivered"]),
            sent=int(data["sent"]),
            seconds=float(data["seconds"]),
            loadgen_cpu=float(data["loadgen_cpu"]),
            watch_cpu=[float(v) for v in data["watch_cpu"]],
            errors=int(data["errors"]),
            ok=bool(data["ok"]),
            connections=int(data["connections"]),
            setup_seconds=float(data["setup_seconds"]),
            longest_gap=float(data.get("longest_gap", 0.0)),
        )


class SetupSession:
    """One short-lived set-up connection to the relay (asyncio streams, TLS)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.uid = 0
        self._request_id = 0

    @classmethod
    async def open(cls, relay: RelayProcess) -> SetupSession:
        tls = not relay.plaintext
        reader, writer = await asyncio.open_connection(
            relay.host,
            relay.port,
            ssl=client_tls_context() if tls else None,
            server_hostname=relay.host if tls else None,
        )
        await read_until(reader, FrameType.RAW)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()

    async def register(self, name: str) -> int:
        self.writer.write(
            encode_frame(
                FrameType.REGISTER, pb.RegisterRequest(username=name, password=BENCH_PASSWORD)
            )
        )
        response = pb.RegisterResponse.FromString(await read_until(self.reader, FrameType.REGISTER))
        if response.code != pb.RegisterResponse.SUCCESS:
            raise LoadgenError(f"register {name}: {pb.RegisterResponse.Code.Name(response.code)}")
        self.uid = response.uid
        return response.uid

    async def login(self, name: str, device: str) -> None:
        request = pb.LoginRequest(
            username=name, password=BENCH_PASSWORD, protocol_version=2, device=device
        )
        self.writer.write(encode_frame(FrameType.LOGIN, request))
        response = pb.LoginResponse.FromString(await read_until(self.reader, FrameType.LOGIN))
        if response.code != pb.LoginResponse.SUCCESS:
            raise LoadgenError(f"login {name}: {pb.LoginResponse.Code.Name(response.code)}")

    async def add_buddy(self, uid: int) -> int:
        self.writer.write(encode_frame(FrameType.ADD_BUDDY, pb.AddBuddyRequest(uid=uid)))
        response = pb.AddBuddyResponse.FromString(
            await read_until(self.reader, FrameType.ADD_BUDDY)
        )
        return response.code

    async def room(
        self, op: pb.RoomRequest.Op.ValueType, room: int = 0, name: str = "", uid: int = 0
    ) -> pb.RoomResponse:
        """One ROOM request; pushed EVENTs and other answers are skipped."""
        self._request_id += 1
        request = pb.RoomRequest(op=op, room=room, name=name, uid=uid, request_id=self._request_id)
        self.writer.write(encode_frame(FrameType.ROOM, request))
        while True:
            response = pb.RoomResponse.FromString(await read_until(self.reader, FrameType.ROOM))
            if response.op != pb.RoomRequest.EVENT and response.request_id == self._request_id:
                if response.code != pb.RoomResponse.SUCCESS:
                    code = pb.RoomResponse.Code.Name(response.code)
                    raise LoadgenError(f"ROOM op {op}: {code}")
                return response


async def _prepare_pair(
    relay: RelayProcess, index: int, prefix: str, device: str, gate: asyncio.Semaphore
) -> Pair:
    sender_name, receiver_name = f"{prefix}s{index}", f"{prefix}r{index}"
    async with gate:
        receiver = await SetupSession.open(relay)
        sender = await SetupSession.open(relay)
        try:
            receiver_uid = await receiver.register(receiver_name)
            sender_uid = await sender.register(sender_name)
            await sender.login(sender_name, device)
            if await sender.add_buddy(receiver_uid) != pb.AddBuddyResponse.PENDING:
                raise LoadgenError(f"{sender_name}: buddy request not pending")
            await receiver.login(receiver_name, device)
            if await receiver.add_buddy(sender_uid) != pb.AddBuddyResponse.SUCCESS:
                raise LoadgenError(f"{receiver_name}: buddy request not accepted")
        finally:
            await sender.close()
            await receiver.close()
    return Pair(sender_name, receiver_name, receiver_uid)


async def prepare_pairs(relay: RelayProcess, prefix: str, pairs: int, device: str) -> list[Pair]:
    """Register ``pairs`` sender/receiver users (``<prefix>s<i>``/``<prefix>r<i>``), make
    each pair mutual buddies; every login uses ``device`` ("" = none)."""
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    return list(
        await asyncio.gather(*(_prepare_pair(relay, i, prefix, device, gate) for i in range(pairs)))
    )


async def _register_only(relay: RelayProcess, name: str, gate: asyncio.Semaphore) -> int:
    async with gate:
        session = await SetupSession.open(relay)
        try:
            return await session.register(name)
        finally:
            await session.close()


async def _join(relay: RelayProcess, name: str, room_id: int, gate: asyncio.Semaphore) -> None:
    async with gate:
        member = await SetupSession.open(relay)
        try:
            await member.login(name, BENCH_DEVICE)
            await member.room(pb.RoomRequest.JOIN, room=room_id)
        finally:
            await member.close()


async def prepare_room(relay: RelayProcess, prefix: str, members: int) -> Room:
    """A room owned by ``<prefix>owner`` (who sends) with ``members`` other members, every
    one logged in with device ``bench-0`` (room traffic needs v2.1 sessions).

    Members are offline while they are invited and online only while they join
    (``SETUP_CONCURRENCY`` at a time): every membership change is pushed to the room's live
    sessions, so keeping all of them connected would make set-up quadratic in pushes."""
    owner_name = f"{prefix}owner"
    names = [f"{prefix}m{i}" for i in range(members)]
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    owner = await SetupSession.open(relay)
    try:
        await owner.register(owner_name)
        await owner.login(owner_name, BENCH_DEVICE)
        created = await owner.room(pb.RoomRequest.CREATE, name=f"{prefix} bench")
        room_id = created.rooms[0].id
        uids = await asyncio.gather(*(_register_only(relay, name, gate) for name in names))
        for uid in uids:  # the owner's connection carries one request at a time
            await owner.room(pb.RoomRequest.INVITE, room=room_id, uid=uid)
    finally:
        await owner.close()
    await asyncio.gather(*(_join(relay, name, room_id, gate) for name in names))
    return Room(owner_name, room_id, names)


def config_for_pairs(pairs: list[Pair]) -> str:
    return "".join(f"G {p.sender} {p.receiver_uid} 0 -\nR {p.receiver}\n" for p in pairs)


def config_for_room(room: Room) -> str:
    return f"G {room.sender} 0 {room.room_id} -\n" + "".join(f"R {m}\n" for m in room.members)


def run_loadgen(
    options: list[str], config: str, watch: list[int], timeout: float = 300.0
) -> LoadResult:
    """Run the load client with ``options`` on ``config``; figures from its JSON line."""
    binary = build()
    with tempfile.NamedTemporaryFile("w", prefix="loadgen-", suffix=".conf") as handle:
        handle.write(config)
        handle.flush()
        command = [str(binary), "--config", handle.name, *options]
        for pid in watch:
            command += ["--watch", str(pid)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    lines = result.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise LoadgenError(
            f"load client exited with {result.returncode}: {result.stderr.strip()[-2000:]}"
        )
    figures = LoadResult.from_json(lines[-1])
    if result.stderr.strip() and not figures.ok:
        raise LoadgenError(f"load client reported errors: {result.stderr.strip()[-2000:]}")
    return figures


def relay_options(relay: RelayProcess) -> list[str]:
    """Host, port and transport options for the load client against ``relay``."""
    options = ["--proto", "parley", "--host", relay.host, "--port", str(relay.port)]
    return options + (["--plaintext"] if relay.plaintext else [])
