"""The client library stands alone: nothing under ``tui/client/`` imports textual or rich.

Every module of the package is imported in a fresh interpreter (so modules the test runner
already loaded cannot hide an import) and the interpreter's ``sys.modules`` is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tui.client

REPOSITORY = Path(__file__).resolve().parents[3]

IMPORT_ALL = """
import importlib, json, pkgutil, sys
import tui.client
names = sorted(
    info.name
    for info in pkgutil.walk_packages(tui.client.__path__, prefix="tui.client.")
)
for name in names:
    importlib.import_module(name)
ui = sorted(m for m in sys.modules if m.split(".")[0] in {"textual", "rich"})
print(json.dumps({"imported": names, "ui_modules": ui}))
"""


def test_no_module_under_tui_client_imports_textual_or_rich() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(done.stdout)
    package_dir = Path(tui.client.__file__).parent
    on_disk = {
        ".".join(("tui", "client", *path.relative_to(package_dir).with_suffix("").parts))
        for path in package_dir.rglob("*.py")
        if path.name != "__init__.py"
    }
    assert on_disk <= set(report["imported"])  # every module was really imported
    assert report["ui_modules"] == []
