"""The real ``parley`` scripting commands (``send``, ``tail``) as tests drive them: the
options that reach a test relay over TLS with a password file, and the command in a
process of its own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.harness import RelayProcess
from tests.tui.client.sessions import WAIT


def cli_args(relay: RelayProcess, tmp_path: Path, user: str, data_dir: Path) -> list[str]:
    """Options for ``user`` (password ``pw-<user>``, written to a file in ``tmp_path``) on
    ``relay``, its certificate pinned, history in ``data_dir``."""
    (tmp_path / f"{user}.pw").write_text(f"pw-{user}\n")
    assert relay.fingerprint is not None
    return [
        *("--host", relay.host, "--port", str(relay.port), "--user", user),
        *("--password-file", str(tmp_path / f"{user}.pw")),
        *("--fingerprint", relay.fingerprint, "--data-dir", str(data_dir)),
    ]


def parley(*args: str) -> subprocess.Popen[str]:
    """The real ``parley`` command, in its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "tui.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Its exit status and output, within WAIT seconds."""
    out, err = await asyncio.to_thread(process.communicate, timeout=WAIT)
    return process.returncode, out, err
