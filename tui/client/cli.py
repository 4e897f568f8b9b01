"""``parley send USER TEXT`` and ``parley tail``: the client library from a shell script.

Invariants:
- The password never comes from argv (it would show in ``ps`` and shell history): it is
  read from ``--password-file``, the variable named by ``--password-env``, or a prompt.
- Text received from the network is printed only after ``printable_text`` has removed
  terminal controls, and names likewise.
- Exit codes are stable (see ``EXIT_*``) so scripts can branch on them.
- Without ``--host`` and without a TLS option (``--plaintext``, ``--fingerprint``,
  ``--ca-file``), a relay socket found by :func:`tui.client.local_socket.find_local_socket`
  is used: a local login as this process's Unix user, with no password and no trust
  question (a password is sent only when ``--password-file``/``--password-env`` names one).
  Otherwise TLS to ``--host`` (default localhost) exactly as before.
- Devices (PROTOCOL.md section 9): ``parley send`` logs in send-only (no device, so it
  never kicks a running TUI or tail); ``parley tail`` is the device ``tail@<host>`` (the
  first free slot, see :mod:`tui.client.device`, or ``--device NAME``), held for as long
  as it runs. What the user sent from other devices is printed as ``me → peer: text``.
- Rooms (:mod:`tui.client.cli_rooms`): ``parley send --room NAME TEXT`` sends to a room the
  user joined; ``parley tail`` prints room messages as ``[room] sender: text`` and the
  room's timeline events as ``[room] * sentence``.

(About 550 lines: the parser's option and help texts are a quarter of it; what rooms need
beyond the options lives in :mod:`tui.client.cli_rooms`.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import getpass
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from protocol import chat_pb2 as pb
from protocol.validation import printable_text
from tui.client.cli_rooms import RoomNotFound, resolve_room, room_line
from tui.client.connection import DEFAULT_PORT, Endpoint
from tui.client.device import TAIL, DeviceClaim, claim_device
from tui.client.events import (
    AckReceived,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    MessageReceived,
    SyncCompleted,
)
from tui.client.history import HistoryEntry, MessageState, describe_failure
from tui.client.local_socket import find_local_socket, local_login_name
from tui.client.login import LoginFailed, LoginRateLimited, RelayReset, SessionError
from tui.client.session import ClientSession, SessionOptions
from tui.client.store import default_data_dir
from tui.client.supervisor import NotConnected
from tui.client.trust import TrustError, TrustPolicy, TrustStore, default_known_relays_path

EXIT_OK = 0
EXIT_REFUSED = 1  # the relay refused the message (not a buddy, too large, ...)
EXIT_USAGE = 2
EXIT_TRUST = 3
EXIT_LOGIN = 4
EXIT_UNREACHABLE = 5  # network trouble, or no answer within --timeout

STORE_FULL_NOTICE = "the relay's storage is full; will retry"


class ScriptError(Exception):
    """A failure to report on stderr with ``exit_code``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ClientConfig:
    """Everything needed to open a session, resolved from the command line."""

    endpoint: Endpoint
    username: str
    password: str | None  # None: local login over the Unix socket
    trust: TrustPolicy
    data_dir: Path
    device: str | None = None  # --device: this name instead of the first free slot

    def session(
        self, options: SessionOptions | None = None, *, device: str = "", send_only: bool = False
    ) -> ClientSession:
        return ClientSession(
            self.endpoint,
            self.username,
            self.password,
            trust=self.trust,
            data_dir=self.data_dir,
            options=options,
            device=device,
            send_only=send_only,
        )

    def claim_device(self, kind: str) -> DeviceClaim:
        """The device a receiving command of ``kind`` logs in as (release it at the end)."""
        try:
            return claim_device(self.data_dir, self.username, kind, explicit=self.device)
        except ValueError as exc:
            raise ScriptError(f"--device: {exc}", EXIT_USAGE) from exc


async def send_text(
    config: ClientConfig,
    peer_name: str,
    text: str,
    *,
    timeout: float = 30.0,
    err: TextIO | None = None,
    room: bool = False,
) -> HistoryEntry:
    """Send ``text`` to the user called ``peer_name`` (``room``: to the room of that name
    among the user's rooms, see :mod:`tui.client.cli_rooms`); return once the relay answered.

    Raises :class:`ScriptError` for an unknown user, a refusal, or no answer in time (the
    message then stays in the outbox and the next session for this user re-sends it). A
    relay whose storage is full refuses for now: that is said on ``err`` and the message is
    retried until ``timeout``.
    """
    err = err if err is not None else sys.stderr
    session = config.session(send_only=True)
    try:
        await session.start()
        if room:
            try:
                peer = (await resolve_room(session, peer_name, timeout=timeout)).peer
            except RoomNotFound as exc:
                raise ScriptError(str(exc), EXIT_REFUSED) from None
        else:
            user = await session.find_user(peer_name, timeout=timeout)
            if user is None:
                raise ScriptError(f"no user named {peer_name!r} on the relay", EXIT_REFUSED)
            peer = user.uid
        entry = session.send_text(peer, text)
        msg_id = entry.msg_id
        store_full = False

        def note_store_full(event: Event) -> None:
            nonlocal store_full
            ack = event.ack if isinstance(event, AckReceived) else None
            if ack is not None and ack.id == msg_id and ack.code == pb.Ack.STORE_FULL:
                if not store_full:
                    err.write(f"parley: {STORE_FULL_NOTICE}\n")
                store_full = True

        session.add_listener(note_store_full)
        try:
            entry = await session.wait_outcome(msg_id, timeout=timeout)
        except TimeoutError:
            why = STORE_FULL_NOTICE if store_full else "no acknowledgement yet"
            raise ScriptError(
                f"{why}: the message stays in the outbox and will be re-sent by the next "
                "parley session",
                EXIT_UNREACHABLE,
            ) from None
        if entry.state is MessageState.FAILED:
            raise ScriptError(describe_failure(entry, peer_name), EXIT_REFUSED)
        return entry
    finally:
        await session.close()


def format_line(entry: HistoryEntry, name: str, own_name: str = "") -> str | None:
    """One printable line for a received message, or None for types tail does not show.
    ``name`` is the peer's; a message the user sent (``entry.outgoing``: from another
    device) reads ``own_name → name: text``."""
    when = datetime.datetime.fromtimestamp(entry.timestamp).strftime("%Y-%m-%d %H:%M:%S")
    who = printable_text(name, keep_newlines=False)
    if entry.outgoing:
        who = f"{printable_text(own_name, keep_newlines=False)} → {who}"
    if entry.type == pb.Message.MESSAGE:
        body = printable_text(entry.text).replace("\n", "\n    ")
    elif entry.type in (pb.Message.FILE_OFFER, pb.Message.FILE):
        size = entry.file.size if entry.file is not None else len(entry.data)
        body = f"[file offered: {printable_text(entry.text, keep_newlines=False)}, {size} bytes]"
    else:
        return None
    return f"{when} {who}: {body}"


async def tail(
    config: ClientConfig,
    out: TextIO,
    *,
    once: bool = False,
    count: int | None = None,
    err: TextIO | None = None,
) -> int:
    """Print incoming messages until interrupted (``once``: only the backlog; ``count``:
    stop after that many printed). Returns the number of messages printed."""
    err = err if err is not None else sys.stderr
    claim = config.claim_device(TAIL)
    try:
        session = config.session(device=claim.name)
    except BaseException:
        claim.release()
        raise
    events = session.events()
    printed = 0
    try:
        await session.start()
        if count == 0:
            return 0
        with contextlib.suppress(NotConnected, TimeoutError):  # room names before printing
            await session.list_rooms()
        async for event in events:
            if isinstance(event, MessageReceived):
                entry = event.entry
                name = (
                    session.buddies[entry.peer].username
                    if entry.peer in session.buddies
                    else session.store.peer_name(entry.peer) or f"#{entry.peer}"
                )
                line = (
                    room_line(session, entry)
                    if entry.room
                    else format_line(entry, name, session.username)
                )
                if line is not None:
                    out.write(line + "\n")
                    out.flush()
                    printed += 1
                    if count is not None and printed >= count:
                        break
            elif isinstance(event, ConnectionStateChanged):
                if event.state is ConnectionState.RECONNECTING:
                    err.write(f"parley: {event.reason}; retrying in {event.retry_in:.0f} s\n")
                elif event.state is ConnectionState.OFFLINE and event.error is not None:
                    raise event.error
            elif once and isinstance(event, SyncCompleted):
                break
        return printed
    finally:
        await session.close()
        claim.release()


DESCRIPTION = """\
Send and receive Parley messages from scripts.

The relay is authenticated before anything is sent: by default its certificate fingerprint
is checked against the known_relays file (trust on first use, like ssh: the first time you
are asked to confirm it if stdin is a terminal, otherwise the connection is refused; a
changed fingerprint is always refused). Use --fingerprint to pin it explicitly, or
--ca-file for a certificate signed by your own CA.

The password is never taken from the command line: use --password-file, --password-env,
or type it at the prompt.

On the relay's own box, give no --host: the relay's Unix socket ($PARLEY_SOCKET, else the
relay's default path) logs you in as your Unix user, with no password and no fingerprint.
"""

EPILOG = f"""\
exit codes: {EXIT_OK} ok, {EXIT_REFUSED} refused by the relay or unknown user, {EXIT_USAGE} \
usage error, {EXIT_TRUST} relay not trusted, {EXIT_LOGIN} login failed, {EXIT_UNREACHABLE} \
relay unreachable or no answer in time.

examples:
  parley send bob "build finished"            # on the relay's box, over its Unix socket
  parley send --room "dev team" "deployed"    # to a room you joined
  parley send --host relay.example --user alice --password-file ~/.parley-pw bob "build finished"
  PW=secret parley tail --user bob --password-env PW --fingerprint SHA256:...
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--host",
        help="relay host name or address for TLS (default: the relay's Unix socket if one "
        "is found, else localhost)",
    )
    group.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"relay port (default: {DEFAULT_PORT})"
    )
    group.add_argument(
        "--user",
        default=os.environ.get("PARLEY_USER"),
        help="your username (default: $PARLEY_USER)",
    )
    secret = group.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-file",
        type=Path,
        metavar="PATH",
        help="read the password from the first line of PATH",
    )
    secret.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from environment variable VAR (give its name, not the value)",
    )
    trust = group.add_mutually_exclusive_group()
    trust.add_argument(
        "--fingerprint",
        metavar="SHA256:...",
        help="accept only a relay certificate with this SHA-256 fingerprint (SHA256:base64 "
        "as printed by `parley-relay cert show`, or 64 hex digits); known_relays is "
        "neither read nor written",
    )
    trust.add_argument(
        "--ca-file",
        type=Path,
        metavar="PATH",
        help="verify the relay certificate and host name against the CA certificates in PATH",
    )
    trust.add_argument(
        "--plaintext",
        action="store_true",
        help="no TLS at all (only for a relay started with --plaintext, e.g. local tests)",
    )
    group.add_argument(
        "--known-relays",
        type=Path,
        metavar="PATH",
        help=f"trust-on-first-use pin file (default: {default_known_relays_path()})",
    )
    group.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"where history and the outbox are kept (default: {default_data_dir()})",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the relay's answers (default: 30)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    send = commands.add_parser(
        "send",
        parents=[common],
        help="send one text message and wait until the relay has stored it",
        description="Send TEXT to USER and wait for the relay's acknowledgement. Exit "
        f"status {EXIT_OK} means the relay stored it for USER (delivered now or at their "
        "next login). It logs in send-only: your running parley windows and tails stay "
        "connected and show the message as yours.",
    )
    send.add_argument(
        "--room",
        metavar="NAME",
        help="send to the room of this name (one you joined) instead of to a USER",
    )
    send.add_argument(
        "recipient", metavar="USER", nargs="?", help="the recipient's username (a buddy)"
    )
    send.add_argument("text", metavar="TEXT", nargs="?", help="the message text (up to 64 KiB)")
    tail_cmd = commands.add_parser(
        "tail",
        parents=[common],
        help="print incoming messages as they arrive (Ctrl-C to stop)",
        description="Print the messages received since the last run, then new ones as they "
        "arrive, one line each: date time sender: text. Messages you sent from elsewhere (the "
        "TUI, parley send) show as: date time you → recipient: text. Room messages show as: "
        "date time [room] sender: text, and room events (joins, leaves...) as: "
        "date time [room] * what happened.",
    )
    tail_cmd.add_argument(
        "--device",
        metavar="NAME",
        help="log in as this device (default: tail@<host>, or tail@<host>#2... while "
        "another parley tail of yours runs here); a second session of one device is "
        "disconnected by the relay",
    )
    tail_cmd.add_argument("--once", action="store_true", help="print what is waiting, then exit")
    tail_cmd.add_argument("--count", type=int, metavar="N", help="exit after printing N messages")
    return parser


def read_password(args: argparse.Namespace) -> str:
    """The password from --password-file, --password-env or a prompt (never argv)."""
    if args.password_file is not None:
        try:
            lines = args.password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ScriptError(f"cannot read password file: {exc}", EXIT_USAGE) from exc
        if not lines or not lines[0]:
            raise ScriptError(f"password file {args.password_file} is empty", EXIT_USAGE)
        return str(lines[0])
    if args.password_env is not None:
        value = os.environ.get(args.password_env)
        if not value:
            raise ScriptError(f"environment variable {args.password_env} is not set", EXIT_USAGE)
        return value
    if not sys.stdin.isatty():
        raise ScriptError(
            "no password: use --password-file or --password-env when stdin is not a terminal",
            EXIT_USAGE,
        )
    return getpass.getpass(f"password for {args.user}: ")


async def ask_on_terminal(key: str, fingerprint: str) -> bool:
    """First-contact question on the terminal (refuses when stdin is not a terminal)."""
    if not sys.stdin.isatty():
        return False
    question = (
        f"The authenticity of relay {key} can't be established.\n"
        f"Its certificate fingerprint is {fingerprint}.\n"
        "Check it with the relay's operator. Trust it and remember it? [y/N] "
    )
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return answer.strip().lower() in {"y", "yes"}


def trust_policy(args: argparse.Namespace) -> TrustPolicy:
    if args.plaintext:
        return TrustPolicy.plaintext()
    if args.ca_file is not None:
        return TrustPolicy.ca_file(args.ca_file)
    if args.fingerprint is not None:
        try:
            return TrustPolicy.pinned(args.fingerprint)
        except ValueError as exc:
            raise ScriptError(f"--fingerprint: {exc}", EXIT_USAGE) from exc
    return TrustPolicy.known_relays(TrustStore(args.known_relays), ask=ask_on_terminal)


def _wants_network(args: argparse.Namespace) -> bool:
    return (
        args.host is not None
        or args.plaintext
        or args.fingerprint is not None
        or args.ca_file is not None
    )


def config_from_args(args: argparse.Namespace) -> ClientConfig:
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    socket_path = None if _wants_network(args) else find_local_socket()
    if socket_path is not None:
        explicit = args.password_file is not None or args.password_env is not None
        if explicit and not args.user:
            raise ScriptError("--user is required with a password (or set PARLEY_USER)", EXIT_USAGE)
        return ClientConfig(
            endpoint=Endpoint.local(str(socket_path)),
            username=args.user if explicit else local_login_name(),
            password=read_password(args) if explicit else None,
            trust=TrustPolicy.plaintext(),  # unused: a local endpoint has no TLS
            data_dir=data_dir,
            device=getattr(args, "device", None),
        )
    if not args.user:
        raise ScriptError("--user is required (or set PARLEY_USER)", EXIT_USAGE)
    policy = trust_policy(args)
    return ClientConfig(
        endpoint=Endpoint(args.host or "localhost", args.port),
        username=args.user,
        password=read_password(args),
        trust=policy,
        data_dir=data_dir,
        device=getattr(args, "device", None),
    )


def send_target(args: argparse.Namespace) -> tuple[str, str]:
    """(recipient or room name, text) of ``parley send USER TEXT`` or ``--room NAME TEXT``."""
    words = [w for w in (args.recipient, args.text) if w is not None]
    if args.room is not None:
        if len(words) != 1:
            raise ScriptError("usage: parley send --room NAME TEXT", EXIT_USAGE)
        return args.room, words[0]
    if len(words) != 2:
        raise ScriptError("usage: parley send USER TEXT (or --room NAME TEXT)", EXIT_USAGE)
    return args.recipient, args.text


async def run(args: argparse.Namespace) -> int:
    target = send_target(args) if args.command == "send" else None
    config = config_from_args(args)
    if target is not None:
        to, text = target
        room = args.room is not None
        entry = await send_text(config, to, text, timeout=args.timeout, room=room)
        note = "delivered" if entry.state is MessageState.DELIVERED else "stored by the relay"
        print(f"sent to {'room ' if room else ''}{to}: {note} (id {entry.msg_id})")
        return EXIT_OK
    await tail(config, sys.stdout, once=args.once, count=args.count)
    return EXIT_OK


def rate_limited_text(error: LoginRateLimited) -> str:
    """What to say when the relay throttles our logins (after failed passwords)."""
    return f"too many failed logins; try again in {math.ceil(error.retry_after)} s"


def quiet_logging() -> None:
    """The library's warnings (``session ... stopped: wrong password``) are not printed
    beside our own one-line error: without a configured handler Python's last-resort
    handler would write them to stderr too."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``parley send`` / ``parley tail``; returns the exit code."""
    args = build_parser().parse_args(argv)
    quiet_logging()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return EXIT_OK
    except ScriptError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return exc.exit_code
    except TrustError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return EXIT_TRUST
    except LoginFailed as exc:
        print(f"parley: login failed: {exc}", file=sys.stderr)
        return EXIT_LOGIN
    except LoginRateLimited as exc:
        print(f"parley: login failed: {rate_limited_text(exc)}", file=sys.stderr)
        return EXIT_LOGIN
    except RelayReset as exc:
        if exc.code != pb.Reset.KICKED:
            print(f"parley: cannot reach the relay: {exc}", file=sys.stderr)
        else:
            print(
                f"parley: disconnected: {exc.reason or 'another login took this device'} "
                "(another session now uses this device; --device NAME runs both)",
                file=sys.stderr,
            )
        return EXIT_UNREACHABLE
    except (OSError, TimeoutError, SessionError) as exc:
        print(f"parley: cannot reach the relay: {exc or type(exc).__name__}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
