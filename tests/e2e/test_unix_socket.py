"""Local login over the relay's Unix socket (PROTOCOL.md section 11), against the real relay.

The users tests create real Unix users (``useradd``; removed at the end) and connect as them
from a forked child that drops to their uid: the relay learns who connects from the kernel
(``SO_PEERCRED``) alone. A child is forked rather than a script executed because the test's
interpreter may live where other users cannot read it (a 0700 home); the child only uses the
modules already imported. These tests need root and ``useradd`` and skip with that reason
elsewhere.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from relay.cli import _overrides, build_parser
from relay.config import load_config
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies

USERS = ("parleyt1", "parleyt2", "parleyt3")
LINK_HINT = "ask the relay's admin to run 'parley-relay user link parleyt3 --unix-user parleyt3'"


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp_path is 0700); the relay creates
    its socket directory ``run`` inside."""
    path = Path(tempfile.mkdtemp(prefix="parley-sock-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove_user(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True, check=False)


@pytest.fixture
def unix_users() -> Iterator[dict[str, pwd.struct_passwd]]:
    if os.geteuid() != 0:
        pytest.skip("creating Unix users needs root (CI runs as root)")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel are not installed")
    for name in USERS:
        _remove_user(name)  # left over by an interrupted run
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
    try:
        yield {name: pwd.getpwnam(name) for name in USERS}
    finally:
        for name in USERS:
            _remove_user(name)


def admin(relay: RelayProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``parley-relay --data-dir <the relay's> ARGS`` in its own process."""
    return relay.admin(*args, stdin=stdin)


def _connect_as(user: pwd.struct_passwd, path: Path) -> WireClient:
    """In a forked child: become ``user`` for good, then connect to the relay's socket."""
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    return WireClient.over_unix(str(path))


def login_as(
    user: pwd.struct_passwd,
    path: Path,
    username: str = "",
    password: str = "",
    token: str = "",
) -> dict[str, Any]:
    """Log in over the Unix socket from a child running as ``user``: the LoginResponse's
    code, uid and token, and the Reset message that followed a refusal (if any)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            client = _connect_as(user, path)
            response = client.login(username, password, version=2, token=token)
            result: dict[str, Any] = {
                "code": pb.LoginResponse.Code.Name(response.code),
                "uid": response.uid,
                "token": response.token,
                "reset": "",
            }
            if response.code == pb.LoginResponse.USER_NOT_FOUND:
                reset = client.expect_closed()
                result["reset"] = "" if reset is None else reset.msg
            client.close()
            status = 0
        except BaseException as exc:
            result = {"error": repr(exc)}
        finally:
            os.write(write_end, json.dumps(result).encode())
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    outcome: dict[str, Any] = json.loads(data)
    assert "error" not in outcome, outcome
    return outcome


def refused_start(relay: RelayProcess) -> str:
    """Run ``relay``'s command, which must refuse to start; return its error line."""
    result = subprocess.run(relay.command(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    return result.stderr


def test_socket_file_mode_directory_stale_and_live(socket_dir: Path, tmp_path: Path) -> None:
    path = socket_dir / "run" / "relay.sock"
    path.parent.mkdir(mode=0o700)
    path.parent.chmod(0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a socket file nobody listens on: a relay that died
    stale.close()
    with RelayProcess(tmp_path / "a", unix_socket=path):
        info = path.lstat()
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o666
        directory = path.parent.stat()
        assert directory.st_uid == os.geteuid()
        assert stat.S_IMODE(directory.st_mode) & 0o022 == 0  # nobody else can replace it
        client = WireClient.over_unix(str(path))
        assert client.greeting.startswith("This is a chat server. Hello, unix:")
        client.close()
        second = refused_start(RelayProcess(tmp_path / "b", unix_socket=path))
        assert "another relay is listening on the unix socket" in second
        assert stat.S_ISSOCK(path.lstat().st_mode)  # the live relay's socket is untouched
    assert not path.exists()  # removed at shutdown


def test_a_socket_directory_others_can_write_is_refused(socket_dir: Path, tmp_path: Path) -> None:
    path = socket_dir / "open" / "relay.sock"
    path.parent.mkdir()
    path.parent.chmod(0o777)
    assert "writable by other users" in refused_start(
        RelayProcess(tmp_path / "relay", unix_socket=path)
    )


def test_a_new_socket_directory_is_0755(socket_dir: Path, tmp_path: Path) -> None:
    path = socket_dir / "new" / "relay.sock"
    with RelayProcess(tmp_path / "relay", unix_socket=path):
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755


def test_local_users_log_in_as_themselves_and_only_as_themselves(
    unix_users: dict[str, pwd.struct_passwd], socket_dir: Path, tmp_path: Path
) -> None:
    path = socket_dir / "run" / "relay.sock"
    t1, t2, t3 = (unix_users[name] for name in USERS)
    with RelayProcess(tmp_path / "relay", unix_socket=path) as relay:
        first = login_as(t1, path)
        second = login_as(t2, path)
        assert first["code"] == second["code"] == "SUCCESS"
        assert first["uid"] != second["uid"]
        listed = admin(relay, "user", "list")
        assert listed.stdout.splitlines() == [
            f"{first['uid']}\tparleyt1\tunix:parleyt1",
            f"{second['uid']}\tparleyt2\tunix:parleyt2",
        ]
        # The name in the request never decides: an empty password is always yourself.
        assert login_as(t2, path, username="parleyt1")["uid"] == second["uid"]
        # A password login for another's account needs that password: a local account has
        # none until an admin sets one.
        assert login_as(t2, path, "parleyt1", "guess")["code"] == "PASSWORD_ERROR"
        changed = admin(relay, "user", "passwd", "parleyt1", "--password-stdin", stdin="pw1\n")
        assert changed.returncode == 0, changed.stderr
        assert login_as(t2, path, "parleyt1", "wrong")["code"] == "PASSWORD_ERROR"
        assert login_as(t2, path, "parleyt1", "pw1")["uid"] == first["uid"]
        # Token logins over the socket work as over TLS.
        again = login_as(t1, path)
        assert login_as(t2, path, "parleyt1", token=again["token"])["uid"] == first["uid"]
        # An empty password over TLS is an ordinary, failing password login.
        tls = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        assert tls.login("parleyt2", "", version=2).code == pb.LoginResponse.PASSWORD_ERROR
        # A name that a network account holds: refused, with the command that links them.
        network = tls.register("parleyt3", "pw3")
        assert network.code == pb.RegisterResponse.SUCCESS
        tls.close()
        clash = login_as(t3, path)
        assert clash["code"] == "USER_NOT_FOUND"
        assert LINK_HINT in clash["reset"]
        relay.wait_for_log("local login refused: the name parleyt3 belongs to a network account")
        linked = admin(relay, "user", "link", "parleyt3", "--unix-user", "parleyt3")
        assert linked.returncode == 0, linked.stderr
        now = login_as(t3, path)
        assert now["code"] == "SUCCESS" and now["uid"] == network.uid
        # One account per Unix user: linking another account to it is refused.
        relinked = admin(relay, "user", "link", "parleyt2", "--unix-user", "parleyt3")
        assert relinked.returncode == 2 and "linked to 'parleyt3' already" in relinked.stderr
        # The network account's password still works, over the socket too.
        root_client = WireClient.over_unix(str(path))
        assert root_client.login("parleyt3", "pw3", version=2).uid == network.uid
        root_client.close()


def test_without_local_accounts_only_linked_accounts_log_in(
    unix_users: dict[str, pwd.struct_passwd], socket_dir: Path, tmp_path: Path
) -> None:
    path = socket_dir / "run" / "relay.sock"
    extra = ["--no-local-accounts"]
    with RelayProcess(tmp_path / "relay", unix_socket=path, extra_args=extra) as relay:
        refused = login_as(unix_users["parleyt1"], path)
        assert refused["code"] == "USER_NOT_FOUND"
        assert "creates no local accounts" in refused["reset"]
        added = admin(relay, "user", "add", "parleyt1", "--password-stdin", stdin="pw\n")
        assert added.returncode == 0, added.stderr
        assert admin(relay, "user", "link", "parleyt1", "--unix-user", "parleyt1").returncode == 0
        assert login_as(unix_users["parleyt1"], path)["code"] == "SUCCESS"


def test_unix_socket_settings_from_the_config_file_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[relay]\nunix_socket = ""\nlocal_accounts = false\n')
    off = load_config(config, {})
    assert (off.unix_socket, off.local_accounts) == ("", False)
    args = build_parser().parse_args(["--unix-socket", "~/parley.sock", "--no-local-accounts"])
    flagged = load_config(None, _overrides(args))
    assert flagged.unix_socket == str(Path.home() / "parley.sock")
    assert flagged.local_accounts is False
    assert load_config(config, _overrides(build_parser().parse_args([]))).unix_socket == ""
    none = load_config(None, _overrides(build_parser().parse_args(["--no-unix-socket"])))
    assert none.unix_socket == "" and none.local_accounts is True
    assert load_config(None, {}).unix_socket.endswith("/relay.sock")


def _socket_session_in_child(user: pwd.struct_passwd, path: Path, device: str) -> tuple[int, int]:
    """Fork a child that logs in over the socket as ``user`` (no password) with ``device``,
    writes "ready" on the returned pipe, then the text of the first message it receives
    (or the Reset that ended it) and exits. Returns (pid, read end of the pipe)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            client = _connect_as(user, path)
            response = client.login("", "", version=2, device=device)
            assert response.code == pb.LoginResponse.SUCCESS, response
            os.write(write_end, b"ready\n")
            while True:
                frame_type, message = client.recv(timeout=20)
                if frame_type == FrameType.MESSAGE:
                    os.write(write_end, f"message {message.msg}\n".encode())
                    break
                if frame_type == FrameType.RESET:
                    os.write(write_end, f"reset {message.msg}\n".encode())
                    break
            status = 0
        except BaseException as exc:
            os.write(write_end, f"error {exc!r}\n".encode())
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def test_tls_and_socket_sessions_of_one_user_coexist(
    unix_users: dict[str, pwd.struct_passwd], socket_dir: Path, tmp_path: Path
) -> None:
    path = socket_dir / "run" / "relay.sock"
    t1 = unix_users[USERS[0]]
    with RelayProcess(tmp_path / "relay", unix_socket=path) as relay:
        assert login_as(t1, path)["code"] == "SUCCESS"  # the local account exists
        changed = admin(relay, "user", "passwd", "parleyt1", "--password-stdin", stdin="pw1\n")
        assert changed.returncode == 0, changed.stderr
        laptop = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        assert laptop.login("parleyt1", "pw1", version=2, device="laptop").code == 0
        friend = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        friend.register("friend")
        assert friend.login("friend", version=2, device="tui").code == 0
        make_buddies(friend, laptop)
        pid, pipe = _socket_session_in_child(t1, path, "tui@box")
        with os.fdopen(pipe, "r") as child:
            assert child.readline().strip() == "ready"
            friend.send_text(laptop.uid, "to every device", msg_id=1)
            assert laptop.next_message().msg == "to every device"  # TLS session still on
            assert child.readline().strip() == "message to every device"  # socket too
        os.waitpid(pid, 0)
        laptop.round_trip()  # and never kicked
