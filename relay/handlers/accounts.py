"""REGISTER and LOGIN (PROTOCOL.md section 5).

Invariants:
- scrypt (hashing and verifying) runs on the hash worker; the callback re-checks that the
  connection is still open before touching the session.
- Failed logins are throttled per username and per peer address *before* any hashing, so
  guessing costs the attacker time and the relay nothing.
- One live session per user: a successful login kicks the previous one (Reset KICKED)
  without announcing the user offline in between.
- Token logins (v2) cost one SHA-256 and one indexed lookup, never scrypt.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.types import FrameType, parse_message
from protocol.validation import normalize_username, username_key, validate_password
from relay import delivery, presence
from relay.auth import hash_password, new_token, token_hash, verify_password
from relay.connection import ConnState
from relay.ratelimit import TokenBucket
from relay.store import UserRecord

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.server import Relay

log = logging.getLogger("parley.relay")

MAX_PENDING_HASHES = 1000


def _register_reply(relay: Relay, conn: Connection, code: pb.RegisterResponse.Code.ValueType,
                    uid: int = 0) -> None:
    relay.send_message(conn, FrameType.REGISTER, pb.RegisterResponse(code=code, uid=uid))


def _login_reply(relay: Relay, conn: Connection, code: pb.LoginResponse.Code.ValueType,
                 retry_after: float = 0.0) -> None:
    relay.send_message(conn, FrameType.LOGIN, pb.LoginResponse(
        code=code, retry_after_ms=math.ceil(retry_after * 1000)))


def handle_register(relay: Relay, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.RegisterRequest, payload)
    codes = pb.RegisterResponse
    if not relay.config.registration_open:
        _register_reply(relay, conn, codes.REGISTRATION_CLOSED)
        return
    if conn.auth_pending or relay.hasher.pending >= MAX_PENDING_HASHES:
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
    if relay.store.user_by_key(key) is not None:
        _register_reply(relay, conn, codes.USER_EXISTS)
        return

    def hashed(password_hash: str | None, error: BaseException | None) -> None:
        conn.auth_pending = False
        if conn.state is not ConnState.OPEN:
            return
        if error is not None or password_hash is None:
            log.error("conn=%d peer=%s password hashing failed: %r", conn.id, conn.peer, error)
            relay.reset(conn, pb.Reset.UNKNOWN_ERROR, "registration failed inside the relay")
            return
        uid = relay.store.add_user(name, key, password_hash, relay.wall)
        if uid is None:
            _register_reply(relay, conn, codes.USER_EXISTS)
            return
        log.info("conn=%d peer=%s registered uid=%d", conn.id, conn.peer, uid)
        _register_reply(relay, conn, codes.SUCCESS, uid)

    conn.auth_pending = True
    relay.hasher.submit(hash_password, (request.password, relay.config.scrypt_n), hashed)


def handle_login(relay: Relay, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.LoginRequest, payload)
    codes = pb.LoginResponse
    if conn.uid:
        relay.reset(conn, pb.Reset.KICKED, "LOGIN on a connection that is already logged in")
        return
    if conn.auth_pending:
        _login_reply(relay, conn, codes.RATE_LIMITED, 1.0)
        return
    version = 2 if request.protocol_version >= 2 else 1
    try:
        key = username_key(normalize_username(request.username))
    except ValueError:
        _login_reply(relay, conn, codes.USER_NOT_FOUND)
        return
    throttle = relay.throttle
    user_key, addr_key = "u:" + key, "a:" + conn.peer_host
    wait = max(throttle.retry_after(user_key, relay.now), throttle.retry_after(addr_key,
                                                                              relay.now))
    if wait > 0:
        _login_reply(relay, conn, codes.RATE_LIMITED, wait)
        return
    user = relay.store.user_by_key(key)
    if user is None:
        throttle.failure(addr_key, relay.now)
        _login_reply(relay, conn, codes.USER_NOT_FOUND)
        return
    if request.token:
        owner = relay.store.token_owner(token_hash(request.token), relay.wall)
        if version >= 2 and owner == user.uid:
            complete_login(relay, conn, user, version, request.since_seq, request.token)
            return
        if not request.password:
            throttle.failure(addr_key, relay.now)
            _login_reply(relay, conn, codes.TOKEN_INVALID)
            return
    if relay.hasher.pending >= MAX_PENDING_HASHES:
        _login_reply(relay, conn, codes.RATE_LIMITED, 1.0)
        return

    def verified(ok: bool | None, error: BaseException | None) -> None:
        conn.auth_pending = False
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
            throttle.failure(user_key, relay.now)
            throttle.failure(addr_key, relay.now)
            log.info("conn=%d peer=%s login failed for uid=%d", conn.id, conn.peer, user.uid)
            _login_reply(relay, conn, codes.PASSWORD_ERROR)
            return
        throttle.success(user_key)
        complete_login(relay, conn, current, version, request.since_seq, None)

    conn.auth_pending = True
    relay.hasher.submit(verify_password, (request.password, user.password_hash), verified)


def complete_login(relay: Relay, conn: Connection, user: UserRecord, version: int,
                   since_seq: int, token: str | None) -> None:
    """Make ``conn`` the user's one live session, answer, announce, start the backlog."""
    uid = user.uid
    old = relay.online.pop(uid, None)
    if old is not None and old is not conn:
        relay.reset(old, pb.Reset.KICKED, "you logged in from another connection")
    conn.uid = uid
    conn.username = user.username
    conn.version = version
    conn.token_login = token is not None
    relay.online[uid] = conn
    relay.buddy_cache[uid] = relay.store.buddy_ids(uid)
    # 0 for v1: "0 = v1 or unknown" keeps v1 buddy lists byte-identical to the original.
    relay.store.set_protocol_version(uid, 2 if version >= 2 else 0)
    if relay.config.rate_limit > 0:
        conn.bucket = TokenBucket(relay.config.rate_limit, relay.config.rate_burst, relay.now)
    response = pb.LoginResponse(code=pb.LoginResponse.SUCCESS, uid=uid)
    head = delivery.current_head(relay, uid)
    if version >= 2:
        if token is None:
            token, hashed = new_token()
            expires = relay.wall + relay.config.token_lifetime_days * 86400
            relay.store.add_token(uid, hashed, expires)
        response.protocol_version = 2
        response.token = token
        response.head_seq = head
    relay.send_message(conn, FrameType.LOGIN, response)
    log.info("conn=%d peer=%s login uid=%d v%d%s", conn.id, conn.peer, uid, version,
             " (token)" if conn.token_login else "")
    presence.push_list(relay, conn)
    presence.user_changed(relay, uid)
    since = min(since_seq, head) if version >= 2 else 0
    delivery.start_backlog(relay, conn, since, send_sync=version >= 2)
