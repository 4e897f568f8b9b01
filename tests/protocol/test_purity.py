"""protocol/ is sans-IO: importing it must not pull in any I/O module (h11's rule)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

FORBIDDEN = {"socket", "ssl", "selectors", "asyncio", "sqlite3", "textual"}
PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "protocol"


def test_protocol_sources_import_no_io_module() -> None:
    offenders = []
    for path in PROTOCOL_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_protocol_loads_no_io_module() -> None:
    code = (
        "import sys, protocol, protocol.validation\n"
        f"bad = sorted(m for m in {sorted(FORBIDDEN)!r} if m in sys.modules)\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
