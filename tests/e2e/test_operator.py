"""Issue 13 item 4: the operator's side on a shared box — the localhost default, ``status``,
the summary line, ``backup`` and ``restore``, one relay per data dir.

Real relay subprocesses with real TLS and real SQLite files; every admin command runs as its
own ``python -m relay`` process beside the relay, as an operator would run it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.waiting import wait_until
from tests.wire import WireClient, make_buddies


def client(relay: RelayProcess) -> WireClient:
    return WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)


def logged_in(relay: RelayProcess, name: str, *, register: bool = True) -> WireClient:
    c = client(relay)
    if register:
        c.register(name)
    assert c.login(name, version=2).code == pb.LoginResponse.SUCCESS
    return c


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def status_json(relay: RelayProcess) -> dict[str, Any]:
    result = relay.admin("status", "--json")
    assert result.returncode == 0, result.stderr
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def send_acked(sender: WireClient, to: int, texts: list[str], first_id: int) -> None:
    """Send ``texts`` as durable messages; return once each is acknowledged (stored)."""
    for offset, text in enumerate(texts):
        sender.send_text(to, text, msg_id=first_id + offset)
        assert sender.expect(FrameType.ACK, pb.Ack).code == pb.Ack.OK


def backlog(relay: RelayProcess, name: str) -> list[str]:
    """Log ``name`` in and return the texts of its backlog, up to the Sync that ends it."""
    c = client(relay)
    assert c.login(name, version=2).code == pb.LoginResponse.SUCCESS
    texts = []
    while True:
        frame_type, message = c.recv()
        if frame_type == FrameType.SYNC:
            break
        if frame_type == FrameType.MESSAGE:
            texts.append(message.msg)
    c.close()
    return texts


class DefaultHostRelay(RelayProcess):
    """The relay as an operator starts it: no ``--host``."""

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("--host")
        return cmd[:at] + cmd[at + 2 :]


def test_the_relay_listens_on_localhost_unless_told_otherwise(tmp_path: Path) -> None:
    with DefaultHostRelay(tmp_path / "relay") as relay:
        assert "--host" not in relay.command()
        relay.wait_for_log(r"listening on 127\.0\.0\.1:\d+ ")
        c = logged_in(relay, "alice")  # reachable on localhost
        c.close()


async def test_status_shows_the_running_relays_figures(relay: RelayProcess) -> None:
    alice = logged_in(relay, "alice")
    dave = logged_in(relay, "dave")
    offline = {name: logged_in(relay, name) for name in ("bob", "carol")}
    for peer in offline.values():
        make_buddies(alice, peer)
        peer.close()
    send_acked(alice, offline["bob"].uid, ["b1", "b2", "b3"], 1)
    send_acked(alice, offline["carol"].uid, ["c1"], 10)

    def settled() -> bool:
        figures = status_json(relay)
        return bool(figures["sessions"] == 2 and figures["devices"] == 2)

    await wait_until(settled, "status to count alice's and dave's sessions")
    figures = status_json(relay)
    assert figures["pid"] == relay.pid and figures["version"]
    assert figures["rooms"] == 0
    queues = [(q["username"], q["messages"]) for q in figures["largest_queues"]]
    assert queues == [("bob", 3), ("carol", 1)]
    assert figures["db_bytes"] + figures["wal_bytes"] > 0
    assert figures["store_available"] is True
    assert figures["uptime_s"] > 0

    next_id = iter(range(100, 1_000_000, 5))

    def traffic_seen() -> bool:
        send_acked(alice, offline["carol"].uid, ["busy"] * 5, next(next_id))
        return bool(status_json(relay)["messages_per_second"] > 0)

    await wait_until(traffic_seen, "a message rate above 0 while alice sends")

    table = relay.admin("status")
    assert table.returncode == 0, table.stderr
    for line in ("sessions       2", "devices        2", "rooms          0", "Largest queues"):
        assert line in table.stdout
    assert "bob" in table.stdout
    # Only the relay's user can read the figures.
    assert mode_of(relay.data_dir / "status.json") == 0o600
    assert mode_of(relay.data_dir) == 0o700
    alice.close()
    dave.close()


async def test_status_says_when_the_relay_is_stuck_or_not_running(relay: RelayProcess) -> None:
    await wait_until(lambda: relay.admin("status").returncode == 0, "a first status")
    assert relay.process is not None
    relay.process.send_signal(signal.SIGSTOP)  # a relay that stopped making progress
    try:

        def stale() -> bool:
            result = relay.admin("status", "--max-age", "1")
            return result.returncode == 4 and "may be stuck" in result.stderr

        await wait_until(stale, "status to call the stopped relay stuck")
    finally:
        relay.process.send_signal(signal.SIGCONT)
    await wait_until(lambda: relay.admin("status").returncode == 0, "status after SIGCONT")
    relay.stop()
    result = relay.admin("status")
    assert result.returncode == 3
    assert "no relay is running" in result.stderr and "start it" in result.stderr
    assert not (relay.data_dir / "status.json").exists()
    relay.start()
    await wait_until(lambda: (relay.data_dir / "status.json").exists(), "a status written")
    relay.kill()  # SIGKILL leaves status.json behind: the free lock tells the truth
    assert (relay.data_dir / "status.json").exists()
    assert relay.admin("status").returncode == 3


def test_a_summary_line_is_logged_every_summary_interval(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay", extra_args=["--summary-interval", "1"]) as relay:
        alice = logged_in(relay, "alice")
        bob = logged_in(relay, "bob")
        make_buddies(alice, bob)
        bob.close()
        send_acked(alice, bob.uid, ["one", "two"], 1)
        relay.wait_for_log(
            r"summary: sessions=1 devices=1 connections=1 msgs/s=[\d.]+ store=[\d.]+ \S+ "
            r"largest queue=bob 2 msgs"
        )
        alice.close()


async def test_no_summary_line_when_the_interval_is_0(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay", extra_args=["--summary-interval", "0"]) as relay:
        # Three status writes (every 2 s) prove the once-a-second maintenance ran for more
        # than the 1 s interval the other test logs summaries at.
        path = relay.data_dir / "status.json"
        written: set[float] = set()

        def seen() -> bool:
            if path.exists():
                written.add(json.loads(path.read_text())["written"])
            return len(written) >= 3

        await wait_until(seen, "three status writes")
        assert "summary:" not in relay.logs()


def test_one_relay_per_data_dir(relay: RelayProcess) -> None:
    second = RelayProcess(relay.data_dir)
    result = subprocess.run(second.command(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"a relay (pid {relay.pid}) is using the data dir" in result.stderr


async def test_backup_during_traffic_then_restore(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "relay")
    relay.start()
    try:
        alice = logged_in(relay, "alice")
        bob = logged_in(relay, "bob")
        make_buddies(alice, bob)
        bob.close()
        send_acked(alice, bob.uid, [f"before {i}" for i in range(50)], 1)
        # Traffic while the backup runs: alice keeps sending from another process's view.
        target = tmp_path / "backups" / "parley.backup"
        target.parent.mkdir()
        command = [sys.executable, "-m", "relay", "--data-dir", str(relay.data_dir), "backup"]
        backup = subprocess.Popen(
            [*command, str(target), "--progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        during = 0
        while backup.poll() is None:
            send_acked(alice, bob.uid, [f"during {during}"], 1000 + during)
            during += 1
        out, err = backup.communicate()
        assert backup.returncode == 0, err
        assert during > 0  # the relay stored messages while the copy was made
        assert "backup: 100%" in err and f"to {target}" in out
        send_acked(alice, bob.uid, ["after the backup"], 5000)

        assert mode_of(target) == 0o600
        assert not Path(f"{target}-wal").exists()  # one self-contained file
        copy = sqlite3.connect(target)
        assert copy.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        names = {row[0] for row in copy.execute("SELECT username FROM users")}
        assert names == {"alice", "bob"}
        copy.close()
        taken_during_traffic = tmp_path / "backups" / "during.backup"
        os.link(target, taken_during_traffic)

        again = relay.admin("backup", str(target))
        assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
        forced = relay.admin("backup", str(target), "--force")
        assert forced.returncode == 0, forced.stderr
        assert mode_of(target) == 0o600
        replaced = sqlite3.connect(target)  # the new copy has the message sent after the first
        assert replaced.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        replaced.close()

        refused = relay.admin("restore", str(target))
        assert refused.returncode == 2
        assert f"a relay (pid {relay.pid}) is using" in refused.stderr
        assert "stop the relay first" in refused.stderr
    finally:
        relay.stop()

    # A fresh data dir restored from the copy taken during traffic: everything acked before
    # the backup began, then an unbroken prefix of what was sent while it ran.
    fresh = RelayProcess(tmp_path / "fresh")
    restored = fresh.admin("restore", str(taken_during_traffic))
    assert restored.returncode == 0, restored.stderr
    assert mode_of(fresh.data_dir / "parley.db") == 0o600
    with fresh:
        texts = backlog(fresh, "bob")
    assert texts[:50] == [f"before {i}" for i in range(50)]
    assert texts[50:] == [f"during {i}" for i in range(len(texts) - 50)]
    assert len(texts) - 50 <= during
    # The forced backup, taken after the last message, has them all.
    latest = RelayProcess(tmp_path / "latest")
    assert latest.admin("restore", str(target)).returncode == 0
    with latest:
        texts = backlog(latest, "bob")
    assert len(texts) == 50 + during + 1 and texts[-1] == "after the backup"


def test_restore_replaces_the_store_and_keeps_the_old_one(tmp_path: Path) -> None:
    backup = tmp_path / "monday.backup"
    with RelayProcess(tmp_path / "relay") as relay:
        alice = logged_in(relay, "alice")
        bob = logged_in(relay, "bob")
        make_buddies(alice, bob)
        bob.close()
        send_acked(alice, bob.uid, ["monday"], 1)
        assert relay.admin("backup", str(backup)).returncode == 0
        send_acked(alice, bob.uid, ["tuesday"], 2)
        alice.close()
    relay.kill()  # not running (and a SIGKILLed relay's leftovers must not matter)
    restored = relay.admin("restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "schema version" in restored.stdout
    kept = list(relay.data_dir.glob("parley.db.before-restore-*"))
    assert len(kept) == 1 and mode_of(kept[0]) == 0o600
    relay.start()
    try:
        assert backlog(relay, "bob") == ["monday"]
    finally:
        relay.stop()
    # The kept store is the one from before the restore, whole.
    old = sqlite3.connect(kept[0])
    assert old.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    old.close()


def test_restore_refuses_what_is_not_a_parley_store(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "relay")
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    for path, reason in (
        (text, "not an SQLite database"),
        (other, "not a Parley store"),
        (tmp_path / "missing.db", "is not a file"),
    ):
        result = relay.admin("restore", str(path))
        assert result.returncode == 2 and reason in result.stderr, result.stderr
    assert not (relay.data_dir / "parley.db").exists()
