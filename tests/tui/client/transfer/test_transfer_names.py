"""File names of received transfers: hostile names made safe, unique names, never an
overwrite. Real files in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.validation import MAX_FILE_NAME_BYTES, safe_basename
from tui.client.transfer.files import choose_target, finalize, write_whole
from tui.client.transfer.names import numbered_name, part_name, split_extension, unique_name

HOSTILE = [
    "../../.bashrc",
    "/etc/passwd",
    "..\\..\\windows\\system32\\evil.dll",
    "a\x1b[31mred\x07\x00b.txt",
    "[bold]x[/]",
    "[link=file:///etc/passwd]click[/link].txt",
    "\u202eexe.txt",  # right-to-left override
    "..",
    ".",
    "",
    "   ",
    "x" * 4000,
    "é" * 4000 + ".txt",
    "name." + "e" * 300,
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_become_safe_base_names(name: str, tmp_path: Path) -> None:
    safe = safe_basename(name)
    assert safe and safe not in {".", ".."}
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert not safe.startswith(".")
    assert all(ch.isprintable() for ch in safe)
    assert len(safe.encode("utf-8")) <= MAX_FILE_NAME_BYTES
    target = choose_target(tmp_path, name)
    assert target.parent == tmp_path
    target.write_bytes(b"x")  # the file system accepts it
    again = choose_target(tmp_path, name)
    assert again != target and again.parent == tmp_path
    assert len(again.name.encode("utf-8")) <= MAX_FILE_NAME_BYTES
    part = tmp_path / part_name(again.name, "123")
    assert part.name.startswith(".") and len(part.name.encode("utf-8")) <= MAX_FILE_NAME_BYTES
    part.write_bytes(b"y")


def test_examples_of_hostile_names() -> None:
    assert safe_basename("../../.bashrc") == "bashrc"
    assert safe_basename("/etc/passwd") == "passwd"
    assert safe_basename("a\x1b[31mred\x07\x00b.txt") == "a[31mredb.txt"
    assert safe_basename("[bold]x[/]") == "]"  # only the last path component survives
    assert len(safe_basename("x" * 4000)) == MAX_FILE_NAME_BYTES


def test_split_extension() -> None:
    assert split_extension("report.pdf") == ("report", ".pdf")
    assert split_extension("archive.tar.gz") == ("archive", ".tar.gz")
    assert split_extension("README") == ("README", "")
    assert split_extension("trailing.") == ("trailing.", "")
    assert split_extension("a.b.c") == ("a.b", ".c")


def test_numbered_names() -> None:
    assert numbered_name("report.pdf", 0) == "report.pdf"
    assert numbered_name("report.pdf", 1) == "report (1).pdf"
    assert numbered_name("archive.tar.gz", 12) == "archive (12).tar.gz"
    long = "x" * 250 + ".txt"
    numbered = numbered_name(long, 7)
    assert numbered.endswith(" (7).txt")
    assert len(numbered.encode("utf-8")) <= MAX_FILE_NAME_BYTES
    multibyte = "é" * 200 + ".txt"  # 404 bytes: cut on a character boundary
    assert numbered_name(safe_basename(multibyte), 3).endswith(" (3).txt")


def test_unique_name_skips_taken_names() -> None:
    taken = {"a.txt", "a (1).txt", "a (2).txt"}
    assert unique_name("a.txt", taken.__contains__) == "a (3).txt"
    assert unique_name("b.txt", taken.__contains__) == "b.txt"
    assert unique_name("../a.txt", taken.__contains__) == "a (3).txt"
    with pytest.raises(FileExistsError):
        unique_name("a.txt", lambda _: True, limit=5)


def test_reserved_targets_are_not_reused(tmp_path: Path) -> None:
    first = choose_target(tmp_path, "f.bin")
    second = choose_target(tmp_path, "f.bin", reserved=[first])
    assert (first.name, second.name) == ("f.bin", "f (1).bin")


def test_part_names_are_hidden_distinct_and_bounded() -> None:
    assert part_name("f.bin", "7") == ".f.bin.7.parley-part"
    long = "y" * 255
    a, b = part_name(long, "1"), part_name(long, "2")
    assert a != b
    assert all(len(p.encode("utf-8")) <= MAX_FILE_NAME_BYTES for p in (a, b))


async def test_finalize_never_overwrites(tmp_path: Path) -> None:
    existing = tmp_path / "doc.txt"
    existing.write_bytes(b"precious")
    part = tmp_path / ".doc.txt.1.parley-part"
    part.write_bytes(b"new")
    final = await finalize(part, existing)
    assert final == tmp_path / "doc (1).txt"
    assert existing.read_bytes() == b"precious" and final.read_bytes() == b"new"
    assert not part.exists()


async def test_write_whole_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "v1.bin").write_bytes(b"old")
    path = await write_whole(tmp_path, "../v1.bin", b"new")
    assert path == tmp_path / "v1 (1).bin" and path.read_bytes() == b"new"
    assert (tmp_path / "v1.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1 (1).bin", "v1.bin"]
