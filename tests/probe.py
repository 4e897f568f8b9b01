"""Run a short Python script in a fresh interpreter and read the JSON it prints last: for
tests about what a process imports or loads (lazy modules, codecs), which a test process
that already imported everything cannot show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]


def run_probe(script: str, *args: str, timeout: float = 120.0) -> Any:
    """Run ``script`` with ``args`` (``sys.argv[1:]``) from the repository's root; return the
    JSON object on its last line of output. Fails the test with its stderr if it fails."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
