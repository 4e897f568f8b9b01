"""Memory of the terminal client: RSS after login with a 10,000-message conversation open.

Usage: python -m bench.bench_tui_memory [--messages 10000] [--size 80x24] [--top 15]

Each figure comes from a fresh Python process (``--child``), so one measurement never
inherits another's heap:

- ``bare``: a bare Textual app (one ``Static``) run headless (``App.run_test``): the floor
  any Textual client pays;
- ``parley``: the real ``ParleyApp`` headless, logged in through its login form on a real
  relay (TLS, a fresh data dir, the relay in its own process), with a history database of
  ``--messages`` messages with one peer built beforehand, then that conversation opened.

Printed: VmRSS (and VmHWM, the peak) of each child after a full garbage collection, and for
``parley`` with ``--top N`` the N biggest allocation sites still alive (tracemalloc, by file
and line; tracing slows the run and adds its own overhead, so the RSS figure is taken in a
separate run without it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

from bench.benchlib import machine_description


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _measure() -> dict[str, int]:
    gc.collect()
    fields = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
    return {field: _status_kib(field) for field in fields}


async def _bare(size: tuple[int, int]) -> dict[str, int]:
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")

    app = Bare()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        return _measure()


async def _parley(args: argparse.Namespace, size: tuple[int, int]) -> dict[str, object]:
    from bench.bench_tui_scroll import PEER
    from tests.tui.pilot import FAST, log_in, wait_until
    from tui.app import ParleyApp
    from tui.settings import AppConfig

    base = Path(args.base)
    config = AppConfig(
        host=args.host,
        port=args.port,
        data_dir=base / "data",
        known_relays=base / "known_relays",
        settings_path=base / "tui.json",
        session_options=FAST,
    )
    app = ParleyApp(config)
    async with app.run_test(size=size) as pilot:
        screen = await log_in(pilot, app, "alice")
        screen.open_conversation(PEER)
        await wait_until(pilot, lambda: len(screen.view.timeline) > 0, "the history")
        await pilot.pause()
        result: dict[str, object] = dict(_measure())
        result["lines_shown"] = len(screen.view.timeline)
        result["widgets"] = len(list(screen.query("*")))
        if args.top:
            stats = tracemalloc.take_snapshot().statistics("filename")
            result["traced_kib"] = sum(s.size for s in stats) // 1024
            result["top"] = [
                f"{s.size // 1024:>7} KiB {s.count:>7} blocks  {s.traceback[0]}"
                for s in stats[: args.top]
            ]
        if not args.top:  # then the whole history paged in, as scrolling to the top does
            while screen.view.load_older():
                pass
            await pilot.pause()
            scrolled = _measure()
            result["scrolled_rss_kib"] = scrolled["VmRSS"]
            result["scrolled_lines"] = len(screen.view.timeline)
        await app.action_quit()
    return result


def _child(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    if args.child == "bare":
        result: dict[str, object] = dict(asyncio.run(_bare((width, height))))
    else:
        result = asyncio.run(_parley(args, (width, height)))
    print(json.dumps(result))


def _run_child(kind: str, args: argparse.Namespace, *extra: str) -> dict[str, object]:
    command = [sys.executable, "-m", "bench.bench_tui_memory", "--child", kind]
    command += ["--size", args.size, *extra]
    env = dict(os.environ, PYTHONTRACEMALLOC="1") if "--top" in extra and extra[-1] != "0" else None
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _parley_run(args: argparse.Namespace, top: int) -> dict[str, object]:
    """A fresh relay and data dir with the history built here (not in the measured child)."""
    from bench.bench_tui_scroll import build_history
    from tests.harness import RelayProcess
    from tui.client.store import history_path

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        relay = RelayProcess(base / "relay")
        relay.start()
        try:
            path = history_path(base / "data", relay.host, relay.port, "alice")
            path.parent.mkdir(parents=True, mode=0o700)
            build_history(path, args.messages)
            extra = ["--host", relay.host, "--port", str(relay.port), "--base", str(base)]
            return _run_child("parley", args, *extra, "--top", str(top))
        finally:
            relay.stop()


def _describe(figures: dict[str, object]) -> str:
    mib = {key: int(str(value)) / 1024 for key, value in figures.items() if key.startswith("V")}
    mib.update({k: int(str(v)) / 1024 for k, v in figures.items() if k.startswith("Rss")})
    return (
        f"RSS {mib['VmRSS']:.1f} MiB (peak {mib['VmHWM']:.1f}): private (anonymous) "
        f"{mib['RssAnon']:.1f} MiB, file-backed {mib['RssFile']:.1f} MiB (program and "
        f"libraries, shared between processes), shared memory {mib['RssShmem']:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--top", type=int, default=15, help="allocation sites to list (0: none)")
    parser.add_argument("--child", choices=("bare", "parley"), help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    print(machine_description())
    bare = _run_child("bare", args)
    print(f"bare Textual app: {_describe(bare)}")
    parley = _parley_run(args, top=0)
    print(f"Parley after login, {args.messages:,}-message conversation open: {_describe(parley)}")
    print(f"  ({parley['lines_shown']} conversation lines laid out, {parley['widgets']} widgets)")
    print(
        f"after paging in the whole history ({parley['scrolled_lines']} lines): "
        f"RSS {int(str(parley['scrolled_rss_kib'])) / 1024:.1f} MiB"
    )
    if args.top:
        traced = _parley_run(args, top=args.top)
        print(f"tracemalloc: {traced['traced_kib']} KiB alive in Python objects; biggest sites:")
        for line in traced["top"]:  # type: ignore[attr-defined]
            print(f"  {line}")


if __name__ == "__main__":
    main()
