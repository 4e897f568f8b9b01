"""Opening a logged-in v2 connection, and registering an account.

Invariants:
- Nothing is sent before :func:`tui.client.connection.open_connection` has authenticated the
  relay.
- A resume token is tried first when we have one; TOKEN_INVALID falls back to the password
  on the same connection when the password is known, or, on the relay's Unix socket, to a
  local login (empty password, no token: the relay logs in the peer's Unix account).
- A ``device`` name or ``send_only`` makes the login a v2.1 one (PROTOCOL.md section 9):
  the device's own inbox, or none at all; without either it is the plain v2 login of the
  device ``""``. A device name is checked (:func:`check_device`) before anything is sent.
- Errors are split by what retrying can fix: :class:`LoginFailed` and
  :class:`~tui.client.trust.TrustError` are fatal (the user must act); ``OSError``,
  ``TimeoutError``, :class:`LoginRateLimited` and :class:`RelayReset` (other than KICKED)
  are transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from google.protobuf.descriptor import EnumDescriptor

from protocol import FrameType
from protocol import chat_pb2 as pb
from tui.client.connection import (
    CLIENT_MAX_FRAME,
    Endpoint,
    FrameConnection,
    open_connection,
)
from tui.client.trust import TrustPolicy

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2
MAX_DEVICE_LENGTH = 64  # PROTOCOL.md section 9: at most 64 printable characters
CLIENT_RESET_LEAVING = pb.Reset(code=pb.Reset.UNKNOWN_ERROR, msg="client leaving")


class SessionError(Exception):
    """Base of the client's own errors."""


class LoginFailed(SessionError):
    """Wrong password, unknown user, or a relay without v2: the user must act."""

    def __init__(self, message: str, code: int = -1) -> None:
        super().__init__(message)
        self.code = code


class LoginRateLimited(SessionError):
    """The relay throttles our login attempts; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"login rate limited; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


class RegisterFailed(SessionError):
    """RegisterResponse with a code other than SUCCESS."""

    def __init__(self, code: int) -> None:
        self.code = code
        name = _code_name(pb.RegisterResponse.Code.DESCRIPTOR, code)
        super().__init__(_REGISTER_TEXT.get(code, f"registration refused ({name})"))


def _code_name(descriptor: EnumDescriptor, code: int) -> str:
    value = descriptor.values_by_number.get(code)
    return value.name if value is not None else str(code)


_REGISTER_TEXT: dict[int, str] = {
    pb.RegisterResponse.USER_EXISTS: "that username is taken",
    pb.RegisterResponse.INVALID_USERNAME: "invalid username (1-32 letters, digits, _ - .)",
    pb.RegisterResponse.INVALID_PASSWORD: "invalid password",
    pb.RegisterResponse.REGISTRATION_CLOSED: "registration is closed on this relay",
    pb.RegisterResponse.RATE_LIMITED: "too many registrations; try again later",
}


class RelayReset(SessionError):
    """The relay sent Reset (and closes). KICKED means another login took over."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        name = _code_name(pb.Reset.Code.DESCRIPTOR, code)
        super().__init__(f"relay reset the connection: {name} {reason}".rstrip())


def check_device(device: str) -> str:
    """``device`` if it is a valid device name (at most 64 printable characters; "" is the
    device of plain v2 and v1 logins), else ``ValueError``."""
    if len(device) > MAX_DEVICE_LENGTH:
        raise ValueError(f"device name longer than {MAX_DEVICE_LENGTH} characters")
    if not device.isprintable():
        raise ValueError("device name with control or other unprintable characters")
    return device


@dataclass(frozen=True)
class LoginResult:
    connection: FrameConnection
    uid: int
    token: str
    head_seq: int
    greeting: str | None
    used_token: bool


async def _await_response(
    conn: FrameConnection, want: FrameType, greeting: list[str]
) -> pb.LoginResponse | pb.RegisterResponse:
    """Read frames until the ``want`` response; RAW greeting recorded, Pings skipped."""
    while True:
        frame_type, message = await conn.receive()
        if frame_type is FrameType.RAW and isinstance(message, str):
            greeting.append(message)
        elif frame_type is FrameType.RESET and isinstance(message, pb.Reset):
            raise RelayReset(message.code, message.msg)
        elif frame_type is want and isinstance(message, pb.LoginResponse | pb.RegisterResponse):
            return message
        elif frame_type is not FrameType.PING:
            log.warning("ignoring %s before login completed", frame_type.name)


async def login(
    endpoint: Endpoint,
    policy: TrustPolicy,
    username: str,
    *,
    password: str | None,
    token: str | None,
    since_seq: int,
    device: str = "",
    send_only: bool = False,
    connect_timeout: float = 15.0,
    login_timeout: float = 30.0,
    max_frame: int = CLIENT_MAX_FRAME,
) -> LoginResult:
    """Connect and log in with protocol v2 (v2.1 with a ``device`` or ``send_only``).
    Frames after the LoginResponse (the backlog) stay queued in the returned connection."""
    if password is None and not token and not endpoint.is_local:
        raise LoginFailed("no password and no resume token to log in with")
    try:
        check_device(device)
    except ValueError as exc:
        raise LoginFailed(f"invalid device name: {exc}") from None
    conn = await open_connection(endpoint, policy, timeout=connect_timeout, max_frame=max_frame)
    greeting: list[str] = []
    try:
        async with asyncio.timeout(login_timeout):
            attempts: list[tuple[str | None, str | None]] = []
            if token:
                attempts.append((None, token))
            if password is not None:
                attempts.append((password, None))
            elif endpoint.is_local:
                attempts.append(("", None))  # local login: the peer's Unix account
            response: pb.LoginResponse | None = None
            used_token = False
            for pw, tok in attempts:
                conn.send(
                    FrameType.LOGIN,
                    pb.LoginRequest(
                        username=username,
                        password=pw or "",
                        token=tok or "",
                        protocol_version=PROTOCOL_VERSION,
                        since_seq=since_seq,
                        device=device,
                        send_only=send_only,
                    ),
                )
                await conn.drain()
                reply = await _await_response(conn, FrameType.LOGIN, greeting)
                assert isinstance(reply, pb.LoginResponse)
                response, used_token = reply, tok is not None
                if reply.code != pb.LoginResponse.TOKEN_INVALID:
                    break
            assert response is not None
    except BaseException:
        await conn.close()
        raise
    code = response.code
    if code == pb.LoginResponse.SUCCESS:
        if response.protocol_version < PROTOCOL_VERSION:
            await conn.close(CLIENT_RESET_LEAVING)
            raise LoginFailed(
                f"relay {endpoint} speaks protocol v{response.protocol_version or 1} only; "
                "this client needs v2"
            )
        return LoginResult(
            conn,
            response.uid,
            response.token,
            response.head_seq,
            greeting[0] if greeting else None,
            used_token,
        )
    reason = ""
    if endpoint.is_local and code == pb.LoginResponse.USER_NOT_FOUND:
        reason = await _refusal_reason(conn)
    await conn.close(CLIENT_RESET_LEAVING)
    if reason:
        raise LoginFailed(f"local login refused: {reason}", code)
    if code == pb.LoginResponse.RATE_LIMITED:
        raise LoginRateLimited(max(response.retry_after_ms, 1000) / 1000)
    texts = {
        pb.LoginResponse.USER_NOT_FOUND: f"no user {username!r} on relay {endpoint}",
        pb.LoginResponse.PASSWORD_ERROR: "wrong password",
        pb.LoginResponse.TOKEN_INVALID: "resume token no longer valid; log in with the password",
    }
    raise LoginFailed(texts.get(code, f"login refused (code {code})"), code)


async def _refusal_reason(conn: FrameConnection, timeout: float = 5.0) -> str:
    """The message of the Reset a relay sends after refusing a local login ("" if none)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            while True:
                frame_type, message = await conn.receive()
                if frame_type is FrameType.RESET and isinstance(message, pb.Reset):
                    return message.msg
    return ""


async def register_account(
    endpoint: Endpoint,
    policy: TrustPolicy,
    username: str,
    password: str,
    *,
    timeout: float = 30.0,
) -> int:
    """Create an account on a fresh connection; returns the new uid or raises
    :class:`RegisterFailed` (and the transport/trust errors of ``open_connection``)."""
    conn = await open_connection(endpoint, policy, timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            conn.send(FrameType.REGISTER, pb.RegisterRequest(username=username, password=password))
            await conn.drain()
            reply = await _await_response(conn, FrameType.REGISTER, [])
    finally:
        with contextlib.suppress(Exception):
            await conn.close(CLIENT_RESET_LEAVING)
    assert isinstance(reply, pb.RegisterResponse)
    if reply.code != pb.RegisterResponse.SUCCESS:
        raise RegisterFailed(reply.code)
    return reply.uid
