"""The outbox and failed messages (issue 15): a message written while the relay is down
keeps the time it was written once it goes out; Ctrl+R re-sends every failed message of
the conversation, not only those loaded on screen. Against a real relay."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, wait_until
from tui.app import ParleyApp
from tui.client.events import ConnectionState
from tui.client.history import MessageState
from tui.client.session import ClientSession
from tui.display import format_clock
from tui.screens.main import MainScreen
from tui.widgets.conversation import FIRST_PAGE


async def befriend(screen: MainScreen, peer: ClientSession) -> None:
    await screen.session.add_buddy(peer.uid or 0)
    await peer.add_buddy(screen.session.uid or 0)
    await peer.wait_synced(timeout=10)


async def test_a_message_written_offline_keeps_its_time(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        alice = screen.session.uid or 0
        await befriend(screen, bob)
        await wait_until(pilot, lambda: bob.uid in screen.chat.buddies, "bob a buddy")
        screen.open_conversation(bob.uid or 0)

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, relay.stop)
        await wait_until(pilot, lambda: not screen.session.connected, "the relay gone")
        await pilot.press(*"written offline", "enter")
        await wait_until(pilot, lambda: len(screen.view.timeline.entries) == 1, "in the outbox")
        (written,) = screen.view.timeline.entries
        assert written.state is MessageState.PENDING
        # The relay comes back in a later second than the message was written, so the time
        # the relay stamps on it differs from the written one.
        await wait_until(pilot, lambda: int(time.time()) > written.timestamp, "a second later")
        await loop.run_in_executor(None, relay.start)

        def sent() -> bool:
            entry = screen.session.store.get(written.local_id or 0)
            return entry is not None and entry.state in (MessageState.SENT, MessageState.DELIVERED)

        await wait_until(pilot, sent, "sent after the relay came back", timeout=30)
        await wait_until(pilot, lambda: bob.store.count(alice) == 1, "bob has it", timeout=30)
        (at_bob,) = bob.store.page(alice)
        assert at_bob.timestamp > written.timestamp  # the relay's time: when it went out
        stored = screen.session.store.get(written.local_id or 0)
        assert stored is not None and stored.timestamp == written.timestamp
        (shown,) = screen.view.timeline.entries
        assert shown.timestamp == written.timestamp
        head = screen.view.timeline.lines[screen.view.timeline.head_line(shown.local_id or 0) or 0]
        assert head.plain.startswith(format_clock(written.timestamp))
        # A new page load (reopening the chat) shows the written time too.
        screen.open_conversation(bob.uid or 0)
        assert [e.timestamp for e in screen.view.timeline.entries] == [written.timestamp]


async def test_ctrl_r_resends_every_failed_message_of_the_chat(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    count = 3 * FIRST_PAGE  # more than the view loads at first
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        alice, bob_uid = screen.session.uid or 0, bob.uid or 0
        store = screen.session.store
        # Sent before bob is a buddy: the relay refuses each one (NOT_BUDDY) → FAILED.
        for i in range(count):
            screen.session.send_text(bob_uid, f"message {i}")
        await wait_until(pilot, lambda: len(store.failed(bob_uid)) == count, "all failed")

        await befriend(screen, bob)
        await wait_until(pilot, lambda: bob.uid in screen.chat.buddies, "bob a buddy")
        screen.open_conversation(bob_uid)
        await pilot.pause()
        assert len(screen.view.timeline.entries) == FIRST_PAGE < count

        await pilot.press("ctrl+r")
        await wait_until(
            pilot, lambda: bob.store.count(alice) == count, "bob has every one", timeout=60
        )
        assert [e.text for e in bob.store.page(alice, limit=count)] == [
            f"message {i}" for i in range(count)
        ]
        await wait_until(pilot, lambda: store.failed(bob_uid) == [], "none failed any more")
        assert screen.session.state is ConnectionState.CONNECTED
