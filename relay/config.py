"""Relay configuration: CLI flags over a TOML file over defaults, in one frozen object.

Invariants:
- :class:`RelayConfig` is immutable once built; every size, rate and time bound the relay
  enforces lives here, with its default, so operators and tests change it in one place.
- Unknown keys in the TOML file are an error (a typo must not silently keep a default).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import DEFAULT_MAX_FRAME


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/parley-relay`` (``~/.local/share/parley-relay``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "parley-relay"


def default_unix_socket() -> str:
    """Where the relay's Unix socket lives unless configured: ``/run/parley/relay.sock`` for
    a relay run as root or by a service user that owns ``/run/parley`` (systemd's
    ``RuntimeDirectory=parley``), else ``$XDG_RUNTIME_DIR/parley/relay.sock``, else
    ``/tmp/parley-<uid>/relay.sock``. Never inside the data dir: that is closed to other
    users, and the socket is for every local user."""
    if os.geteuid() == 0 or os.access(SYSTEM_SOCKET_DIR, os.W_OK):
        return str(SYSTEM_SOCKET_DIR / SOCKET_FILE_NAME)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return str(Path(runtime) / "parley" / SOCKET_FILE_NAME)
    return str(Path("/tmp") / f"parley-{os.geteuid()}" / SOCKET_FILE_NAME)


SYSTEM_SOCKET_DIR = Path("/run/parley")
SOCKET_FILE_NAME = "relay.sock"
_UNIX_PATH_MAX = 107  # sun_path holds 108 bytes, the last a NUL


@dataclass(frozen=True)
class RelayConfig:
    """Everything the relay needs to know; see ``parley-relay --help`` for each field."""

    host: str = "127.0.0.1"  # localhost only: network exposure is an explicit --host 0.0.0.0
    port: int = 1025
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    cert: Path | None = None
    key: Path | None = None
    plaintext: bool = False
    # The local socket (PROTOCOL.md section 11); "" = none. Logins with an empty password
    # there use the peer's Unix uid; local_accounts: create an account on first such login.
    unix_socket: str = dataclasses.field(default_factory=default_unix_socket)
    local_accounts: bool = True
    max_frame: int = DEFAULT_MAX_FRAME
    rate_limit: float = 0.0  # messages per second per session; 0 = off
    rate_burst: int = 200
    scrypt_n: int = 2**14
    log_level: str = "INFO"
    handshake_timeout: float = 10.0
    login_timeout: float = 30.0
    idle_timeout: float = 90.0
    high_water: int = 4 * 1024 * 1024  # bytes queued to one connection before it counts as slow
    list_user_limit: int = 500
    inbox_quota: int = 100_000  # stored messages per recipient
    max_connections: int = 20_000
    registration_open: bool = True
    login_failures_before_throttle: int = 5
    token_lifetime_days: int = 30
    dedup_window_hours: int = 48
    dedup_filter_bits_log2: int = 26  # bound of each growing Bloom filter generation (8 MiB)
    synchronous: str = "NORMAL"
    max_file_size: int = 4 * 1024**3
    max_transfers_per_user: int = 8
    # -- hardening limits (docs/DECISIONS.md, "Relay limits") ------------------------------
    max_frame_before_login: int = 4096  # LOGIN and REGISTER fit; a bigger frame: FRAME_TOO_LARGE
    read_budget: int = 256 * 1024  # bytes read from one connection per loop pass at most
    frames_per_pass: int = 64  # frames handled for one connection per loop pass at most
    # ... but up to this many while all of them are room messages (a room sender) and the
    # pass's room copies stay under copies_per_pass (docs/DECISIONS.md, "Room batches").
    room_frames_per_pass: int = 256
    # Room copies the messages handled in one loop pass may fan out to (each connection's
    # first message of the pass excepted): 256 messages to 512 member devices.
    copies_per_pass: int = 131_072
    frame_timeout: float = 30.0  # an incomplete frame older than this: Reset TIMEOUT
    input_budget: int = 64 * 1024 * 1024  # buffered input of all connections together
    max_unauthenticated_per_address: int = 64  # connections not logged in, per peer address
    max_unauthenticated: int = 4096  # connections not logged in, in all
    inbox_quota_bytes: int = 64 * 1024 * 1024  # stored bytes per recipient
    registrations_per_address_per_minute: int = 5
    max_pending_hashes: int = 1000  # password checks and hashes queued at once, in all
    max_waiting_logins: int = 20_000  # password logins waiting beyond that; then refused
    # -- devices and rooms (PROTOCOL.md sections 9 and 10) ---------------------------------
    device_expiry_days: int = 30  # a device not logged in for this long is forgotten
    max_devices_per_user: int = 16  # a new one beyond: the least recently seen idle one goes
    max_room_members: int = 500  # members (invited included) per room
    max_rooms_per_user: int = 100  # rooms a user belongs to or is invited to
    room_history: int = 200  # durable messages a member who joins receives first
    # -- operating (README "Run Parley for a team on one box") -----------------------------
    summary_interval: float = 300.0  # seconds between one-line summaries in the log; 0 = off

    @property
    def db_path(self) -> Path:
        return self.data_dir / "parley.db"

    def validate(self) -> RelayConfig:
        """Raise ``ValueError`` with an actionable message for impossible values."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not in 0-65535")
        if (self.cert is None) != (self.key is None):
            raise ValueError("--cert and --key go together: give both or neither")
        if not 64 <= self.max_frame <= 0xFFFFFFFF:
            raise ValueError("max_frame must be between 64 bytes and 4 GiB")
        if self.rate_limit < 0:
            raise ValueError("rate_limit must be >= 0 (0 turns it off)")
        if self.scrypt_n < 2 or self.scrypt_n & (self.scrypt_n - 1):
            raise ValueError("scrypt_n must be a power of two >= 2")
        if self.synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        for name in (
            "max_frame_before_login",
            "read_budget",
            "frames_per_pass",
            "room_frames_per_pass",
            "copies_per_pass",
            "input_budget",
            "max_unauthenticated_per_address",
            "max_unauthenticated",
            "inbox_quota_bytes",
            "max_pending_hashes",
            "max_waiting_logins",
            "device_expiry_days",
            "max_devices_per_user",
            "max_room_members",
            "max_rooms_per_user",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.registrations_per_address_per_minute < 0:
            raise ValueError(
                "registrations_per_address_per_minute must be >= 0 (0 = no "
                "registration from the network)"
            )
        if len(os.fsencode(self.unix_socket)) > _UNIX_PATH_MAX:
            raise ValueError(
                f"unix_socket {self.unix_socket!r} is longer than {_UNIX_PATH_MAX} bytes: "
                "choose a shorter path"
            )
        if self.summary_interval < 0:
            raise ValueError("summary_interval must be >= 0 (0 turns the summary line off)")
        if self.room_history < 0:
            raise ValueError("room_history must be >= 0 (0 = a new member sees no history)")
        if self.max_frame_before_login > self.max_frame:
            raise ValueError("max_frame_before_login must not exceed max_frame")
        for name in ("handshake_timeout", "login_timeout", "idle_timeout", "frame_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        return self


_PATH_FIELDS = {"data_dir", "cert", "key"}


def _coerce(name: str, value: Any) -> Any:
    if name in _PATH_FIELDS and value is not None:
        return Path(value).expanduser()
    if name == "unix_socket" and value:
        return str(Path(value).expanduser())
    return value


def load_config(config_file: Path | None, overrides: dict[str, Any]) -> RelayConfig:
    """Defaults, then the TOML file's keys (``[relay]`` table or top level), then overrides.

    ``overrides`` holds only the CLI flags the user actually gave (None values are skipped).
    """
    known = {f.name for f in dataclasses.fields(RelayConfig)}
    values: dict[str, Any] = {}
    if config_file is not None:
        import tomllib  # only with a config file: the module costs 1.4 MiB of idle RSS

        with open(config_file, "rb") as fh:
            data = tomllib.load(fh)
        table = data.get("relay", data)
        if not isinstance(table, dict):
            raise ValueError(f"{config_file}: [relay] must be a table")
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ValueError(f"{config_file}: unknown setting {key!r}")
            values[name] = _coerce(name, value)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value)
    return RelayConfig(**values).validate()
