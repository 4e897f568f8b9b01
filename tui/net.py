"""The app's network side: one login (or registration + login), then the session's life.

Invariants:
- :func:`run_session` is the body of the App's exclusive ``net`` worker: a new login
  cancels the previous session, and the session is closed whenever the worker ends
  (normally, cancelled, or failed).
- Every event of the client library reaches the main screen as a
  :class:`~tui.messages.SessionEvent`, by one path: a :class:`~tui.feed.ClientFeed` that
  merges the session's events — from one bounded stream opened *before* the session starts,
  so nothing that happens between the login and the first screen is lost — with the
  transfer engine's (a snapshot of its transfers first, then its events).
- Errors before the login completes propagate (the app shows them on the login screen);
  after it the session reconnects by itself and reports trouble as events.
- Flow control: after every :data:`FLOW_WINDOW` events the worker waits until the screen
  has handled them, so the screen's message queue — which the user's key presses pass
  through — stays short even when thousands of events arrive at once; the session's
  stream (bounded) holds the rest, and if it overflows the screen reloads from the store
  (``EventsLost``).
- The file-transfer engine (:class:`~tui.client.transfer.TransferManager`) is created with
  the session, before it starts (so offers in the backlog are recorded), handed to the host
  with it, and closed before it.
- A request with ``unix_path`` logs in on the relay's Unix socket with no password and no
  trust policy consulted (PROTOCOL.md section 11), and leaves the remembered server alone.
- The session is a device of its user (PROTOCOL.md section 9): ``config.device``, else the
  first free ``tui@<host>`` slot (:func:`tui.client.device.claim_device`), held until the
  session is closed, so a second TUI of the same user on this host is another device and
  neither kicks the other.
- No widget code here: the host (the App) decides what to show.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from textual.message_pump import MessagePump

from protocol import chat_pb2 as pb
from tui.client.connection import Endpoint
from tui.client.device import TUI, claim_device
from tui.client.login import LoginFailed, LoginRateLimited, RegisterFailed, register_account
from tui.client.session import ClientSession
from tui.client.transfer import TransferManager
from tui.client.trust import TrustError
from tui.feed import ClientFeed
from tui.messages import SessionEvent
from tui.settings import AppConfig, LoginRequest, RememberedServer, save_remembered

FLOW_WINDOW = 64  # events posted to the screen before waiting for it to catch up
CATCH_UP_TIMEOUT = 5.0  # never wait longer than this for a screen that stopped


class NetHost(Protocol):
    config: AppConfig

    async def ask_trust(self, relay_key: str, fingerprint: str) -> bool: ...

    async def session_started(
        self, session: ClientSession, request: LoginRequest, transfers: TransferManager
    ) -> MessagePump: ...


async def run_session(host: NetHost, request: LoginRequest) -> None:
    """Log in as ``request`` says, hand the session to the host, feed it events until the
    session closes. Raises what made the login fail."""
    config = host.config
    policy = config.trust_policy(host.ask_trust)
    local = request.unix_path is not None
    endpoint = (
        Endpoint.local(request.unix_path)
        if request.unix_path is not None
        else Endpoint(request.host, request.port)
    )
    options = config.session_options
    if request.register:
        await register_account(
            endpoint, policy, request.username, request.password, timeout=options.login_timeout
        )
    claim = claim_device(config.data_dir, request.username, TUI, explicit=config.device)
    try:
        session = ClientSession(
            endpoint,
            request.username,
            None if local else request.password,
            trust=policy,
            data_dir=config.data_dir,
            options=options,
            device=claim.name,
        )
    except BaseException:
        claim.release()
        raise
    transfers: TransferManager | None = None
    feed: ClientFeed | None = None
    try:
        # Before start(): offers in the backlog reach the engine's store (and the Files pane).
        transfers = TransferManager(
            session,
            data_dir=config.data_dir,
            downloads_dir=config.downloads_dir,
            options=config.transfer_options,
        )
        stream = session.events()
        await session.start()
        if not local:  # the socket is found afresh each start; the remembered server stays
            remembered = RememberedServer(request.host, request.port, request.username)
            save_remembered(config.settings_path, remembered if request.remember else None)
        target = await host.session_started(session, request, transfers)
        feed = ClientFeed(stream, transfers)
        posted = 0
        async for event in feed:
            target.post_message(SessionEvent(event))
            posted += 1
            if posted % FLOW_WINDOW == 0:
                await caught_up(target)
    finally:
        if feed is not None:
            feed.close()
        if transfers is not None:
            await transfers.close()  # before the session: offsets persisted, runs stopped
        await session.close()
        claim.release()


async def caught_up(target: MessagePump) -> None:
    """Wait until ``target`` has handled every message posted to it so far (or a closed
    target, or a timeout, ends the wait)."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def mark() -> None:
        if not done.done():
            done.set_result(None)

    if target.call_later(mark):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, CATCH_UP_TIMEOUT)


def describe_login_error(error: BaseException, relay: str) -> str:
    """One or a few lines saying why logging in failed and what to do."""
    if isinstance(error, TrustError):
        return str(error)
    if isinstance(error, RegisterFailed):
        return f"Registration refused: {error}"
    if isinstance(error, LoginRateLimited):
        return f"Too many attempts: try again in {error.retry_after:.0f} s"
    if isinstance(error, LoginFailed):
        if error.code == pb.LoginResponse.USER_NOT_FOUND:
            return f"{error} (tick 'Register a new account' to create it)"
        return f"Login failed: {error}"
    if isinstance(error, ConnectionRefusedError):
        return f"Cannot reach {relay}: connection refused (is the relay running?)"
    if isinstance(error, TimeoutError):
        return f"No answer from {relay} in time"
    if isinstance(error, OSError):
        return f"Cannot reach {relay}: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"
