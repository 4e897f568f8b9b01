"""Device names and slots (tui.client.device): ``tui@host``, then ``tui@host#2`` while the
first is held by another running client; flock-held, so a slot frees when its holder ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tui.client.device import TAIL, TUI, claim_device, default_device, lock_path
from tui.client.login import MAX_DEVICE_LENGTH


def test_names_are_kind_at_host_and_fit_the_protocol_limit() -> None:
    assert default_device(TUI, hostname="box") == "tui@box"
    assert default_device(TAIL, 2, hostname="box") == "tail@box#2"
    long = default_device(TUI, 12, hostname="h" * 200)
    assert len(long) == MAX_DEVICE_LENGTH and long.startswith("tui@hhh") and long.endswith("#12")
    assert default_device(TUI, hostname="bad\x1bhost\n") == "tui@badhost"


def test_a_second_client_takes_the_next_slot_and_reuses_it(tmp_path: Path) -> None:
    first = claim_device(tmp_path, "alice", TUI, hostname="box")
    second = claim_device(tmp_path, "alice", TUI, hostname="box")
    assert (first.name, second.name) == ("tui@box", "tui@box#2")
    assert first.locked and second.locked
    # Another kind, another user: their own first slots.
    with claim_device(tmp_path, "alice", TAIL, hostname="box") as tail:
        assert tail.name == "tail@box"
    with claim_device(tmp_path, "bob", TUI, hostname="box") as bob:
        assert bob.name == "tui@box"
    second.release()
    again = claim_device(tmp_path, "alice", TUI, hostname="box")
    assert again.name == "tui@box#2"  # the second one running is #2 again
    first.release()
    with claim_device(tmp_path, "alice", TUI, hostname="box") as third:
        assert third.name == "tui@box"
    again.release()


def test_a_slot_held_by_another_process_is_skipped_until_it_exits(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "alice", "tui@box")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from pathlib import Path
                from tui.client.device import claim_device
                claim = claim_device(Path({str(tmp_path)!r}), "alice", "tui", hostname="box")
                print(claim.name, flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "tui@box"
        assert path.exists()
        with claim_device(tmp_path, "alice", TUI, hostname="box") as claim:
            assert claim.name == "tui@box#2"
    finally:
        holder.communicate("\n", timeout=30)
    with claim_device(tmp_path, "alice", TUI, hostname="box") as claim:
        assert claim.name == "tui@box"  # its holder ended: the slot is free again


def test_an_explicit_name_is_used_as_given(tmp_path: Path) -> None:
    with claim_device(tmp_path, "alice", TUI, explicit="laptop", hostname="box") as held:
        assert held.name == "laptop" and held.locked
        with claim_device(tmp_path, "alice", TUI, explicit="laptop", hostname="box") as same:
            assert same.name == "laptop" and not same.locked  # asked for: used, not replaced
    with pytest.raises(ValueError):
        claim_device(tmp_path, "alice", TUI, explicit="x" * 65)
    with pytest.raises(ValueError):
        claim_device(tmp_path, "alice", TUI, explicit="tab\there")
