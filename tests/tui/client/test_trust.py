"""Trust store (known_relays), explicit pins, and the pin check on a real TLS handshake."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import pytest

from certs import generate_self_signed, load_certificate_der, parse_fingerprint
from tui.client.connection import Endpoint, open_connection
from tui.client.trust import (
    FingerprintMismatch,
    TrustPolicy,
    TrustStatus,
    TrustStore,
    UntrustedRelay,
    canonical_fingerprint,
    relay_key,
)

FP_A = "SHA256:" + base64.b64encode(hashlib.sha256(b"a").digest()).decode().rstrip("=")
FP_B = "SHA256:" + base64.b64encode(hashlib.sha256(b"b").digest()).decode().rstrip("=")
HEX_A = hashlib.sha256(b"a").hexdigest()


def test_first_contact_is_unknown_then_trusted_after_add(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "cfg" / "known_relays")
    result = store.check("relay.example", 1025, FP_A)
    assert result.status is TrustStatus.UNKNOWN and result.known is None
    store.add("relay.example", 1025, FP_A)
    assert store.check("relay.example", 1025, FP_A).status is TrustStatus.TRUSTED
    assert (tmp_path / "cfg" / "known_relays").read_text() == f"relay.example:1025 {FP_A}\n"


def test_changed_fingerprint_is_reported_never_repinned(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "known_relays")
    store.add("relay.example", 1025, FP_A)
    result = store.check("relay.example", 1025, FP_B)
    assert result.status is TrustStatus.CHANGED
    assert (result.known, result.presented) == (FP_A, FP_B)
    with pytest.raises(FingerprintMismatch) as info:
        store.add("relay.example", 1025, FP_B)
    message = str(info.value)
    assert FP_A in message and FP_B in message and "relay.example:1025" in message
    assert store.lookup("relay.example", 1025) == FP_A


def test_hex_and_base64_spellings_are_the_same_pin(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "known_relays")
    store.add("h", 1, HEX_A)
    assert store.lookup("h", 1) == FP_A  # stored canonically
    colons = ":".join(HEX_A[i : i + 2] for i in range(0, 64, 2)).upper()
    for spelling in (FP_A, HEX_A, colons, "sha256:" + FP_A[7:], f"SHA256:{HEX_A}"):
        assert store.check("h", 1, spelling).status is TrustStatus.TRUSTED
    assert canonical_fingerprint(colons) == FP_A


def test_hand_written_lines_comments_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "known_relays"
    path.write_text(
        "# my relays\n"
        f"Relay.Example:1025 {HEX_A}  # pasted as hex\n"
        "this line is not an entry\n"
        f"[::1]:7000 {FP_B}\n"
    )
    store = TrustStore(path)
    assert store.check("relay.example", 1025, FP_A).status is TrustStatus.TRUSTED
    assert store.check("::1", 7000, FP_B).status is TrustStatus.TRUSTED
    assert store.check("relay.example", 1026, FP_A).status is TrustStatus.UNKNOWN
    store.add("other", 1, FP_A)
    text = path.read_text()
    assert "# my relays" in text and "this line is not an entry" in text
    assert store.forget("relay.example", 1025)
    assert store.lookup("relay.example", 1025) is None
    assert not store.forget("relay.example", 1025)
    assert store.lookup("other", 1) == FP_A


def test_relay_key_brackets_ipv6() -> None:
    assert relay_key("::1", 1025) == "[::1]:1025"
    assert relay_key("LOCALHOST", 9) == "localhost:9"


async def test_policy_asks_on_first_contact_and_records_acceptance(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "known_relays")
    asked: list[tuple[str, str]] = []

    async def yes(key: str, fingerprint: str) -> bool:
        asked.append((key, fingerprint))
        return True

    policy = TrustPolicy.known_relays(store, ask=yes)
    await policy.verify_presented("h", 5, HEX_A)
    assert asked == [("h:5", FP_A)]
    assert store.lookup("h", 5) == FP_A
    await policy.verify_presented("h", 5, FP_A)  # trusted now: not asked again
    assert len(asked) == 1


async def test_policy_refuses_declined_or_unasked_first_contact(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "known_relays")

    async def no(key: str, fingerprint: str) -> bool:
        return False

    with pytest.raises(UntrustedRelay):
        await TrustPolicy.known_relays(store, ask=no).verify_presented("h", 5, FP_A)
    with pytest.raises(UntrustedRelay, match="--fingerprint"):
        await TrustPolicy.known_relays(store).verify_presented("h", 5, FP_A)
    assert store.lookup("h", 5) is None


async def test_policy_refuses_changed_without_asking(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "known_relays")
    store.add("h", 5, FP_A)

    async def ask(key: str, fingerprint: str) -> bool:
        raise AssertionError("must not ask about a changed fingerprint")

    with pytest.raises(FingerprintMismatch) as info:
        await TrustPolicy.known_relays(store, ask=ask).verify_presented("h", 5, FP_B)
    assert FP_A in str(info.value) and FP_B in str(info.value)
    assert str(store.path) in str(info.value)


async def test_explicit_pin_accepts_both_forms_and_refuses_others(tmp_path: Path) -> None:
    policy = TrustPolicy.pinned(HEX_A)
    await policy.verify_presented("h", 1, FP_A)
    with pytest.raises(FingerprintMismatch, match="--fingerprint"):
        await policy.verify_presented("h", 1, FP_B)
    with pytest.raises(ValueError, match="SHA256"):
        TrustPolicy.pinned("not a fingerprint")


# --- the pin check on a real TLS handshake ------------------------------------------------


async def _tls_server(tmp_path: Path) -> tuple[asyncio.Server, int, str, list[bytes]]:
    """A loopback TLS server with a fresh self-signed certificate; records what it reads."""
    import ssl

    pair = generate_self_signed(tmp_path / "c.pem", tmp_path / "k.pem")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pair.cert_path, pair.key_path)
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.read())
        except (OSError, ssl.SSLError):
            received.append(b"")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    return server, port, pair.fingerprint, received


async def test_connection_checks_pin_before_sending_anything(tmp_path: Path) -> None:
    server, port, fingerprint, received = await _tls_server(tmp_path)
    async with server:
        der = load_certificate_der(tmp_path / "c.pem")
        assert parse_fingerprint(fingerprint) == hashlib.sha256(der).digest()
        with pytest.raises(FingerprintMismatch):
            await open_connection(Endpoint("127.0.0.1", port), TrustPolicy.pinned(FP_A))
        conn = await open_connection(Endpoint("127.0.0.1", port), TrustPolicy.pinned(fingerprint))
        assert conn.fingerprint == fingerprint
        await conn.close()
        for _ in range(100):
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
        assert received == [b"", b""]  # the refused connection carried no byte from us


async def test_ca_file_mode_verifies_chain_and_host(tmp_path: Path) -> None:
    from tui.client.trust import CertificateVerificationFailed

    server, port, _, _ = await _tls_server(tmp_path)
    async with server:
        # The self-signed certificate is its own CA and names 127.0.0.1 and localhost.
        conn = await open_connection(
            Endpoint("127.0.0.1", port), TrustPolicy.ca_file(tmp_path / "c.pem")
        )
        await conn.close()
        other = generate_self_signed(tmp_path / "o.pem", tmp_path / "ok.pem")
        with pytest.raises(CertificateVerificationFailed):
            await open_connection(Endpoint("127.0.0.1", port), TrustPolicy.ca_file(other.cert_path))
