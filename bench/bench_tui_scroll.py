"""Conversation scrolling in the TUI with 10,000 messages: open time and page-scroll time.

Usage: python -m bench.bench_tui_scroll [--messages 10000] [--size 120x40] [--pages 200]

Builds a history database of N messages (mixed lengths, both directions, over ~30 days),
runs the real ``ParleyApp`` headless (Textual's pilot) with the real ``MainScreen`` on a
session that is not connected (no relay is needed to read history), then prints:

- open: ``open_conversation`` (newest page from SQLite + layout) and open → painted screen;
- baseline: a key bound to nothing, the same way (the pilot's own round trip);
- page up: one PageUp key → events processed → full screen painted (animations off, so the
  figure is the work, not the animation's duration), over ``--pages`` pages, crossing
  the boundaries where older pages are loaded from the store;
- the cost of drawing one screenful (``render_line`` for every visible line);
- a state change (✓ → ✓✓) on a shown message;
- scrolling all the way to the oldest message (loads every page).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from bench import benchlib
from protocol import chat_pb2 as pb
from tui.app import ParleyApp
from tui.client.connection import Endpoint
from tui.client.events import Buddy, BuddyListChanged
from tui.client.session import ClientSession
from tui.client.store import LocalStore, history_path
from tui.client.trust import TrustPolicy
from tui.messages import SessionEvent
from tui.screens.main import MainScreen
from tui.settings import AppConfig
from tui.widgets.conversation import ConversationView

PEER = 2
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed")


def build_history(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    store = LocalStore.open(path)
    store.set_peer_names([(PEER, "bob")])
    start = time.time() - 30 * 86_400
    step = 30 * 86_400 / count
    for i in range(count):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.choice((3, 8, 20, 60))))
        now = start + i * step
        if i % 2:
            entry = store.add_outgoing(PEER, pb.Message.MESSAGE, text=f"{i} {text}", now=now)
            store.mark_sent(entry.msg_id, 0)
        else:
            message = pb.Message(
                uid=PEER,
                type=pb.Message.MESSAGE,
                msg=f"{i} {text}",
                id=i + 1,
                seq=i + 1,
                timestamp=int(now),
            )
            store.add_incoming(message)
    store.mark_read(PEER)
    store.commit()
    store.close()


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    pick = lambda f: ordered[min(len(ordered) - 1, int(f * len(ordered)))]  # noqa: E731
    return (
        f"n={len(ordered)}, p50 {ms(pick(0.5))}, p90 {ms(pick(0.9))}, "
        f"p99 {ms(pick(0.99))}, max {ms(ordered[-1])}"
    )


def paint(app: ParleyApp) -> None:
    """Render the whole screen as the driver would (every visible line of every widget)."""
    app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)


async def run(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        endpoint = Endpoint("127.0.0.1", 1)
        t0 = time.perf_counter()
        build_history(history_path(data, endpoint.host, endpoint.port, "alice"), args.messages)
        print(f"history: {args.messages:,} messages written in {time.perf_counter() - t0:.1f} s")
        session = ClientSession(
            endpoint, "alice", "x", trust=TrustPolicy.plaintext(), data_dir=data
        )
        app = ParleyApp(
            AppConfig(
                data_dir=data, settings_path=Path(tmp) / "s.json", known_relays=Path(tmp) / "k"
            )
        )
        async with app.run_test(size=(width, height)) as pilot:
            app.animation_level = "none"
            screen = MainScreen(session)
            await app.switch_screen(screen)
            await pilot.pause()
            bob = Buddy(PEER, "bob", True, pb.User.BUDDY, 2)
            screen.post_message(SessionEvent(BuddyListChanged((bob,))))
            await pilot.pause()
            view = screen.query_one(ConversationView)

            t0 = time.perf_counter()
            screen.open_conversation(PEER)
            t1 = time.perf_counter()
            await pilot.pause()
            paint(app)
            t2 = time.perf_counter()
            print(
                f"terminal {width}x{height}, conversation view {view.size.width}x"
                f"{view.size.height}, {len(view.timeline.entries)} messages loaded at open"
            )
            print(f"open: open_conversation {ms(t1 - t0)}; open → painted screen {ms(t2 - t0)}")

            draws = []
            for _ in range(50):
                t0 = time.perf_counter()
                for y in range(view.size.height):
                    view.render_line(y)
                draws.append(time.perf_counter() - t0)
            print(
                f"draw one screenful of the view (render_line x{view.size.height}): "
                f"{percentiles(draws)}"
            )

            view.focus()
            await pilot.pause()
            idle = []
            for _ in range(50):
                t0 = time.perf_counter()
                await pilot.press("f12")  # bound to nothing: the pilot's own round trip
                paint(app)
                idle.append(time.perf_counter() - t0)
            print(
                f"baseline, a key bound to nothing (key → processed → painted): {percentiles(idle)}"
            )
            pages = []
            for _ in range(args.pages):
                t0 = time.perf_counter()
                await pilot.press("pageup")
                paint(app)
                pages.append(time.perf_counter() - t0)
            print(
                f"page up (key → processed → painted): {percentiles(pages)}; "
                f"{len(view.timeline.entries):,} messages loaded after {args.pages} pages"
            )

            outgoing = [e for e in view.timeline.entries[-40:] if e.outgoing]
            entry = session.store.mark_delivered(outgoing[-1].msg_id)
            assert entry is not None
            await pilot.press("end")
            t0 = time.perf_counter()
            view.add(entry)
            await pilot.pause()
            paint(app)
            print(
                f"state change ✓ → ✓✓ on a visible message → painted: "
                f"{ms(time.perf_counter() - t0)}"
            )

            t0 = time.perf_counter()
            loads = 0
            while view.has_more:
                view.scroll_to(y=0, animate=False)
                await pilot.pause()
                loads += 1
            await pilot.press("home")
            paint(app)
            print(
                f"scroll to the oldest message ({loads} page loads, "
                f"{len(view.timeline.entries):,} messages, {len(view.timeline):,} lines): "
                f"{ms(time.perf_counter() - t0)}"
            )
            await pilot.press("ctrl+q")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", default="120x40", help="terminal WIDTHxHEIGHT")
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    print(benchlib.machine_description())
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
