"""REGISTER and LOGIN (PROTOCOL.md section 5).

Invariants:
- scrypt (hashing and verifying) runs on the hash worker; the callback re-checks that the
  connection is still open before touching the session.
- A valid resume token (v2) logs in before any throttle is asked: it costs one SHA-256 and
  one indexed lookup, never scrypt, and guessing someone's password never locks its owner's
  tokens out.
- Password logins are throttled per account at the peer's address and per address
  (:class:`relay.auth.LoginThrottle`) *before* any hashing, and an attempt counts as failed
  from the moment its check is queued, so concurrent guesses get no more checks than
  sequential ones. At most ``max_pending_hashes`` password jobs are in the hash worker at
  once; beyond that a password login waits in the worker's FIFO (at most
  ``max_waiting_logins``, then it is refused), so a storm of logins (every client of a
  restarted relay at once) is served in turn without any client retrying, and the loop
  stays free for everyone else. A login whose check waits or runs is not timed out for
  taking longer than ``login_timeout``. Registrations do not wait: refused at the bound.
- Refusals use only codes the client's protocol knows: LoginResponse RATE_LIMITED is v2, so
  a throttled v1 login gets PASSWORD_ERROR (the original's "login failed").
- Registrations are limited per peer address (``registrations_per_address_per_minute``),
  counted when they reach hashing: a refused name or password costs nothing and counts not.
- Local login (PROTOCOL.md section 11): on the Unix socket, a LOGIN with an empty password
  and no token is the account bound to the peer's Unix uid (kernel credentials, never the
  request's username), created on first use with the Unix login name when
  ``local_accounts`` allows. A name that is not a valid username, or that a network account
  holds, is refused: LoginResponse USER_NOT_FOUND, then a Reset UNKNOWN_ERROR saying why
  and, for a clash, which admin command links them. Anywhere else an empty password is an
  ordinary (failing) password login.
- One live session per (user, device) (PROTOCOL.md section 9; v1 and plain v2 logins are
  the device ``""``): a successful login kicks the previous session of that device (Reset
  KICKED) without announcing the user offline in between; sessions of other devices stay.
  A ``send_only`` session has no device: it never kicks and is never kicked. The device and
  ``send_only`` fields count only in v2 logins (a v1 peer cannot mean them); a device name
  that is not at most 64 printable characters is a protocol error.
"""

from __future__ import annotations

import logging
import math
import pwd
from typing import TYPE_CHECKING

from protocol import ProtocolError
from protocol import chat_pb2 as pb
from protocol.types import FrameType, parse_message
from protocol.validation import (
    normalize_username,
    username_key,
    valid_device_name,
    validate_password,
)
from relay import delivery, presence
from relay.auth import address_key, hash_password, new_token, token_hash, verify_password
from relay.connection import ConnState
from relay.devices import DeviceLimit
from relay.ratelimit import TokenBucket
from relay.store import StoreUnavailable, UserRecord

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.context import Context

log = logging.getLogger("parley.relay")

BUSY_RETRY_AFTER_S = 1.0  # when the relay's password work is at its bound


def _register_reply(
    relay: Context, conn: Connection, code: pb.RegisterResponse.Code.ValueType, uid: int = 0
) -> None:
    relay.send_message(conn, FrameType.REGISTER, pb.RegisterResponse(code=code, uid=uid))


def _login_reply(
    relay: Context,
    conn: Connection,
    code: pb.LoginResponse.Code.ValueType,
    retry_after: float = 0.0,
) -> None:
    relay.send_message(
        conn,
        FrameType.LOGIN,
        pb.LoginResponse(code=code, retry_after_ms=math.ceil(retry_after * 1000)),
    )


def _hash_budget_spent(relay: Context) -> bool:
    """True when the relay already has ``max_pending_hashes`` password jobs in its worker (or
    logins waiting for it)."""
    hasher = relay.hasher
    return hasher.pending >= relay.config.max_pending_hashes or bool(hasher.waiting)


def _refuse_login(relay: Context, conn: Connection, version: int, retry_after: float) -> None:
    """Refuse a login for now: v2 gets RATE_LIMITED, v1 (whose protocol has no such code)
    PASSWORD_ERROR; both with retry_after_ms, a field v1 clients skip."""
    codes = pb.LoginResponse
    _login_reply(
        relay, conn, codes.RATE_LIMITED if version >= 2 else codes.PASSWORD_ERROR, retry_after
    )


def handle_register(relay: Context, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.RegisterRequest, payload)
    codes = pb.RegisterResponse
    config = relay.config
    if not config.registration_open or config.registrations_per_address_per_minute == 0:
        _register_reply(relay, conn, codes.REGISTRATION_CLOSED)
        return
    if conn.auth_pending or _hash_budget_spent(relay):
        _register_reply(relay, conn, codes.RATE_LIMITED)
        return
    try:
        name = normalize_username(request.username)
    except ValueError:
        _register_reply(relay, conn, codes.INVALID_USERNAME)
        return
    try:
        validate_password(request.password)
    except ValueError:
        _register_reply(relay, conn, codes.INVALID_PASSWORD)
        return
    key = username_key(name)
    if relay.store.username_taken(name, key):
        _register_reply(relay, conn, codes.USER_EXISTS)
        return
    if not relay.registrations.allow(address_key(conn.peer_host), relay.now):
        log.debug(
            "conn=%d peer=%s registration refused: %d per minute from this address",
            conn.id,
            conn.peer,
            config.registrations_per_address_per_minute,
        )
        _register_reply(relay, conn, codes.RATE_LIMITED)
        return

    def hashed(password_hash: str | None, error: BaseException | None) -> None:
        conn.auth_pending = False
        if conn.state is not ConnState.OPEN:
            return
        if error is not None or password_hash is None:
            log.error("conn=%d peer=%s password hashing failed: %r", conn.id, conn.peer, error)
            relay.reset(conn, pb.Reset.UNKNOWN_ERROR, "registration failed inside the relay")
            return
        try:
            uid = relay.store.add_user(name, key, password_hash, relay.wall)
        except StoreUnavailable:
            relay.outage.request_failed(relay, conn)
            return
        if uid is None:
            _register_reply(relay, conn, codes.USER_EXISTS)
            return
        log.info("conn=%d peer=%s registered uid=%d", conn.id, conn.peer, uid)
        _register_reply(relay, conn, codes.SUCCESS, uid)

    conn.auth_pending = True
    relay.hasher.submit(hash_password, (request.password, config.scrypt_n), hashed)


def handle_login(relay: Context, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.LoginRequest, payload)
    codes = pb.LoginResponse
    if conn.uid:
        relay.reset(conn, pb.Reset.KICKED, "LOGIN on a connection that is already logged in")
        return
    version = 2 if request.protocol_version >= 2 else 1
    if conn.auth_pending:
        _refuse_login(relay, conn, version, BUSY_RETRY_AFTER_S)
        return
    _note_device(conn, request, version)
    if conn.local_peer is not None and not request.password and not request.token:
        _local_login(relay, conn, version, request.since_seq)
        return
    try:
        key = username_key(normalize_username(request.username))
    except ValueError:
        _login_reply(relay, conn, codes.USER_NOT_FOUND)
        return
    user = relay.store.user_by_key(key)
    if user is not None and request.token and version >= 2:
        owner = relay.store.token_owner(token_hash(request.token), relay.wall)
        if owner == user.uid:  # before the throttle: a valid token is never refused
            complete_login(relay, conn, user, version, request.since_seq, request.token)
            return
    throttle = relay.throttle
    address = address_key(conn.peer_host)
    uid = None if user is None else user.uid
    wait = throttle.retry_after(uid, address, relay.now)
    if wait > 0:
        _refuse_login(relay, conn, version, wait)
        return
    if user is None:
        throttle.attempt(None, address, relay.now)
        _login_reply(relay, conn, codes.USER_NOT_FOUND)
        return
    if request.token and not request.password:
        throttle.attempt(None, address, relay.now)
        _login_reply(relay, conn, codes.TOKEN_INVALID)
        return
    hasher = relay.hasher
    if len(hasher.waiting) >= relay.config.max_waiting_logins:
        _refuse_login(relay, conn, version, BUSY_RETRY_AFTER_S)
        return
    throttle.attempt(user.uid, address, relay.now)  # failed until the check says otherwise

    def verified(ok: bool | None, error: BaseException | None) -> None:
        conn.auth_pending = False
        if error is None:
            if ok:
                throttle.succeeded(user.uid, address)
            else:
                throttle.failed(address, relay.now)
        if conn.state is not ConnState.OPEN:
            return
        if error is not None:
            log.error("conn=%d peer=%s password check failed: %r", conn.id, conn.peer, error)
            relay.reset(conn, pb.Reset.UNKNOWN_ERROR, "login failed inside the relay")
            return
        current = relay.store.user_by_uid(user.uid)
        if current is None:
            _login_reply(relay, conn, codes.USER_NOT_FOUND)
            return
        if not ok:
            log.info("conn=%d peer=%s login failed for uid=%d", conn.id, conn.peer, user.uid)
            _login_reply(relay, conn, codes.PASSWORD_ERROR)
            return
        complete_login(relay, conn, current, version, request.since_seq, None)

    def wanted() -> bool:
        if conn.state is ConnState.OPEN:
            return True
        conn.auth_pending = False
        return False

    conn.auth_pending = hasher.enqueue(
        verify_password,
        (request.password, user.password_hash),
        verified,
        wanted,
        max_pending=relay.config.max_pending_hashes,
        max_waiting=relay.config.max_waiting_logins,
    )
    if not conn.auth_pending:  # the line filled up in between (checked above): not queued
        _refuse_login(relay, conn, version, BUSY_RETRY_AFTER_S)


def _note_device(conn: Connection, request: pb.LoginRequest, version: int) -> None:
    """Record the device the login asks for on ``conn`` (used once it succeeds)."""
    if version < 2:
        conn.device, conn.send_only, conn.v21 = "", False, False
        return
    if not valid_device_name(request.device):
        raise ProtocolError("device must be at most 64 printable characters")
    conn.send_only = request.send_only
    conn.device = "" if request.send_only else request.device
    conn.v21 = request.send_only or bool(request.device)


def _refuse_local(relay: Context, conn: Connection, why: str) -> None:
    """Refuse a local login: USER_NOT_FOUND, then a Reset whose message says why."""
    log.info("conn=%d peer=%s local login refused: %s", conn.id, conn.peer, why)
    _login_reply(relay, conn, pb.LoginResponse.USER_NOT_FOUND)
    relay.reset(conn, pb.Reset.UNKNOWN_ERROR, why)


def _local_login(relay: Context, conn: Connection, version: int, since_seq: int) -> None:
    """Log the Unix socket's peer in as the account bound to its uid (module docstring)."""
    assert conn.local_peer is not None
    unix_uid = conn.local_peer.uid
    user = relay.store.user_by_unix_uid(unix_uid)
    if user is not None:
        complete_login(relay, conn, user, version, since_seq, None)
        return
    try:
        login_name = pwd.getpwuid(unix_uid).pw_name
    except KeyError:
        _refuse_local(relay, conn, f"Unix uid {unix_uid} has no login name on this box")
        return
    try:
        name = normalize_username(login_name)
    except ValueError:
        _refuse_local(
            relay,
            conn,
            f"the Unix login name {login_name!r} is not a valid Parley username; ask the "
            f"relay's admin to add an account and run 'parley-relay user link NAME "
            f"--unix-user {login_name}'",
        )
        return
    link = f"'parley-relay user link {name} --unix-user {login_name}'"
    if not relay.config.local_accounts:
        _refuse_local(
            relay,
            conn,
            f"this relay creates no local accounts; ask its admin to add one and run {link}",
        )
        return
    key = username_key(name)
    if relay.store.username_taken(name, key):
        _refuse_local(
            relay,
            conn,
            f"the name {name} belongs to a network account; ask the relay's admin to run {link}",
        )
        return
    try:
        uid = relay.store.add_local_user(name, key, unix_uid, relay.wall)
        created = None if uid is None else relay.store.user_by_uid(uid)
    except StoreUnavailable:
        relay.outage.request_failed(relay, conn)
        return
    if created is None:
        _refuse_local(relay, conn, f"the name {name} was taken meanwhile; try again")
        return
    log.info(
        "conn=%d peer=%s local account uid=%d created for Unix uid %d",
        conn.id,
        conn.peer,
        created.uid,
        unix_uid,
    )
    complete_login(relay, conn, created, version, since_seq, None)


def complete_login(
    relay: Context,
    conn: Connection,
    user: UserRecord,
    version: int,
    since_seq: int,
    token: str | None,
) -> None:
    """Make ``conn`` its device's one live session, answer, announce, start the backlog."""
    uid = user.uid
    if not conn.send_only:
        try:
            for box in relay.devices.make_room(
                uid, conn.device, relay.config.max_devices_per_user, relay.sessions.by_box
            ):
                relay.inboxes.forget_box(box)
                log.info("uid=%d: a device forgotten to make room for %r", uid, conn.device)
            box = relay.devices.register(uid, conn.device, relay.wall)
        except StoreUnavailable:
            relay.outage.request_failed(relay, conn)
            return
        except DeviceLimit:
            relay.reset(
                conn,
                pb.Reset.RATE_LIMITED,
                f"this account has {relay.config.max_devices_per_user} devices in use; log "
                "in with one of their names (--device) or end one of them first",
            )
            return
        old = relay.sessions.take_over(box)
        if old is not None and old is not conn:
            relay.reset(
                old,
                pb.Reset.KICKED,
                f"you logged in again on device {conn.device!r} from another connection"
                if conn.device
                else "you logged in from another connection",
            )
        conn.box = box
    conn.uid = uid
    conn.username = user.username
    conn.version = version
    conn.token_login = token is not None
    relay.logged_in(conn)
    came_online = relay.sessions.attach(conn)
    # 0 for v1: "0 = v1 or unknown" keeps v1 buddy lists byte-identical to the original.
    relay.store.set_protocol_version(uid, 2 if version >= 2 else 0)
    if relay.config.rate_limit > 0:
        conn.bucket = TokenBucket(relay.config.rate_limit, relay.config.rate_burst, relay.now)
    response = pb.LoginResponse(code=pb.LoginResponse.SUCCESS, uid=uid)
    head = relay.inboxes.current_head(conn.box) if conn.box else 0
    if version >= 2:
        if token is None:
            token, hashed = new_token()
            expires = relay.wall + relay.config.token_lifetime_days * 86400
            relay.store.add_token(uid, hashed, expires)
        response.protocol_version = 2
        response.token = token
        response.head_seq = head
    relay.send_message(conn, FrameType.LOGIN, response)
    log.info(
        "conn=%d peer=%s login uid=%d v%d%s%s",
        conn.id,
        conn.peer,
        uid,
        version,
        " send-only" if conn.send_only else f" device={conn.device!r}" if conn.device else "",
        " (token)" if conn.token_login else "",
    )
    presence.push_list(relay, conn)
    if came_online:
        presence.user_changed(relay, uid)
    if conn.send_only:
        relay.send_message(conn, FrameType.SYNC, pb.Sync(head_seq=0))  # no backlog, ever
        return
    since = min(since_seq, head) if version >= 2 else 0
    delivery.start_backlog(relay, conn, since, send_sync=version >= 2)
