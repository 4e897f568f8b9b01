"""Relay authentication end to end: TOFU, a replaced certificate, a wrong explicit pin."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from certs import CERT_FILE_NAME, KEY_FILE_NAME
from tests.harness import RelayProcess
from tests.tui.client.sessions import make_session, wait_for
from tui.client import (
    ConnectionState,
    ConnectionStateChanged,
    FingerprintMismatch,
    TrustPolicy,
    TrustStore,
    UntrustedRelay,
)


async def test_first_contact_asks_then_trusts_then_refuses_a_new_certificate(
    relay: RelayProcess, tmp_path: Path
) -> None:
    store = TrustStore(tmp_path / "config" / "known_relays")
    asked: list[str] = []

    async def accept(key: str, fingerprint: str) -> bool:
        asked.append(fingerprint)
        return True

    policy = TrustPolicy.known_relays(store, ask=accept)
    alice = make_session(relay, tmp_path, "alice", trust=policy)
    await alice.register()  # first contact: asked once, remembered
    await alice.start()
    assert asked == [relay.fingerprint]
    assert store.lookup(relay.host, relay.port) == relay.fingerprint
    events = alice.events()

    old = relay.fingerprint
    relay.kill()
    (relay.data_dir / CERT_FILE_NAME).unlink()
    (relay.data_dir / KEY_FILE_NAME).unlink()
    await asyncio.to_thread(relay.start)  # same address, new self-signed certificate
    assert relay.fingerprint != old

    offline = await wait_for(
        events, ConnectionStateChanged, lambda e: e.state is ConnectionState.OFFLINE
    )
    assert isinstance(offline.error, FingerprintMismatch)
    assert old is not None and relay.fingerprint is not None
    assert old in offline.reason and relay.fingerprint in offline.reason
    assert asked == [old]  # a changed certificate is never a question
    assert store.lookup(relay.host, relay.port) == old  # never silently re-pinned
    await alice.close()

    again = make_session(relay, tmp_path, "alice", trust=policy)
    with pytest.raises(FingerprintMismatch):
        await again.start()
    await again.close()
    assert "login uid" not in relay.logs().split("listening on")[-1]


async def test_declined_first_contact_sends_nothing(relay: RelayProcess, tmp_path: Path) -> None:
    async def decline(key: str, fingerprint: str) -> bool:
        return False

    policy = TrustPolicy.known_relays(TrustStore(tmp_path / "known_relays"), ask=decline)
    with pytest.raises(UntrustedRelay):
        await make_session(relay, tmp_path, "alice", trust=policy).register()
    assert "registered" not in relay.logs()


async def test_a_relay_with_another_certificate_is_refused(
    relay: RelayProcess, tmp_path: Path
) -> None:
    with RelayProcess(tmp_path / "impostor") as impostor:
        assert impostor.fingerprint != relay.fingerprint
        assert relay.fingerprint is not None
        session = make_session(
            impostor, tmp_path, "alice", trust=TrustPolicy.pinned(relay.fingerprint)
        )
        with pytest.raises(FingerprintMismatch) as info:
            await session.register()
        assert relay.fingerprint in str(info.value)
        await session.close()
        assert "registered" not in impostor.logs()
