"""``ClientFeed`` with real sessions and a real transfer engine against the real relay: the
snapshot comes first, then session and transfer events by one path, until the session ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from tests.harness import RelayProcess
from tests.tui.client.sessions import TransferPeer, buddies
from tests.tui.conftest import PASSWORD
from tui.client.events import MessageReceived
from tui.client.transfer.events import TransferOffered, TransferUpdated
from tui.feed import ClientFeed, FeedItem, TransfersLoaded

WAIT = 30.0


async def start(relay: RelayProcess, tmp_path: Path, name: str) -> TransferPeer:
    peer = TransferPeer(relay, tmp_path, name, password=PASSWORD)
    await peer.session.register()
    await peer.session.start()
    return peer


async def collect(items: AsyncIterator[FeedItem], until: int) -> list[FeedItem]:
    """Items until ``until`` of them matched what the test waits for (see ``wanted``)."""
    seen: list[FeedItem] = []
    async with asyncio.timeout(WAIT):
        while sum(wanted(item) for item in seen) < until:
            seen.append(await anext(items))
    return seen


def wanted(item: FeedItem) -> bool:
    if isinstance(item, MessageReceived):
        return item.entry.text == "hi alice"
    return isinstance(item, TransferOffered | TransferUpdated) and item.transfer.name == "b.txt"


async def test_the_feed_starts_with_a_snapshot_then_merges_session_and_transfer_events(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice = await start(relay, tmp_path, "alice")
    bob = await start(relay, tmp_path, "bob")
    feed: ClientFeed | None = None
    try:
        await buddies(alice.session, bob.session)
        await bob.session.list_buddies()
        first_file, second_file = tmp_path / "a.txt", tmp_path / "b.txt"
        first_file.write_bytes(b"a" * 1000)
        second_file.write_bytes(b"b" * 1000)
        first = await alice.manager.offer(bob.uid, first_file)

        feed = ClientFeed(alice.session.events(), alice.manager)
        items = aiter(feed)
        loaded = await anext(items)
        assert isinstance(loaded, TransfersLoaded)
        assert [t.id for t in loaded.transfers] == [first.id]

        bob.session.send_text(alice.uid, "hi alice")
        await alice.manager.offer(bob.uid, second_file)
        seen = await collect(items, until=2)
        assert any(isinstance(item, MessageReceived) for item in seen)
        assert any(isinstance(item, TransferOffered | TransferUpdated) for item in seen)
        assert not any(isinstance(item, TransfersLoaded) for item in seen)  # only the first

        await alice.session.close()
        async with asyncio.timeout(WAIT):
            async for _ in items:
                pass  # the feed ends with the session's stream
    finally:
        if feed is not None:
            feed.close()
        await alice.close()
        await bob.close()
