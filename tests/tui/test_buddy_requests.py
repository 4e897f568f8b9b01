"""``BuddyRequests`` against the real relay: each request's outcome as the notice shown."""

from __future__ import annotations

from pathlib import Path

from tests.harness import RelayProcess
from tests.tui.conftest import start_peer
from tui.buddy_requests import BuddyRequests
from tui.state.chat import Notice


async def test_requests_accepts_declines_and_removals_are_told_in_words(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice = await start_peer(relay, tmp_path, "alice")
    bob = await start_peer(relay, tmp_path, "bob")
    carol = await start_peer(relay, tmp_path, "carol")
    try:
        assert alice.uid is not None and bob.uid is not None and carol.uid is not None
        at_alice, at_bob, at_carol = (BuddyRequests(s) for s in (alice, bob, carol))
        assert await at_alice.add(bob.uid, "bob") == Notice("Buddy request sent to bob.")
        assert await at_bob.add(alice.uid, "alice") == Notice("You and alice are now buddies.")
        assert await at_carol.add(bob.uid, "bob") == Notice("Buddy request sent to bob.")
        declined = await at_bob.remove(carol.uid, "carol", declined=True)
        assert declined == Notice("Declined carol's request.")
        removed = await at_alice.remove(bob.uid, "bob")
        assert removed == Notice("bob removed from your buddies.")
        await at_alice.refresh()
    finally:
        for session in (alice, bob, carol):
            await session.close()


async def test_a_request_on_a_closed_session_is_an_error_notice_not_a_crash(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice = await start_peer(relay, tmp_path, "alice")
    bob = await start_peer(relay, tmp_path, "bob")
    await bob.close()
    await alice.close()
    assert bob.uid is not None
    requests = BuddyRequests(alice)
    added = await requests.add(bob.uid, "bob")
    assert added.severity == "error" and added.text.startswith("Adding bob failed: ")
    removed = await requests.remove(bob.uid, "bob")
    assert removed.severity == "error" and removed.text.startswith("Removing bob failed: ")
    await requests.refresh()  # failures of a refresh are ignored
