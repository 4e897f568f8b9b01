"""How the client decides to trust a relay: TOFU pins, an explicit pin, or a CA file.

Invariants:
- A fingerprint is compared only as 32 SHA-256 digest bytes (``certs.parse_fingerprint``), so
  the ``SHA256:<base64>`` and hex spellings of one pin are the same pin.
- The known-relays file is never re-pinned silently: :meth:`TrustStore.check` only reports
  ``CHANGED``; the only writers are :meth:`TrustStore.add` (refuses to replace a different
  pin) and :meth:`TrustStore.forget` (explicit user action).
- Writes replace the whole file atomically (temporary file + ``os.replace``): a crash never
  leaves half a line, and unparseable lines written by hand are kept as they were.
- No I/O beyond the known-relays file; the TLS side lives in :mod:`tui.client.connection`.
"""

from __future__ import annotations

import enum
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from certs import format_fingerprint, parse_fingerprint

APP_NAME = "parley"
KNOWN_RELAYS_FILE = "known_relays"
_STORE_SOURCE = "known_relays file "


def default_known_relays_path() -> Path:
    """``known_relays`` in the user's config directory (platformdirs)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / KNOWN_RELAYS_FILE


def relay_key(host: str, port: int) -> str:
    """The ``host:port`` key of a relay; IPv6 literals are bracketed, host names lowercased."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def canonical_fingerprint(text: str) -> str:
    """``SHA256:<base64>`` form of a fingerprint given in any accepted spelling."""
    return format_fingerprint(parse_fingerprint(text))


class TrustStatus(enum.Enum):
    """Outcome of checking a presented fingerprint against the known-relays file."""

    TRUSTED = "trusted"  # same pin as recorded
    UNKNOWN = "unknown"  # first contact: the caller must ask the user
    CHANGED = "changed"  # a different pin is recorded: hard failure


@dataclass(frozen=True)
class TrustResult:
    """What :meth:`TrustStore.check` found; ``known`` is the recorded pin, if any."""

    status: TrustStatus
    key: str
    presented: str
    known: str | None


class TrustError(Exception):
    """The relay cannot be trusted; connecting must stop before anything is sent."""


class FingerprintMismatch(TrustError):
    """The relay presented a certificate other than the pinned one.

    ``source`` says where the pin came from ("known_relays file ..." or "--fingerprint").
    """

    def __init__(self, key: str, expected: str, presented: str, source: str) -> None:
        self.key = key
        self.expected = expected
        self.presented = presented
        self.source = source
        then = "."
        if source.startswith(_STORE_SOURCE):
            then = f"; then remove the line for {key} from {source.removeprefix(_STORE_SOURCE)}."
        super().__init__(
            f"REFUSED: the certificate of relay {key} has changed.\n"
            f"  pinned ({source}): {expected}\n"
            f"  presented now:     {presented}\n"
            "Someone may be intercepting the connection, or the relay's certificate was "
            "replaced. Check the new fingerprint with the relay's operator "
            f"(`parley-relay cert show`) before trusting it{then}"
        )


class UntrustedRelay(TrustError):
    """First contact with a relay whose fingerprint the user did not accept."""

    def __init__(self, key: str, presented: str) -> None:
        self.key = key
        self.presented = presented
        super().__init__(
            f"relay {key} is not trusted yet (fingerprint {presented}); verify it with the "
            "relay's operator and accept it, or pass --fingerprint"
        )


class CertificateVerificationFailed(TrustError):
    """CA mode: the certificate chain or host name did not verify."""


class TrustStore:
    """The known-relays file: lines ``host:port SHA256:<base64>``; ``#`` starts a comment.

    The file is read on every call, so several clients sharing it see each other's pins.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_known_relays_path()

    def _read_lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def entries(self) -> dict[str, str]:
        """Every valid entry, key → canonical fingerprint (first entry of a key wins)."""
        found: dict[str, str] = {}
        for line in self._read_lines():
            parsed = _parse_line(line)
            if parsed is not None:
                found.setdefault(parsed[0], parsed[1])
        return found

    def lookup(self, host: str, port: int) -> str | None:
        """The recorded pin of ``host:port``, or None."""
        return self.entries().get(relay_key(host, port))

    def check(self, host: str, port: int, presented: str) -> TrustResult:
        """Compare ``presented`` with the pin recorded for ``host:port``."""
        key = relay_key(host, port)
        presented = canonical_fingerprint(presented)
        known = self.entries().get(key)
        if known is None:
            status = TrustStatus.UNKNOWN
        elif known == presented:
            status = TrustStatus.TRUSTED
        else:
            status = TrustStatus.CHANGED
        return TrustResult(status, key, presented, known)

    def add(self, host: str, port: int, fingerprint: str) -> None:
        """Record a pin for a relay seen for the first time.

        Raises :class:`FingerprintMismatch` if a different pin is already recorded (re-pinning
        is an explicit :meth:`forget` first); adding the same pin again is a no-op.
        """
        key = relay_key(host, port)
        fingerprint = canonical_fingerprint(fingerprint)
        known = self.entries().get(key)
        if known == fingerprint:
            return
        if known is not None:
            raise FingerprintMismatch(key, known, fingerprint, self.source)
        lines = self._read_lines()
        lines.append(f"{key} {fingerprint}")
        self._write_lines(lines)

    def forget(self, host: str, port: int) -> bool:
        """Remove every pin of ``host:port``; True if one was removed."""
        key = relay_key(host, port)
        lines = self._read_lines()
        kept = [line for line in lines if _line_key(line) != key]
        if len(kept) == len(lines):
            return False
        self._write_lines(kept)
        return True

    @property
    def source(self) -> str:
        """How error messages name this store."""
        return f"{_STORE_SOURCE}{self.path}"

    def _write_lines(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".known_relays-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in lines))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _parse_line(line: str) -> tuple[str, str] | None:
    text = line.split("#", 1)[0].strip()
    parts = text.split()
    if len(parts) != 2:
        return None
    host, sep, port = parts[0].rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    try:
        fingerprint = canonical_fingerprint(parts[1])
    except ValueError:
        return None
    return relay_key(host.removeprefix("[").removesuffix("]"), int(port)), fingerprint


def _line_key(line: str) -> str | None:
    parsed = _parse_line(line)
    return parsed[0] if parsed is not None else None


# Asked on first contact: (key "host:port", presented fingerprint) → accept?
AskUnknown = Callable[[str, str], Awaitable[bool]]


class TrustMode(enum.Enum):
    """How the relay's certificate is checked."""

    KNOWN_RELAYS = "known_relays"  # TOFU against a TrustStore
    PINNED = "pinned"  # one fingerprint given explicitly (--fingerprint)
    CA_FILE = "ca_file"  # normal chain + host name verification
    PLAINTEXT = "plaintext"  # no TLS at all (--plaintext; tests and captures only)


@dataclass(frozen=True)
class TrustPolicy:
    """One way to authenticate a relay. Build it with the class methods.

    - :meth:`known_relays`: trust on first use; ``ask`` decides first contacts (no ``ask``:
      first contact is refused), CHANGED is always refused.
    - :meth:`pinned`: the certificate must have exactly this fingerprint. The known-relays
      file is neither read nor written.
    - :meth:`ca_file`: verified against the CA certificates in ``cafile``, host name checked.
    - :meth:`plaintext`: no TLS.
    """

    mode: TrustMode
    store: TrustStore | None = None
    ask: AskUnknown | None = None
    pin: str | None = None
    cafile: Path | None = None

    @classmethod
    def known_relays(
        cls, store: TrustStore | None = None, ask: AskUnknown | None = None
    ) -> TrustPolicy:
        return cls(TrustMode.KNOWN_RELAYS, store=store or TrustStore(), ask=ask)

    @classmethod
    def pinned(cls, fingerprint: str) -> TrustPolicy:
        """Raises ``ValueError`` (saying which forms are accepted) for a malformed pin."""
        return cls(TrustMode.PINNED, pin=canonical_fingerprint(fingerprint))

    @classmethod
    def ca_file(cls, cafile: Path) -> TrustPolicy:
        return cls(TrustMode.CA_FILE, cafile=cafile)

    @classmethod
    def plaintext(cls) -> TrustPolicy:
        return cls(TrustMode.PLAINTEXT)

    @property
    def uses_tls(self) -> bool:
        return self.mode is not TrustMode.PLAINTEXT

    def ssl_context(self) -> ssl.SSLContext | None:
        """The context to connect with. Pin modes do not verify the chain (the relay is
        self-signed); :meth:`verify_presented` must then run before anything is sent."""
        if self.mode is TrustMode.PLAINTEXT:
            return None
        if self.mode is TrustMode.CA_FILE:
            ctx = ssl.create_default_context(cafile=str(self.cafile))
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    async def verify_presented(self, host: str, port: int, presented: str) -> bool:
        """Accept ``presented`` (the relay certificate's fingerprint) or raise TrustError.

        Returns True if the user was asked (and accepted): the answer may have taken longer
        than the relay waits for a login, so the caller should reconnect.
        """
        key = relay_key(host, port)
        if self.mode is TrustMode.PINNED:
            assert self.pin is not None
            if canonical_fingerprint(presented) != self.pin:
                raise FingerprintMismatch(
                    key, self.pin, canonical_fingerprint(presented), "--fingerprint"
                )
            return False
        if self.mode is not TrustMode.KNOWN_RELAYS:
            return False  # CA mode: the TLS layer verified; plaintext: nothing to verify
        assert self.store is not None
        result = self.store.check(host, port, presented)
        if result.status is TrustStatus.TRUSTED:
            return False
        if result.status is TrustStatus.CHANGED:
            assert result.known is not None
            raise FingerprintMismatch(key, result.known, result.presented, self.store.source)
        if self.ask is None or not await self.ask(key, result.presented):
            raise UntrustedRelay(key, result.presented)
        self.store.add(host, port, result.presented)
        return True
