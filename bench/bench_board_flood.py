"""The drawing board under a flood: 10,000 incoming segments, input latency meanwhile, restore.

Usage: python -m bench.bench_board_flood [--segments 10000] [--size 120x40] [--probe-ms 20]

Starts the real relay (TLS), runs the real ``ParleyApp`` headless (Textual's pilot) logged in
as alice with the board of her chat with bob open, and has bob — a minimal blocking wire
client in a thread, so the sender costs the app almost nothing — send N GRAPHICS segments
(random strokes of 1-5 cells with random brushes, 1 % off the board) in one burst. Prints:

- flood: first segment drawn → last segment drawn, and → the screen painted after it, with
  the segments/s the app sustained;
- input latency during the flood: a key (←/→, moving the board cursor) is sent every
  ``--probe-ms`` through the app's driver, as a terminal would; the time from sending it to
  the canvas handling it, compared with the same probe on an idle app;
- restore: alice quits, bob sends another N while she is away; she logs in again (backlog
  replayed) and opens the board: the time to open it (snapshot + replay of the newer
  entries), then reopening from a fresh snapshot, and a full replay of all 2N entries with
  the snapshots deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from textual import events
from textual.pilot import Pilot

from bench import benchlib
from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.types import FrameType
from tests.tui.pilot import app_config, log_in, wait_until
from tui.app import ParleyApp
from tui.client.history import HistoryEntry
from tui.screens.main import MainScreen
from tui.state.board_book import BoardBook
from tui.widgets.board_canvas import BoardCanvas

PASSWORD = "correct horse"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def strokes(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        off = rng.random() < 0.01
        x0 = rng.randint(-40, 120) if off else rng.randint(0, 79)
        y0 = rng.randint(-20, 45) if off else rng.randint(0, 23)
        x1, y1 = x0 + rng.randint(-4, 4), y0 + rng.randint(-2, 2)
        texts.append(f"{x0},{y0},{x1},{y1},{rng.choice('#*.o█─│')}")
    return texts


def send_burst(client: benchlib.WireClient, to: int, texts: list[str]) -> threading.Thread:
    data = b"".join(
        encode_frame(FrameType.MESSAGE, pb.Message(uid=to, type=pb.Message.GRAPHICS, msg=t))
        for t in texts
    )

    def run() -> None:
        client.send_raw(data)
        client.round_trip()  # everything sent has been processed by the relay

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class Probe:
    """Key → handled by the canvas, measured by wrapping its move action."""

    def __init__(self, app: ParleyApp, canvas: BoardCanvas) -> None:
        self.app = app
        self.canvas = canvas
        self.waiter: asyncio.Future[float] | None = None
        original = canvas.action_move

        def action_move(dx: int, dy: int) -> None:
            original(dx, dy)
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(time.perf_counter())

        canvas.action_move = action_move  # type: ignore[method-assign]
        self.right = True

    async def once(self) -> float:
        self.waiter = asyncio.get_running_loop().create_future()
        key = "right" if self.right else "left"
        self.right = not self.right
        driver = self.app._driver
        assert driver is not None
        t0 = time.perf_counter()
        driver.send_message(events.Key(key, None))
        return await asyncio.wait_for(self.waiter, 30) - t0

    async def run_while(
        self, busy: asyncio.Event, done: asyncio.Event, every: float
    ) -> list[float]:
        await busy.wait()
        samples = []
        while not done.is_set():
            samples.append(await self.once())
            await asyncio.sleep(every)
        return samples


def timed_loads() -> list[tuple[int, float]]:
    """Record (entries replayed, seconds) of every board load from now on."""
    loads: list[tuple[int, float]] = []
    original = BoardBook._load

    def load(self: BoardBook, peer: int) -> object:
        t0 = time.perf_counter()
        result = original(self, peer)
        report = self.last_load
        loads.append((report.replayed if report else -1, time.perf_counter() - t0))
        return result

    BoardBook._load = load  # type: ignore[method-assign,assignment]
    return loads


def paint(app: ParleyApp) -> None:
    app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)


async def open_board(pilot: Pilot[object], screen: MainScreen, peer: int) -> BoardCanvas:
    screen.open_conversation(peer)
    await pilot.press("f2")
    await wait_until(pilot, lambda: screen.pane_ready("board"), "the Board pane built")
    canvas = screen.board_pane.canvas
    await wait_until(pilot, lambda: screen.app.focused is canvas, "the board")
    return canvas


async def run(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    n = args.segments
    with tempfile.TemporaryDirectory() as tmp, benchlib.RelayProcess(Path(tmp) / "relay") as relay:
        tls = not relay.plaintext
        alice_wire = benchlib.WireClient(relay.host, relay.port, tls=tls)
        alice_wire.register("alice", PASSWORD)
        alice_wire.login("alice", PASSWORD)
        bob = benchlib.WireClient(relay.host, relay.port, tls=tls, timeout=120)
        bob.register("bob", PASSWORD)
        bob.login("bob", PASSWORD)
        benchlib.make_buddies(alice_wire, bob)
        alice_wire.close()
        config = app_config(Path(tmp), relay)

        # --- 1. live flood with key probes ------------------------------------------------
        app = ParleyApp(config)
        async with app.run_test(size=(width, height)) as pilot:
            app.animation_level = "none"
            screen = await log_in(pilot, app, "alice", register=False)
            alice = screen.session.uid or 0
            canvas = await open_board(pilot, screen, bob.uid)
            probe = Probe(app, canvas)
            idle = [await probe.once() for _ in range(50)]

            seen = 0
            first = last = 0.0
            busy, done = asyncio.Event(), asyncio.Event()
            incoming = screen.board_pane.incoming

            def counting(entry: HistoryEntry) -> None:
                nonlocal seen, first, last
                incoming(entry)
                seen += 1
                if seen == 1:
                    first = time.perf_counter()
                    busy.set()
                if seen == n:
                    last = time.perf_counter()
                    done.set()

            screen.board_pane.incoming = counting  # type: ignore[method-assign]
            probes = asyncio.create_task(probe.run_while(busy, done, args.probe_ms / 1000))
            t_send = time.perf_counter()
            sender = send_burst(bob, alice, strokes(n, 1))
            await asyncio.wait_for(done.wait(), 300)
            await pilot.pause()
            paint(app)
            painted = time.perf_counter()
            during = await probes
            sender.join()
            print(f"terminal {width}x{height}, board view {canvas.scrollable_content_region.size}")
            print(
                f"flood: {n:,} segments; burst sent → first drawn {ms(first - t_send)}; "
                f"first → last drawn {ms(last - first)} ({n / (last - first):,.0f} segments/s); "
                f"→ painted {ms(painted - first)}"
            )
            print(f"key → handled, idle app:       {benchlib.summarize_ms(idle)}")
            print(
                f"key → handled, during flood:   {benchlib.summarize_ms(during)} "
                f"(a probe every {args.probe_ms} ms)"
            )
            t0 = time.perf_counter()
            for _ in range(20):
                paint(app)
            print(
                f"paint the whole screen with a full board: {ms((time.perf_counter() - t0) / 20)}"
            )
            await pilot.press("ctrl+q")

        # --- 2. backlog while away, then restore ------------------------------------------
        send_burst(bob, alice, strokes(n, 2)).join()
        loads = timed_loads()
        app = ParleyApp(config)
        async with app.run_test(size=(width, height)) as pilot:
            t0 = time.perf_counter()
            screen = await log_in(pilot, app, "alice", register=False)
            store = screen.session.store
            await wait_until(pilot, lambda: store.count(bob.uid) >= 2 * n, "backlog", 300)
            await pilot.pause(0.5)
            print(
                f"login with a backlog of {n:,} segments → all stored: "
                f"{ms(time.perf_counter() - t0)}"
            )
            t0 = time.perf_counter()
            await open_board(pilot, screen, bob.uid)  # the board is read when first shown
            paint(app)
            print(
                f"open the chat and show its board (F2) after the backlog: → painted "
                f"{ms(time.perf_counter() - t0)}"
            )
            for replayed, seconds in loads:
                print(
                    f"  board loaded when shown: snapshot + "
                    f"{replayed:,} newer entries replayed in {ms(seconds)}"
                )
            book = screen.board_pane.book
            loads.clear()
            book.save_all()
            BoardBook(store).board(bob.uid)
            ((replayed, seconds),) = loads
            print(f"open from a fresh snapshot ({replayed} newer entries): {ms(seconds)}")
            store._db.execute("DELETE FROM snapshots")
            loads.clear()
            BoardBook(store).board(bob.uid)
            ((replayed, seconds),) = loads
            print(f"full replay, no snapshot ({replayed:,} entries): {ms(seconds)}")
            await pilot.press("ctrl+q")
        bob.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--size", default="120x40", help="terminal WIDTHxHEIGHT")
    parser.add_argument("--probe-ms", type=float, default=20.0)
    args = parser.parse_args()
    print(benchlib.machine_description())
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
