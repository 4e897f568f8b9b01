"""The Parley client library: asyncio connection, reliability, local history, trust.

Modules (each states its invariants):
- :mod:`tui.client.trust` — known-relays pins (TOFU), explicit pin, CA file, plaintext.
- :mod:`tui.client.connection` — TLS/plain connection with the pin checked before any byte.
- :mod:`tui.client.login` — v2 login (token first, then password), registration.
- :mod:`tui.client.device` — device names (``tui@host``, ``tail@host``) and their slot locks.
- :mod:`tui.client.session` — :class:`ClientSession`, the facade: sending, receiving, events.
- :mod:`tui.client.supervisor` — the connection: (re)connect with backoff, keepalive.
- :mod:`tui.client.requests` — calls waiting for a response or an outgoing message's fate.
- :mod:`tui.client.receiver` — incoming messages: inbox cursor, Acks, Syncs.
- :mod:`tui.client.outbox` / :mod:`tui.client.inbox` — retry and acknowledgement logic.
- :mod:`tui.client.history` — domain types: HistoryEntry, MessageState, Conversation.
- :mod:`tui.client.rooms` — rooms: the room table, its requests and events (a room's
  messages are the conversation of its negative id).
- :mod:`tui.client.store` — SQLite history, outbox and per-device inbox cursors per (relay,
  user).
- :mod:`tui.client.transfer` — file transfer (a package: manager, engine, wire, runs).
- :mod:`tui.client.events` — event types, listeners and bounded event streams.
- :mod:`tui.client.backoff` — reconnect backoff and retry schedules (pure).
- :mod:`tui.client.cli` — ``parley send`` / ``parley tail`` (rooms: :mod:`tui.client.cli_rooms`).

Nothing here imports textual (tests/tui/client/test_no_textual.py proves it): the app
adapts events to Textual messages itself.
"""

from tui.client.backoff import Backoff, RetryPolicy
from tui.client.connection import DEFAULT_PORT, ConnectionClosed, Endpoint
from tui.client.events import (
    AckReceived,
    Buddy,
    BuddyListChanged,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    EventsLost,
    EventStream,
    GreetingReceived,
    MessageReceived,
    OutgoingStateChanged,
    ResetReceived,
    SyncCompleted,
    UserInfo,
)
from tui.client.history import ANSWERED, CODE_NO_ACK, Conversation, HistoryEntry, MessageState
from tui.client.login import (
    LoginFailed,
    LoginRateLimited,
    RegisterFailed,
    RelayReset,
    SessionError,
    register_account,
)
from tui.client.rooms import (
    RoomChanged,
    RoomInfo,
    RoomInvited,
    RoomMember,
    RoomRemoved,
    RoomResult,
)
from tui.client.session import ClientSession, SessionOptions, UserList
from tui.client.store import LocalStore, default_data_dir, history_path
from tui.client.supervisor import NotConnected
from tui.client.trust import (
    CertificateVerificationFailed,
    FingerprintMismatch,
    TrustError,
    TrustMode,
    TrustPolicy,
    TrustResult,
    TrustStatus,
    TrustStore,
    UntrustedRelay,
    default_known_relays_path,
)

__all__ = [
    "ANSWERED",
    "CODE_NO_ACK",
    "DEFAULT_PORT",
    "AckReceived",
    "Backoff",
    "Buddy",
    "BuddyListChanged",
    "CertificateVerificationFailed",
    "ClientSession",
    "ConnectionClosed",
    "ConnectionState",
    "ConnectionStateChanged",
    "Conversation",
    "Endpoint",
    "Event",
    "EventStream",
    "EventsLost",
    "FingerprintMismatch",
    "GreetingReceived",
    "HistoryEntry",
    "LocalStore",
    "LoginFailed",
    "LoginRateLimited",
    "MessageReceived",
    "MessageState",
    "NotConnected",
    "OutgoingStateChanged",
    "RegisterFailed",
    "RelayReset",
    "ResetReceived",
    "RetryPolicy",
    "RoomChanged",
    "RoomInfo",
    "RoomInvited",
    "RoomMember",
    "RoomRemoved",
    "RoomResult",
    "SessionError",
    "SessionOptions",
    "SyncCompleted",
    "TrustError",
    "TrustMode",
    "TrustPolicy",
    "TrustResult",
    "TrustStatus",
    "TrustStore",
    "UntrustedRelay",
    "UserInfo",
    "UserList",
    "default_data_dir",
    "default_known_relays_path",
    "history_path",
    "register_account",
]
