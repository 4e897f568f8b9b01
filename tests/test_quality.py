"""ruff (lint and format), mypy and the module-size rule are part of the suite, so the
README's one test command checks them too."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_packages() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean_over_the_repository() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


MAX_MODULE_LINES = 500


def test_a_module_over_500_lines_states_why_in_its_docstring() -> None:
    """ARCHITECTURE.md: modules stay small enough to read in one sitting; a longer one says
    why in its docstring, as "(About N lines: reason)"."""
    unexplained = []
    for package in ("protocol", "relay", "tui", "certs"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name.endswith("_pb2.py"):
                continue
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > MAX_MODULE_LINES:
                docstring = ast.get_docstring(ast.parse(text)) or ""
                if not re.search(r"About \d+ lines: \w", docstring):
                    unexplained.append(str(path.relative_to(ROOT)))
    assert unexplained == []


def test_the_readme_code_map_names_every_module() -> None:
    """README's Development section maps the code one line per module; a module added or
    renamed without updating it fails here."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code_map = readme[readme.index("## Development") :]
    missing = []
    for package in ("protocol", "relay", "tui", "certs"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "__init__.py" or path.name.endswith("_pb2.py"):
                continue
            if not re.search(rf"\b{re.escape(path.stem)}\b", code_map):
                missing.append(str(path.relative_to(ROOT)))
    assert missing == []
