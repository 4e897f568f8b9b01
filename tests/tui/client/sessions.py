"""Helpers for end-to-end tests of the client library against the real relay process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.harness import RelayProcess
from tui.client import (
    ClientSession,
    Endpoint,
    Event,
    EventStream,
    SessionOptions,
    TrustPolicy,
)
from tui.client.transfer import TransferManager
from tui.client.transfer.events import TransferEvent
from tui.client.transfer.logic import TransferOptions

# Quick reconnects so tests do not idle; every other value is the production default.
FAST = SessionOptions(backoff_base=0.05, backoff_cap=0.5)
WAIT = 30.0  # generous upper bound for anything to happen; never a performance claim

E = TypeVar("E")


def policy_for(relay: RelayProcess) -> TrustPolicy:
    if relay.fingerprint is None:
        return TrustPolicy.plaintext()
    return TrustPolicy.pinned(relay.fingerprint)


def make_session(
    relay: RelayProcess,
    data_dir: Path,
    name: str,
    *,
    password: str | None = None,
    options: SessionOptions = FAST,
    trust: TrustPolicy | None = None,
    device: str = "",
) -> ClientSession:
    return ClientSession(
        Endpoint(relay.host, relay.port),
        name,
        password if password is not None else f"pw-{name}",
        trust=trust or policy_for(relay),
        data_dir=data_dir / name,
        options=options,
        device=device,
    )


async def wait_for(
    stream: EventStream, kind: type[E], predicate: Callable[[E], bool] = lambda _: True
) -> E:
    """The next event of ``kind`` satisfying ``predicate`` (others are skipped)."""
    while True:
        event: Event = await stream.next(WAIT)
        if isinstance(event, kind) and predicate(event):
            return event


async def buddies(a: ClientSession, b: ClientSession) -> None:
    """Make ``a`` and ``b`` buddies (request + consent)."""
    assert b.uid is not None and a.uid is not None
    await a.add_buddy(b.uid)
    await b.add_buddy(a.uid)


async def buddy_pair(relay: RelayProcess, data_dir: Path) -> tuple[ClientSession, ClientSession]:
    """alice and bob, registered, started and buddies; bob.uid is set."""
    alice = make_session(relay, data_dir, "alice")
    bob = make_session(relay, data_dir, "bob")
    for session in (alice, bob):
        await session.register()
        await session.start()
    await buddies(alice, bob)
    assert bob.uid is not None
    return alice, bob


class TransferPeer:
    """A client session plus its transfer manager and a queue of its transfer events."""

    def __init__(
        self,
        relay: RelayProcess,
        tmp: Path,
        name: str,
        options: TransferOptions | None = None,
        *,
        password: str | None = None,
        device: str = "",
    ) -> None:
        self.session = make_session(relay, tmp, name, password=password, device=device)
        self.downloads = tmp / f"{name}-downloads"
        self.downloads.mkdir(exist_ok=True)
        self.manager = TransferManager(
            self.session, data_dir=tmp / name, downloads_dir=self.downloads, options=options
        )
        self.events: asyncio.Queue[TransferEvent] = asyncio.Queue()
        self.manager.add_listener(self.events.put_nowait)

    @property
    def uid(self) -> int:
        assert self.session.uid is not None
        return self.session.uid

    async def next(self, kind: type[E], predicate: Callable[[E], bool] = lambda _: True) -> E:
        """The next event of ``kind`` matching ``predicate``, within WAIT seconds overall."""
        async with asyncio.timeout(WAIT):
            while True:
                event = await self.events.get()
                if isinstance(event, kind) and predicate(event):
                    return event

    async def close(self) -> None:
        await self.manager.close()
        await self.session.close()
