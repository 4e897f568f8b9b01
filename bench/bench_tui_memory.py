"""Memory of the terminal client: RSS after login with a 10,000-message conversation open.

Usage: python -m bench.bench_tui_memory [--messages 10000] [--size 80x24] [--runs 3] [--top 15]

Each figure comes from a fresh Python process (``--child``), so one measurement never
inherits another's heap, and that process imports only what the program it stands for
imports (this module's top level is standard library only; the relay, the test helpers and
the history builder stay in the parent):

- ``bare``: a bare Textual app (one ``Static``) run headless (``App.run_test``): the floor
  any Textual client pays;
- ``tls``: ``parley`` as a user starts it (``tui.cli`` parses ``--host/--port/--fingerprint``
  into the config), headless, logging in through its login form over TLS to a real relay
  (its own process, a fresh data dir) as an existing account whose history database holds
  ``--messages`` messages with one peer, then that conversation opened;
- ``socket``: the same on the relay's own box, where ``parley`` finds the relay's Unix socket
  and logs in there (PROTOCOL.md section 11: no TLS, no login form).

Printed: VmRSS of each child after a full garbage collection (the median of ``--runs`` runs,
every run listed, and for the median run the split into private and file-backed pages),
the modules the child imported, for ``socket`` the RSS after ``FOCUS_CHANGES`` focus
changes (a while of use: Textual's footer recomposes on each), for ``tls`` the RSS after
paging in the whole history (as scrolling to the top does) and, with ``--top N``, the N
biggest allocation sites still alive (tracemalloc, by file; tracing slows the run and adds
its own overhead, so that is a separate run whose RSS is not reported).
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PASSWORD = "correct horse"
WAIT_SECONDS = 60.0
FOCUS_CHANGES = (
    200  # Textual's footer recomposes on each; it leaked its keys (tui/widgets/footer.py)
)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _measure() -> dict[str, Any]:
    gc.collect()
    fields = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
    figures: dict[str, Any] = {field: _status_kib(field) for field in fields}
    figures["modules"] = len(sys.modules)
    return figures


async def _wait(pilot: Any, predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def _bare(size: tuple[int, int]) -> dict[str, Any]:
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")

    app = Bare()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        return _measure()


async def _parley(args: argparse.Namespace, size: tuple[int, int]) -> dict[str, Any]:
    """``parley`` headless: what ``tui.cli.main`` does, with ``run_test`` instead of ``run``."""
    from dataclasses import replace

    from tui.cli import build_parser, config_from_args

    base = Path(args.base)
    argv = ["--data-dir", str(base / "data"), "--known-relays", str(base / "known_relays")]
    if args.child == "tls":
        argv += ["--host", args.host, "--port", str(args.port), "--fingerprint", args.fingerprint]
        argv += ["--user", args.user]
    config = config_from_args(build_parser().parse_args(argv))
    config = replace(config, settings_path=base / "tui.json")  # not the user's own settings

    from textual.css.query import NoMatches
    from textual.widgets import Input

    from tui.app import ParleyApp  # as tui.cli.main imports it
    from tui.screens.login import LoginScreen
    from tui.screens.main import MainScreen

    app = ParleyApp(config)
    async with app.run_test(size=size) as pilot:
        if args.child == "tls":
            await _wait(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
            app.screen.query_one("#password", Input).value = PASSWORD
            # Ctrl+L's action, run as the key binding runs it: Pilot.press would first look
            # the key's name up in the Unicode database (textual.app._press_keys), 0.7 MiB
            # of unicodedata's pages a key typed on a terminal never touches.
            await app.screen.run_action("submit")

        def mounted() -> bool:  # on_mount titles the conversation
            screen = app.screen
            if not isinstance(screen, MainScreen):
                return False
            try:
                return screen.view.border_title == "Conversation"
            except NoMatches:  # not composed yet
                return False

        await _wait(pilot, mounted, "the main screen")
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.open_conversation(args.peer)
        await _wait(pilot, lambda: len(screen.view.timeline) > 0, "the history")
        await pilot.pause()
        result = _measure()
        result["lines_shown"] = len(screen.view.timeline)
        result["widgets"] = len(list(screen.query("*")))
        if args.top:
            import tracemalloc

            stats = tracemalloc.take_snapshot().statistics("filename")
            result["traced_kib"] = sum(s.size for s in stats) // 1024
            result["top"] = [
                f"{s.size // 1024:>7} KiB {s.count:>7} blocks  {s.traceback[0]}"
                for s in stats[: args.top]
            ]
        elif args.child == "tls":  # then the whole history paged in, as scrolling up does
            while screen.view.load_older():
                pass
            await pilot.pause()
            result["scrolled_rss_kib"] = _measure()["VmRSS"]
            result["scrolled_lines"] = len(screen.view.timeline)
        else:  # then a while of use: the focus moved around the panes, as Tab does
            for _ in range(FOCUS_CHANGES):
                screen.focus_next()
                await pilot.pause()
            result["used_rss_kib"] = _measure()["VmRSS"]
        await app.action_quit()
    return result


def _child(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    if args.child == "bare":
        result = asyncio.run(_bare((width, height)))
    else:
        result = asyncio.run(_parley(args, (width, height)))
    print(json.dumps(result))


def _run_child(
    kind: str, args: argparse.Namespace, extra: list[str], env: dict[str, str] | None = None
) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.bench_tui_memory", "--child", kind]
    command += ["--size", args.size, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _parley_runs(kind: str, args: argparse.Namespace, runs: int, top: int) -> list[dict[str, Any]]:
    """A fresh relay and data dir per run, the account and its history built here (not in
    the measured child)."""
    from bench.bench_tui_scroll import PEER, build_history
    from tests.harness import RelayProcess
    from tui.client.connection import Endpoint
    from tui.client.local_socket import SOCKET_ENV, local_login_name
    from tui.client.login import register_account
    from tui.client.store import history_path
    from tui.client.trust import TrustPolicy

    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            socket = base / "relay.sock" if kind == "socket" else None
            relay = RelayProcess(base / "relay", unix_socket=socket)
            relay.start()
            try:
                extra = ["--base", str(base), "--peer", str(PEER), "--top", str(top)]
                env = dict(os.environ, PYTHONTRACEMALLOC="1") if top else dict(os.environ)
                if socket is not None:
                    user, host, port = local_login_name(), str(socket), 0
                    env[SOCKET_ENV] = str(socket)
                else:
                    user, host, port = "alice", relay.host, relay.port
                    fingerprint = relay.fingerprint or ""
                    endpoint = Endpoint(host, port)
                    policy = TrustPolicy.pinned(fingerprint)
                    asyncio.run(register_account(endpoint, policy, user, PASSWORD))
                    extra += ["--host", host, "--port", str(port), "--fingerprint", fingerprint]
                    extra += ["--user", user]
                path = history_path(base / "data", host, port, user)
                path.parent.mkdir(parents=True, mode=0o700)
                build_history(path, args.messages)
                results.append(_run_child(kind, args, extra, env))
            finally:
                relay.stop()
    return results


def _median_kib(values: list[int]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return (
        float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    )


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(results, key=lambda r: int(r["VmRSS"]))
    return ordered[(len(ordered) - 1) // 2]


def _describe(results: list[dict[str, Any]]) -> str:
    figures = _median_run(results)
    mib = {key: int(value) / 1024 for key, value in figures.items() if key.startswith(("V", "R"))}
    runs = ", ".join(f"{int(r['VmRSS']) / 1024:.1f}" for r in results)
    median = _median_kib([int(r["VmRSS"]) for r in results]) / 1024
    return (
        f"RSS {median:.1f} MiB (median of {len(results)}: {runs}); that run: peak "
        f"{mib['VmHWM']:.1f}, private (anonymous) {mib['RssAnon']:.1f} MiB, file-backed "
        f"{mib['RssFile']:.1f} MiB (program and libraries, shared between processes); "
        f"{figures['modules']} modules imported"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--runs", type=int, default=3, help="runs of each child (median)")
    parser.add_argument("--top", type=int, default=15, help="allocation sites to list (0: none)")
    parser.add_argument("--child", choices=("bare", "tls", "socket"), help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fingerprint", help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--peer", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    from bench.benchlib import machine_description

    print(machine_description())
    bare = [_run_child("bare", args, []) for _ in range(args.runs)]
    print(f"bare Textual app: {_describe(bare)}")
    tls = _parley_runs("tls", args, args.runs, top=0)
    print(
        f"Parley, logged in over TLS, {args.messages:,}-message conversation open: {_describe(tls)}"
    )
    shown = _median_run(tls)
    print(f"  ({shown['lines_shown']} conversation lines laid out, {shown['widgets']} widgets)")
    local = _parley_runs("socket", args, args.runs, top=0)
    print(f"Parley, logged in on the relay's Unix socket, same conversation: {_describe(local)}")
    used = _median_kib([int(r["used_rss_kib"]) for r in local]) / 1024
    print(
        f"  then {FOCUS_CHANGES} focus changes (Tab around the panes): RSS {used:.1f} MiB (median)"
    )
    scrolled = _median_kib([int(r["scrolled_rss_kib"]) for r in tls]) / 1024
    print(
        f"after paging in the whole history ({shown['scrolled_lines']} lines, TLS): "
        f"RSS {scrolled:.1f} MiB (median)"
    )
    if args.top:
        traced = _parley_runs("tls", args, 1, top=args.top)[0]
        print(f"tracemalloc: {traced['traced_kib']} KiB alive in Python objects; biggest sites:")
        for line in traced["top"]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
