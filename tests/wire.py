"""A minimal blocking client for black-box relay tests: real sockets, real TLS, real frames.

Deliberately not the client library: these tests check the relay against PROTOCOL.md with
hand-built frames, so a bug shared by both sides cannot hide.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from certs import fingerprint_of_der
from protocol import Direction, FrameDecoder, decode_payload, encode_frame
from protocol import chat_pb2 as pb
from protocol.types import FrameType

M = TypeVar("M", bound=ProtoMessage)


class WireClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = True,
        timeout: float = 10.0,
        fingerprint: str | None = None,
        read_greeting: bool = True,
        source_address: str | None = None,
        unix_path: str | None = None,
    ) -> None:
        """``source_address``: the local address to connect from (e.g. 127.0.0.2: the relay
        sees another peer address; all of 127.0.0.0/8 is loopback on Linux). ``unix_path``:
        connect to the relay's Unix socket there instead (no TLS; host and port unused)."""
        if unix_path is not None:
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            raw.settimeout(timeout)
            raw.connect(unix_path)
            tls = False
        else:
            source = None if source_address is None else (source_address, 0)
            raw = socket.create_connection((host, port), timeout=timeout, source_address=source)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = raw
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(raw, server_hostname=host)
            der = self.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
            assert der is not None
            if fingerprint is not None:
                assert fingerprint_of_der(der) == fingerprint, "relay certificate not pinned"
        self.timeout = timeout
        self.decoder = FrameDecoder(max_frame=64 * 1024 * 1024)
        self.frames: list[tuple[int, bytes]] = []
        self.greeting = ""
        self.uid = 0
        self.token = ""
        self.login_buddies = pb.ListBuddyResponse()
        if read_greeting:
            frame_type, payload = self.recv_frame()
            assert frame_type == FrameType.RAW
            self.greeting = payload.decode()

    @classmethod
    def over_unix(cls, path: str, timeout: float = 10.0) -> WireClient:
        """A client on the relay's Unix socket at ``path``."""
        return cls("", 0, tls=False, timeout=timeout, unix_path=path)

    # raw frames ---------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, frame_type: int, message: ProtoMessage | bytes) -> None:
        self.sock.sendall(encode_frame(frame_type, message))

    def recv_frame(self, timeout: float | None = None) -> tuple[int, bytes]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the relay")
            self.sock.settimeout(remaining)
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("relay closed the connection")
            self.frames.extend(self.decoder.feed(data))
        frame = self.frames.pop(0)
        return frame[0], frame[1]

    def recv(self, timeout: float | None = None) -> tuple[int, Any]:
        frame_type, payload = self.recv_frame(timeout)
        return frame_type, decode_payload(frame_type, payload, Direction.TO_CLIENT)

    def expect(
        self,
        frame_type: int,
        cls: type[M],
        timeout: float | None = None,
        skip: tuple[int, ...] = (FrameType.LIST_BUDDY, FrameType.SYNC),
    ) -> M:
        """Next frame of ``frame_type``, skipping pushes of the types in ``skip``."""
        while True:
            got_type, message = self.recv(timeout)
            if got_type == frame_type and isinstance(message, cls):
                return message
            if got_type not in skip:
                raise AssertionError(
                    f"expected {FrameType(frame_type).name}, got "
                    f"{FrameType(got_type).name}: {message}"
                )

    def expect_closed(self, timeout: float = 10.0) -> pb.Reset | None:
        """Read until the relay closes; return the Reset it sent (if any)."""
        reset = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame_type, message = self.recv(deadline - time.monotonic())
            except (ConnectionError, ssl.SSLError, OSError):
                return reset
            if frame_type == FrameType.RESET:
                reset = message
        raise AssertionError("relay did not close the connection")

    # operations ---------------------------------------------------------------------------
    def register(self, username: str, password: str = "pw") -> pb.RegisterResponse:
        self.send(FrameType.REGISTER, pb.RegisterRequest(username=username, password=password))
        return self.expect(FrameType.REGISTER, pb.RegisterResponse)

    def login(
        self,
        username: str,
        password: str = "pw",
        version: int = 1,
        token: str = "",
        since_seq: int = 0,
        device: str = "",
        send_only: bool = False,
    ) -> pb.LoginResponse:
        self.send(
            FrameType.LOGIN,
            pb.LoginRequest(
                username=username,
                password=password,
                protocol_version=version,
                token=token,
                since_seq=since_seq,
                device=device,
                send_only=send_only,
            ),
        )
        response = self.expect(FrameType.LOGIN, pb.LoginResponse)
        if response.code == pb.LoginResponse.SUCCESS:
            self.uid = response.uid
            self.token = response.token
            # The relay pushes the user's own buddy list right after a successful login.
            self.login_buddies = self.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=())
        return response

    def add_buddy(self, uid: int) -> int:
        self.send(FrameType.ADD_BUDDY, pb.AddBuddyRequest(uid=uid))
        return self.expect(FrameType.ADD_BUDDY, pb.AddBuddyResponse).code

    def buddies(self) -> pb.ListBuddyResponse:
        self.send(FrameType.LIST_BUDDY, pb.ListBuddyRequest())
        return self.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=())

    def round_trip(self) -> None:
        """A request only ever answered, never pushed: everything sent before it is processed
        (and committed) once its response arrives."""
        self.send(FrameType.LIST_USER, pb.ListUserRequest(limit=1))
        self.expect(
            FrameType.LIST_USER,
            pb.ListUserResponse,
            skip=(FrameType.LIST_BUDDY, FrameType.SYNC, FrameType.ACK, FrameType.MESSAGE),
        )

    def send_text(self, to: int, text: str, msg_id: int = 0) -> None:
        self.send(
            FrameType.MESSAGE, pb.Message(uid=to, type=pb.Message.MESSAGE, msg=text, id=msg_id)
        )

    def next_message(self, timeout: float | None = None) -> pb.Message:
        return self.expect(
            FrameType.MESSAGE,
            pb.Message,
            timeout,
            skip=(FrameType.LIST_BUDDY, FrameType.SYNC, FrameType.ACK),
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def make_buddies(a: WireClient, b: WireClient) -> None:
    assert a.add_buddy(b.uid) == pb.AddBuddyResponse.PENDING
    assert b.add_buddy(a.uid) == pb.AddBuddyResponse.SUCCESS
