"""Configuration of the TUI: the frozen :class:`AppConfig`, login requests, remembered server.

Invariants:
- :class:`AppConfig` is built once (by ``tui.cli`` from the flags, or by tests) and never
  mutated; every path the app writes (history, known_relays, the remembered server) is in
  it, so tests point them all at a temporary directory.
- The remembered server file holds host, port and user name only, never a password; a
  missing or corrupt file is simply "nothing remembered".
- The trust policy comes from the flags: ``--plaintext`` > ``--fingerprint`` > the
  known_relays file with a first-contact question (the app asks in a dialog).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tui.client.connection import DEFAULT_PORT
from tui.client.session import SessionOptions
from tui.client.store import default_data_dir
from tui.client.transfer.logic import TransferOptions
from tui.client.trust import AskUnknown, TrustPolicy, TrustStore, default_known_relays_path

SETTINGS_FILE = "tui.json"


def default_settings_path() -> Path:
    return default_known_relays_path().parent / SETTINGS_FILE


@dataclass(frozen=True)
class AppConfig:
    """What the app needs to know before the login screen; see the module docstring."""

    host: str | None = None  # None: remembered server, else localhost
    port: int | None = None
    user: str | None = None
    plaintext: bool = False
    fingerprint: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    known_relays: Path = field(default_factory=default_known_relays_path)
    settings_path: Path = field(default_factory=default_settings_path)
    session_options: SessionOptions = field(default_factory=SessionOptions)
    export_dir: Path | None = None  # exported boards; None: documents (or downloads) dir
    downloads_dir: Path | None = None  # received files' default folder; None: downloads dir
    transfer_options: TransferOptions | None = None  # file-transfer tunables; None: defaults
    local_socket: Path | None = None  # the relay's Unix socket: log in there at once, no form
    device: str | None = None  # --device: this device name, not the first free tui@<host> slot

    def trust_policy(self, ask: AskUnknown) -> TrustPolicy:
        """``ValueError`` for a malformed ``--fingerprint``."""
        if self.plaintext:
            return TrustPolicy.plaintext()
        if self.fingerprint is not None:
            return TrustPolicy.pinned(self.fingerprint)
        return TrustPolicy.known_relays(TrustStore(self.known_relays), ask=ask)


@dataclass(frozen=True)
class LoginRequest:
    """What the login screen hands to the app."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    register: bool = False
    remember: bool = True
    unix_path: str | None = None  # a local login on the relay's Unix socket (no password)

    @property
    def relay(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RememberedServer:
    host: str
    port: int
    user: str


def parse_server(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port); ``ValueError``."""
    text = text.strip()
    if not text:
        raise ValueError("enter the relay's host name, e.g. chat.example.org:1025")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host:
            raise ValueError("an IPv6 address goes in brackets: [::1]:1025")
        port_text = rest.removeprefix(":") if rest else ""
        if rest and not rest.startswith(":"):
            raise ValueError("expected [address]:port")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        host, port_text = text, ""  # a bare IPv6 address
    else:
        host, port_text = text, ""
    if not host or any(ch.isspace() for ch in host):
        raise ValueError("invalid host name")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("the port must be a number from 1 to 65535")
    return host, int(port_text)


def load_remembered(path: Path) -> RememberedServer | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        host, port, user = data["host"], data["port"], data["user"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (isinstance(host, str) and isinstance(port, int) and isinstance(user, str)):
        return None
    return RememberedServer(host, port, user)


def save_remembered(path: Path, server: RememberedServer | None) -> None:
    """Write (or with None, delete) the remembered server, atomically."""
    if server is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tui-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"host": server.host, "port": server.port, "user": server.user}, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
