"""``parley``: the TUI, or ``parley send`` / ``parley tail`` for scripts.

Invariants:
- ``send`` and ``tail`` go to :func:`tui.client.cli.main` untouched (its exit codes).
- Anything else is the TUI; flags: --host, --port (default 1025), --user, --plaintext,
  --fingerprint, --known-relays, --data-dir, --device, --log-file. A malformed --fingerprint is a
  usage error (exit 2) before the screen is taken over. No password on the command line.
- Without --host, --plaintext and --fingerprint, a relay socket found by
  :func:`tui.client.local_socket.find_local_socket` opens straight into the chat (a local
  login, PROTOCOL.md section 11); otherwise the login screen as before.
- Logging never writes to the terminal while the TUI owns it: a file, or nowhere.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tui.client.connection import DEFAULT_PORT
from tui.client.local_socket import find_local_socket
from tui.client.login import check_device
from tui.client.store import default_data_dir
from tui.client.trust import canonical_fingerprint, default_known_relays_path
from tui.settings import AppConfig

SCRIPT_COMMANDS = frozenset({"send", "tail"})


def _version() -> str:
    # Imported here: importlib.metadata (email, zipfile, csv…) is about 1 MiB of RSS that
    # every TUI start paid for a string only --version prints (bench/bench_tui_memory.py).
    import importlib.metadata

    try:
        return importlib.metadata.version("parley-chat")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown: not installed as a package)"


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (see :func:`_version`)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Parley chat client (a terminal UI). `parley send --help` and "
        "`parley tail --help` describe the commands for scripts.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument(
        "--host",
        help="relay host for TLS (default: the relay's Unix socket if found, else the "
        "remembered host, or localhost)",
    )
    parser.add_argument(
        "--port", type=int, help=f"relay port (default: remembered, or {DEFAULT_PORT})"
    )
    parser.add_argument("--user", help="your user name (prefilled on the login screen)")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument(
        "--plaintext",
        action="store_true",
        help="no TLS (only for a relay started with --plaintext, e.g. local tests)",
    )
    trust.add_argument(
        "--fingerprint",
        metavar="SHA256:...",
        help="accept only a relay certificate with this fingerprint (known_relays unused)",
    )
    parser.add_argument(
        "--known-relays",
        type=Path,
        metavar="PATH",
        help=f"trust-on-first-use pin file (default: {default_known_relays_path()})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"where history and the outbox are kept (default: {default_data_dir()})",
    )
    parser.add_argument(
        "--device",
        metavar="NAME",
        help="log in as this device (default: tui@<host>, or tui@<host>#2... while another "
        "Parley window of yours runs here); a second session of one device is "
        "disconnected by the relay",
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="append the client's log (connections, retries; never message text) to PATH",
    )
    return parser


def setup_logging(log_file: Path | None) -> None:
    """Log to ``log_file`` if given; otherwise nowhere (the screen belongs to the TUI)."""
    root = logging.getLogger()
    if log_file is None:
        root.addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def config_from_args(args: argparse.Namespace) -> AppConfig:
    config = AppConfig(
        host=args.host,
        port=args.port,
        user=args.user,
        plaintext=args.plaintext,
        fingerprint=args.fingerprint,
        local_socket=(
            find_local_socket()
            if args.host is None and not args.plaintext and args.fingerprint is None
            else None
        ),
    )
    if args.device is not None:
        config = replace(config, device=args.device)
    if args.data_dir is not None:
        config = replace(config, data_dir=args.data_dir)
    if args.known_relays is not None:
        config = replace(config, known_relays=args.known_relays)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parley`` console script; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in SCRIPT_COMMANDS:
        from tui.client import cli as scripting  # here: the TUI never needs it (~0.5 MiB)

        return scripting.main(arguments)
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error("--port must be 1-65535")
    if args.fingerprint is not None:
        try:
            canonical_fingerprint(args.fingerprint)
        except ValueError as exc:
            parser.error(f"--fingerprint: {exc}")
    if args.device is not None:
        try:
            check_device(args.device)
        except ValueError as exc:
            parser.error(f"--device: {exc}")
    from tui.app import ParleyApp

    setup_logging(args.log_file)
    ParleyApp(config_from_args(args)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
