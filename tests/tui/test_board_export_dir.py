"""Where a board export goes when no directory is configured (issue 15; README says the
same): ~/Documents when it exists, else the home directory — never a folder we create."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from tui.board_export import default_export_dir, export_text


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))  # no user-dirs.dirs
    monkeypatch.delenv("XDG_DOCUMENTS_DIR", raising=False)
    return home


def test_without_documents_the_export_goes_home(home: Path) -> None:
    (home / "Downloads").mkdir()  # not a fallback: the README names only Documents and home
    assert default_export_dir() == home
    path = export_text("x", "bob", when=datetime.datetime(2024, 6, 4, 12, 0, 0))
    assert path.parent == home and path.read_text() == "x\n"
    assert not (home / "Documents").exists()  # not created


def test_with_documents_the_export_goes_there(home: Path) -> None:
    (home / "Documents").mkdir()
    assert default_export_dir() == home / "Documents"
    path = export_text("x", "bob", when=datetime.datetime(2024, 6, 4, 12, 0, 0))
    assert path.parent == home / "Documents"


def test_the_readme_says_the_same() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| Board | X |"))
    assert "~/Documents" in row and "home directory" in row
