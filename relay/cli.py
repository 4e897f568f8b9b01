"""``parley-relay``: run the relay, manage its certificate, manage user accounts; status,
backup and restore for its admin (:mod:`relay.status`, :mod:`relay.backup`).

Invariants: every subcommand has ``--help``; errors print one line saying what to do next
and exit non-zero; passwords are read with getpass (or ``--password-stdin``), never argv.
An option a subcommand accepts works on either side of it (the subcommand's copy defaults to
"not given", so it never overwrites the value given before it). Everything the process
creates is private to its user (umask 077): the data dir is 0700 and an existing one that
others can enter is refused; the store's files are 0600 (:class:`relay.store.Store`).

(About 770 lines: most of it is the argparse description of every setting and limit, which
is the operator's documentation; the code that acts on them is short.)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import logging
import os
import pwd
import resource
import ssl
import stat
import sys
from pathlib import Path
from typing import Any

from certs import ensure_certificate, fingerprint_of_pem_file
from protocol.validation import normalize_username, username_key, validate_password
from relay.auth import hash_password
from relay.backup import BackupError, backup_store, restore_store
from relay.config import RelayConfig, default_data_dir, load_config
from relay.instance_lock import DataDirBusy, DataDirLock
from relay.memory import trim_after_start, tune_allocator
from relay.status import DEFAULT_MAX_AGE, run_status_command
from relay.store import Store, StoreError, StoreUnavailable, UserRecord

log = logging.getLogger("parley.relay")

_DEFAULTS = RelayConfig()


_PRIVATE_UMASK = 0o077
# AEAD only: ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2 (TLS 1.3 suites are all AEAD).
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _version() -> str:
    import importlib.metadata  # here: importing it costs 35 ms of every relay start

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


def _add_common(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """Options every subcommand accepts. A subcommand's copy passes ``argparse.SUPPRESS``:
    given before the subcommand, the option must not be reset by the subcommand's default."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=default,
        help="TOML file with the same keys as the flags (under [relay] or at "
        "top level); flags override it",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=default,
        help=f"where the SQLite store and the generated certificate live "
        f"(default: {default_data_dir()})",
    )
    parser.add_argument(
        "--scrypt-n",
        type=int,
        metavar="N",
        default=default,
        help=f"scrypt cost for new password hashes, a power of two (default: {_DEFAULTS.scrypt_n})",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,  # debug, Debug and DEBUG alike
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=default,
        help="log verbosity, any case (default: INFO)",
    )


def _add_certificate_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument(
        "--cert",
        type=Path,
        metavar="PEM",
        default=default,
        help="certificate file (default: generate one in the data dir on first start)",
    )
    parser.add_argument(
        "--key", type=Path, metavar="PEM", default=default, help="private key for --cert"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley-relay",
        description="The Parley relay: accounts, buddies, presence and store-and-forward "
        "messaging over TLS. With no subcommand it runs the relay.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n  parley-relay cert show|generate   the TLS certificate\n"
        "  parley-relay user add|list|passwd|remove NAME   accounts\n"
        "  parley-relay user link NAME --unix-user USER   bind an account to a Unix user\n"
        "  parley-relay status [--json]       live figures of the running relay\n"
        "  parley-relay backup FILE | restore FILE   copy the store, safe while it runs\n"
        "Run 'parley-relay SUBCOMMAND --help' for details.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version number and exit")
    _add_common(parser)
    parser.add_argument(
        "--host",
        help=f"address to listen on for TLS (default: {_DEFAULTS.host}, this box only; "
        f"0.0.0.0 opens the relay to the network)",
    )
    parser.add_argument(
        "--port", type=int, help=f"TCP port; 0 picks a free one (default: {_DEFAULTS.port})"
    )
    _add_certificate_options(parser)
    parser.add_argument(
        "--plaintext",
        action="store_true",
        default=None,
        help="no TLS (for local tests and packet captures only: passwords "
        "and messages cross the network in clear)",
    )
    local = parser.add_mutually_exclusive_group()
    local.add_argument(
        "--unix-socket",
        metavar="PATH",
        help="also listen on this Unix socket, where local users log in as themselves "
        "without a password (default: /run/parley/relay.sock when run as root or by the "
        "owner of /run/parley, else $XDG_RUNTIME_DIR/parley/relay.sock, else "
        '/tmp/parley-UID/relay.sock; config key unix_socket, "" = none)',
    )
    local.add_argument(
        "--no-unix-socket",
        action="store_const",
        const="",
        dest="unix_socket",
        help="do not listen on a Unix socket",
    )
    parser.add_argument(
        "--no-local-accounts",
        action="store_const",
        const=False,
        dest="local_accounts",
        help="never create an account on a local login: only accounts an admin bound with "
        "'user link' log in over the Unix socket without a password",
    )
    parser.add_argument(
        "--max-frame",
        type=int,
        metavar="BYTES",
        help=f"largest frame accepted (default: {_DEFAULTS.max_frame})",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        metavar="MSGS_PER_S",
        help="messages per second per session; 0 = off (default: 0)",
    )
    parser.add_argument(
        "--inbox-quota",
        type=int,
        metavar="N",
        help=f"stored messages per recipient (default: {_DEFAULTS.inbox_quota})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help=f"close v2 sessions silent this long (default: {_DEFAULTS.idle_timeout:g})",
    )
    parser.add_argument(
        "--login-timeout",
        type=float,
        metavar="SECONDS",
        help=f"close connections that do not log in within this time "
        f"(default: {_DEFAULTS.login_timeout:g})",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        metavar="SECONDS",
        help=f"close connections whose TLS handshake takes longer "
        f"(default: {_DEFAULTS.handshake_timeout:g})",
    )
    parser.add_argument(
        "--high-water",
        type=int,
        metavar="BYTES",
        help=f"bytes queued to one client before it counts as slow "
        f"(default: {_DEFAULTS.high_water})",
    )
    parser.add_argument(
        "--max-file-size",
        type=int,
        metavar="BYTES",
        help=f"largest file a user may offer (default: {_DEFAULTS.max_file_size})",
    )
    parser.add_argument(
        "--max-transfers",
        type=int,
        metavar="N",
        dest="max_transfers_per_user",
        help=f"open file transfers per user (default: {_DEFAULTS.max_transfers_per_user})",
    )
    limits = parser.add_argument_group(
        "limits",
        "bounds on what one peer (or all of them) can make the relay hold or do; "
        "docs/DECISIONS.md explains each",
    )
    limits.add_argument(
        "--max-frame-before-login",
        type=int,
        metavar="BYTES",
        help=f"largest frame accepted before login (default: {_DEFAULTS.max_frame_before_login})",
    )
    limits.add_argument(
        "--read-budget",
        type=int,
        metavar="BYTES",
        help=f"bytes read from one connection per loop pass (default: {_DEFAULTS.read_budget})",
    )
    limits.add_argument(
        "--frames-per-pass",
        type=int,
        metavar="N",
        help=f"frames handled for one connection per loop pass "
        f"(default: {_DEFAULTS.frames_per_pass})",
    )
    limits.add_argument(
        "--room-frames-per-pass",
        type=int,
        metavar="N",
        help=f"frames handled per loop pass for a connection sending only room messages "
        f"(default: {_DEFAULTS.room_frames_per_pass})",
    )
    limits.add_argument(
        "--copies-per-pass",
        type=int,
        metavar="N",
        help=f"room copies the messages handled in one loop pass may fan out to; a "
        f"connection's further messages wait for the next pass "
        f"(default: {_DEFAULTS.copies_per_pass})",
    )
    limits.add_argument(
        "--frame-timeout",
        type=float,
        metavar="SECONDS",
        help=f"reset a connection whose incomplete frame is older than this "
        f"(default: {_DEFAULTS.frame_timeout:g})",
    )
    limits.add_argument(
        "--input-budget",
        type=int,
        metavar="BYTES",
        help=f"buffered input of all connections together before the relay "
        f"stops reading (default: {_DEFAULTS.input_budget})",
    )
    limits.add_argument(
        "--max-unauthenticated-per-address",
        type=int,
        metavar="N",
        help=f"connections not yet logged in from one address "
        f"(default: {_DEFAULTS.max_unauthenticated_per_address})",
    )
    limits.add_argument(
        "--max-unauthenticated",
        type=int,
        metavar="N",
        help=f"connections not yet logged in, in all; the oldest is closed "
        f"to make room (default: {_DEFAULTS.max_unauthenticated})",
    )
    limits.add_argument(
        "--inbox-quota-bytes",
        type=int,
        metavar="BYTES",
        help=f"stored bytes per recipient (default: {_DEFAULTS.inbox_quota_bytes})",
    )
    limits.add_argument(
        "--registrations-per-minute",
        type=int,
        metavar="N",
        dest="registrations_per_address_per_minute",
        help=f"new accounts per peer address per minute "
        f"(default: {_DEFAULTS.registrations_per_address_per_minute})",
    )
    rooms = parser.add_argument_group(
        "devices and rooms", "PROTOCOL.md sections 9 and 10; docs/DECISIONS.md explains each"
    )
    rooms.add_argument(
        "--device-expiry-days",
        type=int,
        metavar="DAYS",
        help=f"forget a device (and what it still holds) not logged in for this long "
        f"(default: {_DEFAULTS.device_expiry_days})",
    )
    rooms.add_argument(
        "--max-devices-per-user",
        type=int,
        metavar="N",
        help=f"devices (inboxes) per user; a new one beyond forgets the least recently seen "
        f"device without a session (default: {_DEFAULTS.max_devices_per_user})",
    )
    rooms.add_argument(
        "--max-room-members",
        type=int,
        metavar="N",
        help=f"members per room, invited included (default: {_DEFAULTS.max_room_members})",
    )
    rooms.add_argument(
        "--max-rooms-per-user",
        type=int,
        metavar="N",
        help=f"rooms a user belongs to or is invited to (default: {_DEFAULTS.max_rooms_per_user})",
    )
    rooms.add_argument(
        "--room-history",
        type=int,
        metavar="N",
        help=f"durable messages a new member receives first (default: {_DEFAULTS.room_history})",
    )
    parser.add_argument(
        "--summary-interval",
        type=float,
        metavar="SECONDS",
        help=f"log a one-line summary (sessions, msgs/s, store size, largest queue) this "
        f"often; 0 = never (default: {_DEFAULTS.summary_interval:g})",
    )
    limits.add_argument(
        "--max-pending-hashes",
        type=int,
        metavar="N",
        help=f"password checks queued at once, in all (default: {_DEFAULTS.max_pending_hashes})",
    )
    limits.add_argument(
        "--max-waiting-logins",
        type=int,
        metavar="N",
        help=f"password logins waiting in line for those checks; beyond, refused "
        f"(default: {_DEFAULTS.max_waiting_logins})",
    )
    sub = parser.add_subparsers(dest="command", metavar="")

    cert = sub.add_parser(
        "cert",
        help="show or generate the TLS certificate",
        description="Show the fingerprint of the relay's certificate, or generate it now.",
    )
    _add_common(cert, argparse.SUPPRESS)
    _add_certificate_options(cert, argparse.SUPPRESS)
    cert.add_argument(
        "action",
        choices=["show", "generate"],
        help="show: print the fingerprint (of --cert if given, else of the "
        "data dir's certificate, generating it if missing); generate: "
        "create it in the data dir, refusing to overwrite",
    )

    user = sub.add_parser(
        "user",
        help="manage accounts in the relay's store",
        description="Manage accounts. Safe while the relay runs (SQLite "
        "WAL); a running relay ends the live session of a user "
        "whose password is changed or who is removed within "
        "seconds.",
    )
    _add_common(user, argparse.SUPPRESS)
    user.add_argument("action", choices=["add", "list", "passwd", "remove", "link"])
    user.add_argument("name", nargs="?", help="username (not for list)")
    user.add_argument(
        "--unix-user",
        metavar="USER",
        help="link: the Unix login name (or uid) whose password-less local logins are this account",
    )
    user.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    _add_admin_commands(sub)
    return parser


def _add_admin_commands(sub: Any) -> None:
    """status, backup, restore: what the relay's admin runs beside it."""
    status = sub.add_parser(
        "status",
        help="live figures of the running relay",
        description="Sessions, devices, rooms, messages per second, store size and the "
        "largest queues of the relay running on the data dir (it writes them every 2 s to "
        "status.json there, readable by its own user only). Exit code 3: no relay runs on "
        "the data dir; 4: it runs but its figures are missing or stale.",
    )
    _add_common(status, argparse.SUPPRESS)
    status.add_argument("--json", action="store_true", help="print the figures as JSON")
    status.add_argument(
        "--max-age",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_MAX_AGE,
        help=f"figures older than this mean the relay is stuck (default: {DEFAULT_MAX_AGE:g})",
    )
    backup = sub.add_parser(
        "backup",
        help="copy the store to FILE (safe while the relay runs)",
        description="Copy the store with SQLite's online backup API: a consistent snapshot, "
        "taken while the relay runs without stopping it. FILE is created 0600.",
    )
    _add_common(backup, argparse.SUPPRESS)
    backup.add_argument("file", type=Path, metavar="FILE", help="the backup file to create")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.add_argument(
        "--progress",
        action="store_true",
        help="print progress whatever the store's size (it is printed for stores of 64 MiB "
        "and more anyway)",
    )
    restore = sub.add_parser(
        "restore",
        help="replace the store by a backup (the relay must be stopped)",
        description="Replace the store by FILE, a backup made with 'parley-relay backup'. "
        "Refused while a relay runs on the data dir. The previous store is kept beside it "
        "as parley.db.before-restore-TIME.",
    )
    _add_common(restore, argparse.SUPPRESS)
    restore.add_argument("file", type=Path, metavar="FILE", help="the backup to restore")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = [
        "data_dir",
        "scrypt_n",
        "host",
        "port",
        "cert",
        "key",
        "plaintext",
        "unix_socket",
        "local_accounts",
        "max_frame",
        "rate_limit",
        "inbox_quota",
        "idle_timeout",
        "login_timeout",
        "handshake_timeout",
        "high_water",
        "log_level",
        "max_file_size",
        "max_transfers_per_user",
        "max_frame_before_login",
        "read_budget",
        "frames_per_pass",
        "room_frames_per_pass",
        "copies_per_pass",
        "frame_timeout",
        "input_budget",
        "max_unauthenticated_per_address",
        "max_unauthenticated",
        "inbox_quota_bytes",
        "registrations_per_address_per_minute",
        "max_pending_hashes",
        "max_waiting_logins",
        "device_expiry_days",
        "max_devices_per_user",
        "max_room_members",
        "max_rooms_per_user",
        "room_history",
        "summary_interval",
    ]
    return {name: getattr(args, name, None) for name in names}


def _fail(message: str) -> int:
    print(f"parley-relay: {message}", file=sys.stderr)
    return 2


def _private_data_dir(path: Path) -> None:
    """Create the data dir 0700, or check that an existing one is closed to other users: it
    holds password and token hashes and queued messages. Raises ``ValueError`` if not."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(
            f"data dir {path} is open to other users (mode {mode:04o}); run "
            f"'chmod 700 {path}' and try again"
        )


def _ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_ciphers(_TLS12_CIPHERS)
    # Session tickets would make every idle connection hold more memory; resumption is by
    # our own token instead. num_tickets covers TLS 1.3 only, OP_NO_TICKET TLS 1.2.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET
    context.num_tickets = 0
    return context


_LOW_CONNECTION_LIMIT = 1024


def _fit_open_file_limit(config: RelayConfig) -> RelayConfig:
    """Raise the soft open-file limit to the hard one; keep max_connections below it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    usable = soft - 64  # the store, the listener, the wake-up pair, logs, certificates
    if config.max_connections > usable:
        # A warning only when the limit is really low: most boxes allow thousands of
        # connections, and a warning at every start that needs no action trains operators
        # to skip warnings.
        log.log(
            logging.WARNING if usable < _LOW_CONNECTION_LIMIT else logging.INFO,
            "open-file limit %d allows %d connections, not %d: raise 'ulimit -n' for more",
            soft,
            usable,
            config.max_connections,
        )
        return dataclasses.replace(config, max_connections=max(1, usable))
    return config


def run_relay(config: RelayConfig) -> int:
    _private_data_dir(config.data_dir)
    try:
        lock = DataDirLock.acquire(config.data_dir, "relay")
    except DataDirBusy as exc:
        raise ValueError(
            f"{exc.holder.describe()} is using the data dir {config.data_dir}: stop it first, "
            f"or give this relay another --data-dir"
        ) from None
    try:
        return _serve(config)
    finally:
        lock.release()


def _serve(config: RelayConfig) -> int:
    """Run the relay on a data dir whose lock this process holds."""
    from relay.handlers import HANDLERS
    from relay.loop import Relay

    context = None
    fingerprint = None
    if config.plaintext:
        log.warning(
            "running WITHOUT TLS (--plaintext): passwords and messages are readable "
            "by anyone on the network path"
        )
    else:
        if config.cert is not None and config.key is not None:
            cert_path, key_path = config.cert, config.key
            fingerprint = fingerprint_of_pem_file(cert_path)
        else:
            pair, created = ensure_certificate(config.data_dir)
            cert_path, key_path, fingerprint = pair.cert_path, pair.key_path, pair.fingerprint
            if created:
                log.info("generated a self-signed certificate in %s", cert_path)
        context = _ssl_context(cert_path, key_path)
    config = _fit_open_file_limit(config)
    tune_allocator()
    store = _open_store(config)
    relay = Relay(config, store, context, HANDLERS)
    # Kicks queued while no relay ran: nobody to end, drop them now. A store that cannot write
    # must not stop the relay from starting: its loop probes the store until it can.
    with contextlib.suppress(StoreUnavailable):
        relay.maintenance.apply_admin_actions()
        store.commit()
    host, port = relay.listen()
    relay.install_signal_handlers()
    relay.maintenance.report()  # status.json from the start: 'parley-relay status' works now
    trim_after_start()
    mode = f"TLS, fingerprint {fingerprint}" if fingerprint else "PLAINTEXT"
    log.info("parley-relay listening on %s:%d (%s), store %s", host, port, mode, config.db_path)
    if config.unix_socket:
        log.info(
            "local logins on unix socket %s (local accounts %s)",
            config.unix_socket,
            "created on first login" if config.local_accounts else "not created",
        )
    if fingerprint:
        print(
            f"Certificate fingerprint: {fingerprint}\n"
            f"Give it to your users: their client shows it on first contact.",
            flush=True,
        )
    try:
        relay.serve_forever()
    finally:
        relay.maintenance.status.remove()
    log.info("parley-relay stopped")
    return 0


def _open_store(config: RelayConfig) -> Store:
    """The store as the relay opens it (an admin command may run its migrations too)."""
    return Store(
        config.db_path,
        synchronous=config.synchronous,
        dedup_bucket_seconds=config.dedup_window_hours * 3600 // 2,
    )


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ValueError("the passwords differ")
    return first


def run_user_command(args: argparse.Namespace, config: RelayConfig) -> int:
    _private_data_dir(config.data_dir)
    with _open_store(config) as store:
        if args.action == "list":
            users, _ = store.list_users("", 1_000_000)
            for listed in users:
                bound = "" if listed.unix_uid is None else f"\tunix:{_unix_name(listed.unix_uid)}"
                print(f"{listed.uid}\t{listed.username}{bound}")
            return 0
        if not args.name:
            return _fail(f"'user {args.action}' needs a username")
        try:
            name = normalize_username(args.name)
        except ValueError as exc:
            return _fail(str(exc))
        record = store.user_by_key(username_key(name))
        if args.action == "add":
            if record is not None:
                return _fail(f"user {name!r} exists (uid {record.uid}); use 'user passwd'")
            if store.username_taken(name, username_key(name)):
                return _fail(f"{name!r} looks like an existing user's name; choose another")
            password = _read_password(args)
            validate_password(password)
            uid = store.add_user(
                name, username_key(name), hash_password(password, config.scrypt_n), 0
            )
            store.commit()
            print(f"added {name} (uid {uid})")
            return 0
        if record is None:
            return _fail(f"no user {name!r}: 'parley-relay user list' shows who exists")
        if args.action == "link":
            return _link_user(store, record, args.unix_user)
        if args.action == "passwd":
            password = _read_password(args)
            validate_password(password)
            store.set_password_hash(record.uid, hash_password(password, config.scrypt_n))
            store.revoke_tokens(record.uid)
            store.queue_kick(
                record.uid,
                "your password was changed by the relay's admin; log in with the new one",
            )
            store.commit()
            print(
                f"password changed for {name}; their resume tokens were revoked and a "
                f"running relay ends their session"
            )
            return 0
        store.remove_user(record.uid)
        store.queue_kick(record.uid, "your account was removed by the relay's admin")
        store.commit()
        print(f"removed {name} (uid {record.uid}); a running relay ends their session")
        return 0


def _unix_name(unix_uid: int) -> str:
    try:
        return pwd.getpwuid(unix_uid).pw_name
    except KeyError:
        return str(unix_uid)


def _link_user(store: Store, record: UserRecord, unix_user: str | None) -> int:
    """``user link NAME --unix-user USER``: bind the account to that Unix user's uid."""
    if not unix_user:
        return _fail("'user link' needs --unix-user USER (a Unix login name or uid)")
    try:
        unix_uid = pwd.getpwnam(unix_user).pw_uid
    except KeyError:
        if not unix_user.isdigit():
            return _fail(f"no Unix user {unix_user!r} on this box")
        unix_uid = int(unix_user)
    holder = store.user_by_unix_uid(unix_uid)
    if holder is not None and holder.uid != record.uid:
        return _fail(
            f"Unix user {unix_user} is linked to {holder.username!r} already; "
            f"'parley-relay user remove {holder.username}' or link another Unix user"
        )
    if not store.bind_unix_uid(record.uid, unix_uid):
        return _fail(f"Unix user {unix_user} was linked to another account meanwhile")
    store.commit()
    print(
        f"linked {record.username} (uid {record.uid}) to Unix user {unix_user} "
        f"(uid {unix_uid}): their local logins are this account"
    )
    return 0


def _run_backup(args: argparse.Namespace, config: RelayConfig) -> int:
    size = backup_store(config.db_path, args.file, force=args.force, progress=args.progress)
    print(f"backed up {config.db_path} to {args.file} ({size} bytes)")
    return 0


def run_cert_command(action: str, config: RelayConfig) -> int:
    if config.cert is not None:
        if action == "generate":
            return _fail(
                f"the relay is configured to use {config.cert}; 'cert generate' "
                f"makes one in the data dir: drop --cert/--key (or their config "
                f"keys) first"
            )
        print(f"{fingerprint_of_pem_file(config.cert)}  {config.cert}")
        return 0
    _private_data_dir(config.data_dir)
    pair, created = ensure_certificate(config.data_dir)
    if action == "generate" and not created:
        return _fail(f"{pair.cert_path} exists; remove it and its key first")
    print(f"{pair.fingerprint}  {pair.cert_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.umask(_PRIVATE_UMASK)  # before anything creates a file, whichever command runs
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, _overrides(args))
    except (OSError, ValueError) as exc:
        return _fail(f"{exc}")
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        if args.command == "cert":
            return run_cert_command(args.action, config)
        if args.command == "user":
            return run_user_command(args, config)
        if args.command == "status":
            return run_status_command(config, as_json=args.json, max_age=args.max_age)
        if args.command == "backup":
            return _run_backup(args, config)
        if args.command == "restore":
            _private_data_dir(config.data_dir)
            restore_store(
                config.data_dir,
                config.db_path,
                args.file,
                dedup_bucket_seconds=config.dedup_window_hours * 3600 // 2,
            )
            return 0
        return run_relay(config)
    except (StoreError, BackupError) as exc:
        return _fail(f"{exc}")
    except StoreUnavailable as exc:
        return _fail(f"the store cannot write ({exc}); nothing was changed")
    except OSError as exc:
        return _fail(f"{exc} (check --host/--port, permissions and --data-dir)")
    except ValueError as exc:
        return _fail(f"{exc}")


__all__ = ["fingerprint_of_pem_file", "main"]
