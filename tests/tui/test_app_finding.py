"""Finding things against a real relay at 80x24 (issue 15, item 2): history search in the
open chat and in all chats with hostile text, the highlighted hit, the jump to a message far
back, the "new messages" line and the key that goes to it."""

from __future__ import annotations

import time
from pathlib import Path

from rich.style import Style
from textual.content import Content
from textual.widgets import Input, OptionList

from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, start_peer, wait_until
from tests.tui.test_app_chat import make_buddies
from tests.tui.test_app_rooms import device_peer
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.client.store import LocalStore, history_path
from tui.dialogs.search import SearchDialog
from tui.screens.main import MainScreen
from tui.settings import AppConfig
from tui.widgets.conversation import ConversationView

SIZE = (80, 24)


def shown_lines(view: ConversationView) -> list[str]:
    """The conversation's lines in view now."""
    top = view.scroll_offset.y
    height = view.scrollable_content_region.height
    return [line.plain for line in view.timeline.lines[top : top + height]]


def in_view(view: ConversationView, local_id: int) -> bool:
    head = view.timeline.head_line(local_id)
    top = view.scroll_offset.y
    return head is not None and top <= head < top + view.scrollable_content_region.height


def drawn_as(view: ConversationView, local_id: int | None, text: str) -> Style | None:
    """The style ``text`` is drawn with on the head line of message ``local_id``."""
    head = view.timeline.head_line(local_id or 0)
    assert head is not None
    strip = view.render_line(head - view.scroll_offset.y)
    return next((seg.style for seg in strip if seg.text == text), None)


def highlighted(prompt: Content) -> list[str]:
    """The parts of an option's text drawn as a hit (reverse video)."""
    return [prompt.plain[s.start : s.end] for s in prompt.spans if "reverse" in str(s.style)]


def hits(app: ParleyApp) -> list[Content]:
    dialog = app.screen
    assert isinstance(dialog, SearchDialog)
    options = dialog.query_one("#hits", OptionList)
    prompts = [options.get_option_at_index(i).prompt for i in range(options.option_count)]
    return [p for p in prompts if isinstance(p, Content)]


async def test_search_this_chat_and_all_chats_with_hostile_text(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    carol = await start_peer(relay, tmp_path, "carol")
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            await make_buddies(screen, bob)
            await make_buddies(screen, carol)
            alice, bob_uid, carol_uid = screen.session.uid or 0, bob.uid or 0, carol.uid or 0
            for text in ("[b]x[/b] from bob", "100%_ done", "100 percent", "plain"):
                await bob.wait_outcome(bob.send_text(alice, text).msg_id, timeout=20)
            await carol.wait_outcome(carol.send_text(alice, "[B]X[/B] carol").msg_id, timeout=20)
            store = screen.session.store
            await wait_until(pilot, lambda: len(store.page(carol_uid)) == 1, "carol's message")
            await wait_until(pilot, lambda: len(store.page(bob_uid)) == 4, "bob's messages")
            screen.open_conversation(bob_uid)
            await pilot.pause()

            # /search TEXT in the composer: this chat only; the hit shown literally.
            await pilot.press(*"/search [b]x[/b]", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchDialog), "the dialog")
            await wait_until(pilot, lambda: len(hits(app)) == 1, "one hit in bob's chat")
            prompt = hits(app)[0]
            assert "[b]x[/b] from bob" in prompt.plain and prompt.plain.startswith("bob")
            assert highlighted(prompt) == ["[b]x[/b]"]
            await wait_until(pilot, lambda: "[b]x[/b] from bob" in screen_text(app), "drawn")
            assert "1 hit in this chat" in screen_text(app)

            # Ctrl+A: all chats, newest first, the case folded.
            await pilot.press("ctrl+a")
            await wait_until(pilot, lambda: len(hits(app)) == 2, "two hits in all chats")
            first, second = hits(app)
            assert first.plain.startswith("carol") and highlighted(first) == ["[B]X[/B]"]
            assert second.plain.startswith("bob")

            # "%_" is literal: only the message that holds those two characters.
            query = app.screen.query_one("#query", Input)
            query.value = ""
            await pilot.press(*"%_")
            await wait_until(pilot, lambda: len(hits(app)) == 1, "one literal hit")
            assert "100%_ done" in hits(app)[0].plain
            assert highlighted(hits(app)[0]) == ["%_"]

            # Enter jumps: bob's chat, the message marked and the text highlighted.
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "back")
            view = screen.view
            target = next(e.local_id for e in store.page(bob_uid) if e.text == "100%_ done")
            assert screen.chat.active == bob_uid and view.marked == target
            assert view.search == "%_" and in_view(view, target)
            assert view.has_focus
            assert drawn_as(view, target, "%_") == view._style("hit") + view._style("marked")
            await pilot.press("up")  # the mark lasts until the next key
            await wait_until(pilot, lambda: view.marked is None, "the mark gone")
            assert view.search == "%_"  # the highlight stays while the chat is open
            assert drawn_as(view, target, "%_") == view._style("hit")
            await pilot.press("escape")  # clears it: the text is one plain segment again
            assert drawn_as(view, target, "%_") is None
            assert drawn_as(view, target, "100%_ done") == view._style("text")

            # A hit in another chat opens that chat.
            await pilot.press("ctrl+f")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchDialog), "again")
            await pilot.press("ctrl+a", *"carol", "enter")
            await wait_until(pilot, lambda: screen.chat.active == carol_uid, "carol's chat")
            await wait_until(pilot, lambda: "[B]X[/B] carol" in screen_text(app), "the hit")
    finally:
        await carol.close()


def write_history(
    config: AppConfig, relay: RelayProcess, peer: int, count: int, needle: int
) -> int:
    """``count`` old messages from ``peer`` straight into alice's store (as the bench does),
    message number ``needle`` reading "the needle"; returns its local id."""
    store = LocalStore.open(history_path(config.data_dir, relay.host, relay.port, "alice"))
    start = int(time.time()) - 10 * 86_400
    target = 0
    try:
        for n in range(count):
            text = "the needle" if n == needle else f"filler {n}"
            message = pb.Message(
                uid=peer, type=pb.Message.MESSAGE, msg=text, id=10_000 + n, seq=10_000 + n,
                timestamp=start + n * 60,
            )  # fmt: skip
            entry = store.add_incoming(message, device="history-builder")
            assert entry is not None
            if n == needle:
                target = entry.local_id or 0
        store.mark_read(peer)
        store.commit()
    finally:
        store.close()
    return target


async def test_jump_to_a_message_a_thousand_messages_back(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    config = app_config(tmp_path, relay)
    alice = await start_peer(relay, tmp_path, "alice")  # registered; bob's buddy
    assert alice.uid is not None and bob.uid is not None
    await alice.add_buddy(bob.uid)
    await bob.add_buddy(alice.uid)
    await alice.close()
    bob_uid = bob.uid or 0
    target = write_history(config, relay, bob_uid, 1_200, needle=150)  # 1,049 newer than it

    app = ParleyApp(config)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot, app, "alice", register=False)
        screen.open_conversation(bob_uid)
        view = screen.view
        await wait_until(pilot, lambda: "filler 1199" in screen_text(app), "the newest page")
        assert target not in view.timeline

        await pilot.press("ctrl+f", *"NEEDLE")
        await wait_until(pilot, lambda: len(hits(app)) == 1, "the hit")
        await pilot.press("down", "enter")  # to the list, then pick
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "back")
        await wait_until(pilot, lambda: "bob: the needle" in screen_text(app), "the message")
        assert view.marked == target and in_view(view, target)
        assert view.has_newer and len(view.timeline.entries) < 400  # a window, not it all
        assert any("bob: the needle" in line for line in shown_lines(view))

        # Scrolling down pages newer history in until the newest; a key ends the mark.
        for _ in range(200):
            if not view.has_newer and view.scroll_offset.y >= view.max_scroll_y:
                break
            await pilot.press("pagedown")
            await pilot.pause()
        assert view.marked is None
        await wait_until(pilot, lambda: "filler 1199" in screen_text(app), "the newest again")
        ids = [e.local_id or 0 for e in view.timeline.entries]
        assert ids == sorted(set(ids)) and view.timeline.entries[-1].text == "filler 1199"
        assert [e.text for e in view.timeline.entries].count("filler 151") == 1

        # Reopened, far back again: a message sent from the composer brings the newest
        # page back.
        screen.open_conversation(bob_uid)
        await pilot.press("ctrl+f", *"needle", "enter")
        await wait_until(pilot, lambda: view.marked == target and view.has_newer, "back there")
        await pilot.press("right", *"back to now", "enter")  # → the composer, then send
        await wait_until(pilot, lambda: "alice: back to now" in screen_text(app), "sent, shown")
        assert not view.has_newer and view.timeline.entries[-1].text == "back to now"


async def test_new_messages_line_and_the_key_that_goes_there(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot, app, "alice")
        await make_buddies(screen, bob)
        alice, bob_uid = screen.session.uid or 0, bob.uid or 0
        await wait_until(pilot, lambda: bob_uid in screen.chat.buddies, "bob a buddy")

        # Read history first, then 150 messages while the chat is closed.
        screen.open_conversation(bob_uid)
        for n in range(3):
            await bob.wait_outcome(bob.send_text(alice, f"read {n}").msg_id, timeout=20)
        await wait_until(pilot, lambda: "bob: read 2" in screen_text(app), "read messages")
        screen.close_conversation()
        sent = [bob.send_text(alice, f"new {n}") for n in range(150)]
        for entry in sent:
            await bob.wait_outcome(entry.msg_id, timeout=30)
        await wait_until(pilot, lambda: screen.chat.unread.get(bob_uid) == 150, "150 unread")

        screen.open_conversation(bob_uid)
        view = screen.view
        await wait_until(pilot, lambda: "bob: new 149" in screen_text(app), "the newest")
        first_new = next(
            e for e in screen.session.store.page(bob_uid, limit=200) if e.text == "new 0"
        )
        assert view.timeline.marker == first_new.local_id
        assert view.timeline.marker_line() is None  # 150 back: not on the first page

        # Ctrl+G (from the composer) goes to the line, loading its page.
        assert screen.composer.has_focus
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: "new messages" in screen_text(app), "the line shown")
        index = view.timeline.marker_line()
        assert index is not None
        lines = view.timeline.lines
        assert "bob: read 2" in lines[index - 1].plain and "bob: new 0" in lines[index + 1].plain
        shown = shown_lines(view)
        marker_row = next(i for i, line in enumerate(shown) if "new messages" in line)
        assert "bob: new 0" in shown[marker_row + 1]
        assert screen.chat.unread.get(bob_uid) == 0  # opened: read, the line stays

        # A message arriving now does not move the line; without a marker the key says so.
        await bob.wait_outcome(bob.send_text(alice, "live one").msg_id, timeout=20)
        await wait_until(
            pilot,
            lambda: screen.session.store.page(bob_uid, limit=1)[0].text == "live one",
            "stored",
        )
        assert view.timeline.marker == first_new.local_id
        screen.open_conversation(bob_uid)  # reopened with nothing unread: no line
        assert view.timeline.marker is None
        app.clear_notifications()
        await pilot.press("ctrl+g")
        await wait_until(
            pilot,
            lambda: any("No new messages" in str(n.message) for n in app._notifications),
            "the toast",
        )


async def test_a_hit_in_a_room_opens_the_room_at_it(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await device_peer(relay, tmp_path, "bob")  # rooms need a device session
    try:
        app = ParleyApp(app_config(tmp_path, relay))
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            await make_buddies(screen, bob)
            alice = screen.session.uid or 0
            ops = await bob.create_room("ops")
            assert ops.room is not None
            room = ops.room.id
            assert (await bob.invite(room, alice)).ok
            await wait_until(pilot, lambda: screen.session.rooms.get(room) is not None, "invited")
            assert (await screen.session.join(room)).ok
            await bob.wait_outcome(bob.send_room_text(room, "deploy [/] at 5").msg_id, timeout=20)
            await bob.wait_outcome(bob.send_text(alice, "nothing here").msg_id, timeout=20)
            store = screen.session.store
            await wait_until(pilot, lambda: len(store.page(-room)) >= 1, "the room message")
            screen.open_conversation(bob.uid or 0)  # another chat is open: search them all

            await pilot.press("ctrl+f", *"[/]")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchDialog), "the dialog")
            assert "0 hits in this chat" in screen_text(app)
            await pilot.press("ctrl+a")
            await wait_until(pilot, lambda: len(hits(app)) == 1, "the room's hit")
            assert hits(app)[0].plain.startswith("#ops  bob")
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.chat.active == -room, "the room open")
            view = screen.view
            target = next(e.local_id for e in store.page(-room) if e.text == "deploy [/] at 5")
            assert view.marked == target and in_view(view, target or 0)
            await wait_until(pilot, lambda: "bob: deploy [/] at 5" in screen_text(app), "drawn")
    finally:
        await bob.close()
