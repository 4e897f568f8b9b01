"""Bounded fuzzing of the real relay: no frame crashes it, hangs it or stops others chatting.

One relay process (real TLS, real SQLite file) serves the whole module. Every example opens a
fresh TLS connection, either not logged in (from a rotating 127.0.0.x source address, so the
per-address login throttle never touches the accounts the module logs in with) or logged in
as a v1 or v2 session from 127.0.0.1, and sends one stream of frames: hypothesis-generated
messages of both directions' classes for every frame type and for unknown type codes, valid
frames with a field overridden (extreme integers), garbage, oversized payloads, header lies,
truncations and bit flips. Every integer field of every message the relay decodes is also
swept through 0, 1, 2^31, 2^32-1, 2^63-1, 2^63 and 2^64-1 exhaustively.

The client never hangs: every read has a deadline. The relay has handled a stream once it
echoes a Ping sent after its last complete frame (and answered each LOGIN and REGISTER in
it) or closes the connection; an incomplete last frame is sent after that echo and followed
by EOF, which the relay must answer by closing. After every example:
- the relay process is alive and has logged no "Traceback": an internal error answered with
  Reset UNKNOWN_ERROR is a bug as much as a crash is;
- a bystander pair of logged-in v2 buddies still exchanges a message both ways.
A failure names the example's exact bytes. After a crash the relay is restarted (same data
dir and port) so the next example, and hypothesis's replay of the failing one, start clean.
Shrinking is off: every shrink step could restart a dead relay; the bytes are printed whole.
Each test ends by checking that a well-formed v1 and v2 login still works.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message as ProtoMessage
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from protocol import FrameDecoder, ProtocolError, encode_frame
from protocol import chat_pb2 as pb
from protocol.types import TYPE_TABLE, FrameType
from relay.forwarding import encode_varint
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies

if TYPE_CHECKING:
    from google._upb._message import Descriptor as UpbDescriptor

    MessageDescriptor = Descriptor | UpbDescriptor  # pure-Python or upb protobuf

IO_TIMEOUT = 30.0  # generous: a slow, shared machine must not fail a healthy relay
EXTREMES = (0, 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1)
# What the strategies draw extremes from: the values SQLite cannot store (>= 2^63) twice as
# often as the others.
DRAWN_EXTREMES = (*EXTREMES, 2**63, 2**64 - 1)
PASSWORD = "fuzz-password-1"
PRELOGIN_SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 255))
KINDS = ("before-login", "v1", "v2")
EXAMPLES = {"before-login": 500, "v1": 400, "v2": 500}
PING_NONCE_BASE = 0x5EED_0000_0000  # far from anything the strategies draw
NAMES = {
    "peer": "fz-peer",
    "v1": "fz-session1",
    "v2": "fz-session2",
    "decoy": "fz-decoy",
    "a": "bystander-a",
    "b": "bystander-b",
}
_VARINT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_BOOL,
        FieldDescriptor.TYPE_ENUM,
    }
)
_HEADER = struct.Struct(">IB")
_ANSWERED_REQUESTS = frozenset({FrameType.LOGIN, FrameType.REGISTER})


# -- wire bytes, by hand (any value in any field, whatever its declared width) --------------


def key(number: int, wire_type: int) -> bytes:
    return encode_varint(number << 3 | wire_type)


def delimited(number: int, body: bytes) -> bytes:
    return key(number, 2) + encode_varint(len(body)) + body


def frame(frame_type: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), frame_type) + payload


def split_complete(stream: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The complete frames at the start of ``stream`` and the offset where they end."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while len(stream) - pos >= _HEADER.size:
        length, frame_type = _HEADER.unpack_from(stream, pos)
        end = pos + _HEADER.size + length
        if end > len(stream):
            break
        frames.append((frame_type, stream[pos + _HEADER.size : end]))
        pos = end
    return frames, pos


def describe(stream: bytes) -> str:
    """The exact bytes (hex), with the frames they parse into, for a failure message."""
    frames, end = split_complete(stream)
    names = [f"{_type_name(t)}[{len(p)}]" for t, p in frames]
    if end < len(stream):
        names.append(f"incomplete[{len(stream) - end} bytes]")
    shown = (
        stream.hex()
        if len(stream) <= 4096
        else (stream[:2048].hex() + f"... ({len(stream)} bytes in all)")
    )
    return f"{' '.join(names)}: {shown}"


def _type_name(code: int) -> str:
    return FrameType(code).name if code in TYPE_TABLE else f"type{code}"


IntegerEncoder = Callable[[int], bytes]


def _varint_field(number: int, value: int) -> bytes:
    return key(number, 0) + encode_varint(value)


def _nested_field(number: int, inner: IntegerEncoder, value: int) -> bytes:
    return delimited(number, inner(value))


def integer_fields(descriptor: MessageDescriptor) -> Iterator[IntegerEncoder]:
    """For every varint field, nested messages' included, the encoder of that field set to a
    value: appended to a payload, its bytes override the field (protobuf: last one wins)."""
    for fd in descriptor.fields:
        if fd.type in _VARINT_TYPES:
            yield functools.partial(_varint_field, fd.number)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            assert fd.message_type is not None
            for inner in integer_fields(fd.message_type):
                yield functools.partial(_nested_field, fd.number, inner)


# -- the accounts and the valid frames the mutations start from ---------------------------


@dataclass(frozen=True)
class Cast:
    """uids of the module's accounts: ``peer`` is a buddy of both session accounts."""

    peer: int
    v1: int
    v2: int
    decoy: int
    a: int
    b: int

    def uids(self) -> tuple[int, ...]:
        return (self.peer, self.v1, self.v2, self.decoy, self.a, self.b)


@dataclass(frozen=True)
class Template:
    """A valid request; ``build`` makes a fresh one (fresh message id) each call."""

    frame_type: FrameType
    build: Callable[[], ProtoMessage]

    def payload(self) -> bytes:
        return self.build().SerializeToString()

    def closes_connection(self) -> bool:
        """A LOGIN (kick or login) or a client RESET ends what the connection can carry."""
        return self.frame_type in (FrameType.LOGIN, FrameType.RESET)


_message_ids = itertools.count(1 << 40)  # 6-byte varints, far from the bystanders


def templates(kind: str, cast: Cast) -> list[Template]:
    """The valid requests a ``kind`` session can send (uids of the module's accounts)."""

    def message(message_type: pb.Message.Type.ValueType, **fields: Any) -> Template:
        return Template(
            FrameType.MESSAGE,
            lambda: pb.Message(uid=cast.peer, type=message_type, id=next(_message_ids), **fields),
        )

    common = [
        Template(
            FrameType.REGISTER, lambda: pb.RegisterRequest(username="fz-new", password=PASSWORD)
        ),
        Template(FrameType.PING, lambda: pb.Ping(nonce=1)),
        Template(FrameType.RESET, lambda: pb.Reset(code=pb.Reset.UNKNOWN_ERROR, msg="bye")),
    ]
    if kind == "before-login":
        return [
            Template(
                FrameType.LOGIN,
                lambda: pb.LoginRequest(
                    username=NAMES["decoy"], password=PASSWORD, protocol_version=2
                ),
            ),
            Template(
                FrameType.LOGIN, lambda: pb.LoginRequest(username=NAMES["decoy"], password=PASSWORD)
            ),
            *common,
            message(pb.Message.MESSAGE, msg="hi"),
        ]
    transfer = 7
    return [
        Template(
            FrameType.LOGIN,
            lambda: pb.LoginRequest(username=NAMES[kind], password=PASSWORD, protocol_version=2),
        ),
        *common,
        Template(FrameType.LIST_USER, lambda: pb.ListUserRequest(query="fz", limit=5)),
        Template(FrameType.LIST_BUDDY, pb.ListBuddyRequest),
        Template(FrameType.ADD_BUDDY, lambda: pb.AddBuddyRequest(uid=cast.decoy)),
        Template(FrameType.REMOVE_BUDDY, lambda: pb.RemoveBuddyRequest(uid=cast.decoy)),
        Template(FrameType.ACK, lambda: pb.Ack(seq=1)),
        Template(FrameType.SYNC, lambda: pb.Sync(since_seq=0)),
        message(pb.Message.MESSAGE, msg="hello"),
        message(pb.Message.FILE, msg="f.txt", data=b"abc"),
        message(pb.Message.INPUTING),
        message(pb.Message.GRAPHICS, msg="1,1,5,5"),
        message(
            pb.Message.FILE_OFFER,
            msg="f.bin",
            file=pb.FileInfo(transfer_id=transfer, size=1000, sha256=bytes(32)),
        ),
        message(pb.Message.FILE_ACCEPT, file=pb.FileInfo(transfer_id=transfer, offset=10)),
        message(pb.Message.FILE_CHUNK, data=b"x" * 64, file=pb.FileInfo(transfer_id=transfer)),
        message(pb.Message.FILE_PROGRESS, file=pb.FileInfo(transfer_id=transfer, offset=64)),
        message(pb.Message.FILE_DECLINE, file=pb.FileInfo(transfer_id=transfer)),
        message(pb.Message.FILE_CANCEL, file=pb.FileInfo(transfer_id=transfer)),
    ]


def extreme_batches(kind: str, cast: Cast) -> Iterator[list[bytes]]:
    """Every integer field of every template at every extreme value: one batch of frames per
    (template, field), each frame alone when the template ends its connection. Before login
    only what the relay accepts there (LOGIN, REGISTER, PING, RESET) is swept."""
    for template in templates(kind, cast):
        if kind == "before-login" and not TYPE_TABLE[template.frame_type].allowed_before_login:
            continue
        descriptor = template.build().DESCRIPTOR
        for encode in integer_fields(descriptor):
            frames = [
                frame(template.frame_type, template.payload() + encode(value)) for value in EXTREMES
            ]
            if template.closes_connection():
                yield from ([f] for f in frames)
            else:
                yield frames


# -- hypothesis strategies ----------------------------------------------------------------


def _integers(cast: Cast) -> st.SearchStrategy[int]:
    # Half extremes: hypothesis's own integers rarely go past 2^63.
    extreme = st.sampled_from(DRAWN_EXTREMES)
    return st.one_of(
        extreme,
        extreme,
        extreme,
        st.sampled_from(cast.uids()),
        st.integers(0, 300),
        st.integers(0, 2**64 - 1),
    )


def _strings() -> st.SearchStrategy[bytes]:
    # Not the names the module logs in with: wrong passwords for them would throttle those
    # accounts (the decoy's logins may fail, nothing depends on them).
    known = [NAMES["decoy"], "fz-new", PASSWORD, "fz", "1,1,5,5", "clear"]
    return st.one_of(
        st.sampled_from(known).map(str.encode),
        st.text(max_size=24).map(lambda s: s.encode("utf-8")),
        st.binary(max_size=16),
    )  # mostly invalid UTF-8: a string field refuses it


@st.composite
def _odd_field(draw: st.DrawFn) -> bytes:
    """A field the schema does not have, or has with another wire type; wire types 3, 4, 6
    and 7 (groups, invalid) must be refused, not crash."""
    number = draw(st.one_of(st.integers(1, 12), st.integers(1, 2**29 - 1)))
    wire_type = draw(st.integers(0, 7))
    if wire_type == 0:
        body = encode_varint(draw(st.sampled_from(EXTREMES)))
    elif wire_type == 1:
        body = draw(st.binary(min_size=8, max_size=8))
    elif wire_type == 2:
        body = encode_varint(draw(st.integers(0, 40))) + draw(st.binary(max_size=40))
    elif wire_type == 5:
        body = draw(st.binary(min_size=4, max_size=4))
    else:
        body = draw(st.binary(max_size=8))
    return key(number, wire_type) + body


@st.composite
def encoded_message(
    draw: st.DrawFn, descriptor: MessageDescriptor, cast: Cast, depth: int = 0
) -> bytes:
    """A message of ``descriptor`` encoded by hand: any subset of its fields, repeated ones
    up to three times, integers anywhere in [0, 2^64), sometimes an odd extra field."""
    out = bytearray()
    for fd in descriptor.fields:
        if not draw(st.booleans()):
            continue
        for _ in range(draw(st.integers(1, 3)) if fd.is_repeated else 1):
            if fd.type in _VARINT_TYPES:
                out += key(fd.number, 0) + encode_varint(draw(_integers(cast)))
            elif fd.type == FieldDescriptor.TYPE_STRING:
                out += delimited(fd.number, draw(_strings()))
            elif fd.type == FieldDescriptor.TYPE_BYTES:
                out += delimited(fd.number, draw(st.binary(max_size=64)))
            elif fd.type == FieldDescriptor.TYPE_MESSAGE and depth < 2:
                assert fd.message_type is not None
                out += delimited(fd.number, draw(encoded_message(fd.message_type, cast, depth + 1)))
    if draw(st.integers(0, 4)) == 0:
        out += draw(_odd_field())
    return bytes(out)


@st.composite
def generated_frame(draw: st.DrawFn, cast: Cast) -> bytes:
    """A frame of any type code (every FrameType and unknown codes) whose payload is a
    message of either direction's class for that type, or raw bytes where there is none."""
    known = st.sampled_from(list(FrameType))
    code = draw(st.one_of(known, known, known, st.integers(0, 255)))
    info = TYPE_TABLE.get(code)
    classes = [c for c in (info.to_relay, info.to_client) if c is not None] if info else []
    if classes:
        cls = draw(st.sampled_from(classes))
        return frame(code, draw(encoded_message(cls.DESCRIPTOR, cast)))
    return frame(code, draw(st.binary(max_size=64)))


@st.composite
def template_frame(draw: st.DrawFn, kind: str, cast: Cast) -> bytes:
    """A valid frame (each frame type equally likely), often with some integer fields
    overridden by extreme values."""
    choices = templates(kind, cast)
    frame_type = draw(st.sampled_from(sorted({t.frame_type for t in choices})))
    template = draw(st.sampled_from([t for t in choices if t.frame_type == frame_type]))
    payload = template.payload()
    if draw(st.integers(0, 3)):
        for encode in integer_fields(template.build().DESCRIPTOR):
            if draw(st.booleans()):
                payload += encode(draw(st.sampled_from(DRAWN_EXTREMES)))
    return frame(template.frame_type, payload)


@st.composite
def oversized_frame(draw: st.DrawFn, kind: str, cast: Cast) -> bytes:
    """A valid frame padded (unknown bytes field 15) past the limits: 4 KiB before login,
    64 KiB of text, 256 KiB read budget, 1 MiB."""
    template = draw(st.sampled_from(templates(kind, cast)))
    size = draw(st.sampled_from([4091, 4096, 65_537, 262_145, 1_048_577]))
    # 0xa5 padding: if an edit exposes it as frame headers, they declare 2.7 GiB.
    return frame(template.frame_type, template.payload() + delimited(15, b"\xa5" * size))


@st.composite
def header_lie(draw: st.DrawFn) -> bytes:
    """A header declaring a length the bytes after it do not have (up to 2^32-1)."""
    declared = draw(st.sampled_from([4097, 65_536, 4 * 2**20, 4 * 2**20 + 1, 2**31, 2**32 - 1]))
    return _HEADER.pack(declared, draw(st.integers(0, 255))) + draw(st.binary(max_size=32))


@st.composite
def mutated(draw: st.DrawFn, stream: bytes) -> bytes:
    """``stream`` with up to four edits: bit flips, a rewritten length, truncation, inserted
    or deleted bytes."""
    data = bytearray(stream)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "flip", "length", "truncate", "insert", "delete"]))
        if edit == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "length" and len(data) >= 4:
            data[0:4] = struct.pack(
                ">I",
                draw(st.one_of(st.integers(0, len(data) + 8), st.sampled_from([2**31, 2**32 - 1]))),
            )
        elif edit == "truncate":
            del data[at:]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@st.composite
def fuzz_stream(draw: st.DrawFn, kind: str, cast: Cast) -> bytes:
    """Half the streams are well-framed valid requests with extreme integers (deep paths:
    store, dedup, delivery); the other half is structural chaos (any type code, either
    direction's classes, garbage, oversized frames, header lies) and is often mutated."""
    valid = template_frame(kind, cast)
    if draw(st.booleans()):
        return b"".join(draw(st.lists(valid, min_size=1, max_size=4)))
    generated = generated_frame(cast)
    piece = st.one_of(
        generated,
        generated,
        valid,
        st.builds(frame, st.integers(0, 255), st.binary(max_size=64)),
        oversized_frame(kind, cast),
        header_lie(),
    )
    stream = b"".join(draw(st.lists(piece, min_size=1, max_size=3)))
    if draw(st.booleans()):
        stream = draw(mutated(stream))
    return stream


# -- clients ------------------------------------------------------------------------------


class RelayHung(AssertionError):
    """The relay neither answered nor closed within IO_TIMEOUT."""


@dataclass
class Outcome:
    """What one connection saw: whether the relay closed it, and any internal-error Reset."""

    closed: bool = False
    internal_errors: list[str] = field(default_factory=list)


class FuzzClient:
    """A raw TLS connection that can send any bytes and never waits without a deadline."""

    _nonces = itertools.count(PING_NONCE_BASE)

    def __init__(self, relay: RelayProcess, source: str = "127.0.0.1") -> None:
        raw = socket.create_connection(
            (relay.host, relay.port), timeout=IO_TIMEOUT, source_address=(source, 0)
        )
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(raw, server_hostname=relay.host)
        self.decoder = FrameDecoder(max_frame=64 * 2**20)
        self.frames: list[tuple[int, bytes]] = []
        self.outcome = Outcome()
        self.uid = 0
        greeting = self.next_frame(time.monotonic() + IO_TIMEOUT)
        assert greeting is not None and greeting[0] == FrameType.RAW, "no greeting"

    def next_frame(self, deadline: float) -> tuple[int, bytes] | None:
        """The next frame, or None once the relay has closed (a Reset is noted on the way)."""
        while not self.frames:
            if self.outcome.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RelayHung(f"the relay neither answered nor closed in {IO_TIMEOUT:g} s")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(262_144)
            except TimeoutError:
                continue
            except OSError:  # ssl.SSLError included: a reset connection is a closed one
                data = b""
            if not data:
                self.outcome.closed = True
                return None
            self.frames.extend(self.decoder.feed(data))
        frame_type, payload = self.frames.pop(0)
        if frame_type == FrameType.RESET:
            reset = pb.Reset.FromString(payload)
            if reset.code == pb.Reset.UNKNOWN_ERROR:
                self.outcome.internal_errors.append(reset.msg)
        return frame_type, payload

    def login(self, name: str, version: int) -> pb.ListBuddyResponse:
        self.sock.sendall(
            encode_frame(
                FrameType.LOGIN,
                pb.LoginRequest(username=name, password=PASSWORD, protocol_version=version),
            )
        )
        deadline = time.monotonic() + IO_TIMEOUT
        while (got := self.next_frame(deadline)) is not None:
            if got[0] == FrameType.LOGIN:
                response = pb.LoginResponse.FromString(got[1])
                assert response.code == pb.LoginResponse.SUCCESS, f"{name}: {response}"
                self.uid = response.uid
            elif got[0] == FrameType.LIST_BUDDY and self.uid:
                return pb.ListBuddyResponse.FromString(got[1])
        raise ConnectionError(f"relay closed the connection while {name} logged in")

    def deliver(self, stream: bytes) -> Outcome:
        """Send ``stream``; return once the relay has handled all of it (see the module
        docstring) or closed the connection."""
        complete, end = split_complete(stream)
        owed = sum(1 for frame_type, _ in complete if frame_type in _ANSWERED_REQUESTS)
        nonce = next(self._nonces)
        deadline = time.monotonic() + IO_TIMEOUT
        try:
            self.sock.sendall(stream[:end] + encode_frame(FrameType.PING, pb.Ping(nonce=nonce)))
        except TimeoutError as exc:
            raise RelayHung("the relay stopped reading mid-stream") from exc
        except OSError:
            pass  # closed under us: what it sent before is still read below
        echoed, answered = False, 0
        while not (echoed and answered >= owed):
            got = self.next_frame(deadline)
            if got is None:
                return self.outcome
            if got[0] == FrameType.PING:
                echoed = echoed or pb.Ping.FromString(got[1]).nonce == nonce
            elif got[0] in _ANSWERED_REQUESTS:
                answered += 1
        if end < len(stream):
            self._send_incomplete_then_eof(stream[end:], deadline)
        return self.outcome

    def _send_incomplete_then_eof(self, tail: bytes, deadline: float) -> None:
        try:
            self.sock.sendall(tail)
            self.sock.shutdown(socket.SHUT_WR)  # plain TCP FIN, no close_notify: EOF mid-frame
        except OSError:
            self.outcome.closed = True
            return
        while True:  # raw (still encrypted) bytes now: only the close matters
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RelayHung("the relay kept a connection open after EOF mid-frame")
            self.sock.settimeout(remaining)
            try:
                if not self.sock.recv(65_536):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        self.outcome.closed = True

    def drain(self) -> bool:
        """Read and drop the frames that have arrived, without waiting; False once closed."""
        self.sock.setblocking(False)
        try:
            while data := self.sock.recv(262_144):
                self.decoder.feed(data)
            return False
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        except OSError:
            return False
        finally:
            self.frames.clear()
            self.sock.settimeout(IO_TIMEOUT)

    def close(self) -> None:
        self.sock.close()


class Bystanders:
    """Two logged-in v2 buddies; :meth:`exchange` proves the relay still serves them."""

    # Shared by every pair the module logs in: a reused id would be answered from the dedup
    # window and never delivered.
    _ids = itertools.count(1)

    def __init__(self, relay: RelayProcess) -> None:
        self.a = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        self.b = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        for client, name in ((self.a, NAMES["a"]), (self.b, NAMES["b"])):
            login = client.login(name, PASSWORD, version=2)
            assert login.code == pb.LoginResponse.SUCCESS, login

    def exchange(self) -> None:
        for sender, receiver in ((self.a, self.b), (self.b, self.a)):
            msg_id = next(self._ids)
            sender.send_text(receiver.uid, f"still here {msg_id}", msg_id=msg_id)
            while True:  # after a restart the backlog may replay what was not yet acked
                got = receiver.next_message(timeout=IO_TIMEOUT)
                receiver.send(FrameType.ACK, pb.Ack(seq=got.seq))
                if got.msg == f"still here {msg_id}":
                    break

    def close(self) -> None:
        self.a.close()
        self.b.close()


# -- the relay under test ---------------------------------------------------------------


class FuzzTarget:
    """The module's relay, its accounts, the online peer and the bystanders."""

    def __init__(self, relay: RelayProcess) -> None:
        self.relay = relay
        self.sources = itertools.cycle(PRELOGIN_SOURCES)
        self.seen_lines = 0
        self.relay.start()
        self.cast = self._register_accounts()
        self.peer = self._connect_peer()
        self.bystanders = Bystanders(relay)

    def _register_accounts(self) -> Cast:
        uids: dict[str, int] = {}
        for role, name in NAMES.items():
            client = WireClient(
                self.relay.host, self.relay.port, fingerprint=self.relay.fingerprint
            )
            registered = client.register(name, PASSWORD)
            assert registered.code == pb.RegisterResponse.SUCCESS, registered
            uids[role] = registered.uid
            client.close()
        cast = Cast(**uids)
        clients = {}
        for role in ("peer", "v1", "v2", "a", "b"):
            clients[role] = WireClient(
                self.relay.host, self.relay.port, fingerprint=self.relay.fingerprint
            )
            clients[role].login(NAMES[role], PASSWORD)
        make_buddies(clients["v1"], clients["peer"])
        make_buddies(clients["v2"], clients["peer"])
        make_buddies(clients["a"], clients["b"])
        for client in clients.values():
            client.close()
        return cast

    def _connect_peer(self) -> FuzzClient:
        """``fz-peer``, online as v1 (no idle timeout): durable and ephemeral messages to it
        are pushed, not only stored. Drained after every example."""
        peer = FuzzClient(self.relay)
        peer.login(NAMES["peer"], version=1)
        return peer

    def open_session(self, kind: str) -> FuzzClient:
        if kind == "before-login":
            return FuzzClient(self.relay, next(self.sources))
        client = FuzzClient(self.relay)
        buddies = client.login(NAMES[kind], version=1 if kind == "v1" else 2)
        if not any(u.uid == self.cast.peer and u.relation == pb.User.BUDDY for u in buddies.users):
            # A fuzzed REMOVE_BUDDY hit the peer's uid: make them buddies again.
            client.deliver(
                encode_frame(FrameType.ADD_BUDDY, pb.AddBuddyRequest(uid=self.cast.peer))
            )
            self.peer.deliver(encode_frame(FrameType.ADD_BUDDY, pb.AddBuddyRequest(uid=client.uid)))
        return client

    def failure_of(self, kind: str, stream: bytes) -> str | None:
        """Run one example; a description of what went wrong, or None."""
        problem = None
        outcome = Outcome()
        try:
            client = self.open_session(kind)
        except (OSError, AssertionError, ProtocolError) as exc:
            problem = f"could not open a {kind} session: {exc!r}"
        else:
            try:
                outcome = client.deliver(stream)
            except RelayHung as exc:
                problem = str(exc)
            except ProtocolError as exc:
                problem = f"the relay sent bytes that do not frame: {exc}"
            finally:
                client.close()
        crash = self._crash()
        if crash is None and not self.peer.drain():
            self.peer.close()
            try:
                self.peer = self._connect_peer()
            except (OSError, AssertionError) as exc:
                crash = self._crash(grace=IO_TIMEOUT) or f"the peer cannot log in: {exc!r}"
        problem = crash or problem or self._bystanders_stalled()
        problem = problem or self._tracebacks(expect_one=bool(outcome.internal_errors))
        if problem is None:
            return None
        return f"{problem}\n  after this stream, sent by a {kind} client: {describe(stream)}"

    def _crash(self, grace: float = 0.0) -> str | None:
        """None if the relay is running (after ``grace`` seconds to finish dying, when a
        client already saw it go); otherwise restart it and describe how it died."""
        process = self.relay.process
        assert process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
        if process.poll() is None:
            return None
        with contextlib.suppress(AssertionError):
            self.relay.wait_for_log(r"\n\w[\w.]*(Error|Exception)\b", timeout=5)
        report = f"the relay process died:\n{self._new_log_excerpt()}"
        self.restart()
        return report

    def restart(self) -> None:
        self.bystanders.close()
        self.peer.close()
        self.relay.restart()
        self.seen_lines = len(self.relay.log_lines)
        self.peer = self._connect_peer()
        self.bystanders = Bystanders(self.relay)

    def _bystanders_stalled(self) -> str | None:
        try:
            self.bystanders.exchange()
        except (AssertionError, OSError) as exc:
            crashed = self._crash(grace=5.0)
            if crashed:
                return crashed
            problem = f"the bystanders stopped chatting: {exc!r}"
            self.bystanders.close()
            try:
                self.bystanders = Bystanders(self.relay)
            except (AssertionError, OSError) as again:
                problem += f"; and could not log in again: {again!r}"
            return problem
        return None

    def _tracebacks(self, expect_one: bool) -> str | None:
        if expect_one:  # the Reset may overtake the log line on its way to the harness
            with contextlib.suppress(AssertionError):
                self.relay.wait_for_log(r"Traceback[\s\S]*\n\w[\w.]*(Error|Exception)\b", timeout=5)
        lines = self.relay.log_lines[self.seen_lines :]
        if any("Traceback" in line for line in lines):
            return f"the relay logged an internal error:\n{self._new_log_excerpt()}"
        self.seen_lines += len(lines)
        if expect_one:
            return "the relay sent Reset UNKNOWN_ERROR (an internal error)"
        return None

    def _new_log_excerpt(self) -> str:
        lines = self.relay.log_lines[self.seen_lines :]
        self.seen_lines += len(lines)
        start = next(
            (i for i, line in enumerate(lines) if "Traceback" in line), max(0, len(lines) - 30)
        )
        return "\n".join("    " + line for line in lines[start : start + 40])

    def assert_healthy(self) -> None:
        """Alive, no traceback since the last example, and well-formed v1 and v2 logins work."""
        process = self.relay.process
        assert process is not None and process.poll() is None, "the relay is not running"
        for version in (1, 2):
            client = WireClient(
                self.relay.host, self.relay.port, fingerprint=self.relay.fingerprint
            )
            login = client.login(NAMES[f"v{version}"], PASSWORD, version=version)
            client.close()
            assert login.code == pb.LoginResponse.SUCCESS, login
        problem = self._tracebacks(expect_one=False)  # anything logged since the last example
        assert problem is None, problem

    def stop(self) -> None:
        self.peer.close()
        self.bystanders.close()
        self.relay.stop()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    fuzz = FuzzTarget(RelayProcess(tmp_path_factory.mktemp("fuzz-relay")))
    yield fuzz
    fuzz.stop()


# -- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_integer_field_at_every_extreme_leaves_the_relay_serving(
    target: FuzzTarget, kind: str
) -> None:
    failures = []
    for batch in extreme_batches(kind, target.cast):
        problem = target.failure_of(kind, b"".join(batch))
        if problem is not None and len(batch) > 1:  # which frame(s) of the batch?
            alone = [p for p in (target.failure_of(kind, f) for f in batch) if p is not None]
            failures.extend(alone or [problem])
        elif problem is not None:
            failures.append(problem)
    assert not failures, f"{len(failures)} failing frame(s):\n\n" + "\n\n".join(failures)
    target.assert_healthy()


@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_frames_leave_the_relay_serving(target: FuzzTarget, kind: str) -> None:
    @settings(
        max_examples=EXAMPLES[kind],
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(stream=fuzz_stream(kind, target.cast))
    def one_stream(stream: bytes) -> None:
        problem = target.failure_of(kind, stream)
        assert problem is None, problem

    one_stream()
    target.assert_healthy()
