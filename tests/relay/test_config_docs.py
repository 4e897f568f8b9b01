"""docs/CONFIGURATION.md documents every key of RelayConfig: its flag and its default as the
code has them. A key added, renamed or given another default without the doc fails here."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from relay.cli import build_parser
from relay.config import RelayConfig

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "CONFIGURATION.md"
_ROW = re.compile(
    r"^\| `(?P<key>[a-z0-9_]+)` \| (?P<flag>[^|]*) \| (?P<default>[^|]*) \| (?P<meaning>[^|]+) \|$"
)


def documented() -> dict[str, tuple[str, str, str]]:
    rows: dict[str, tuple[str, str, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            key = match["key"]
            assert key not in rows, f"{key} is documented twice"
            rows[key] = (match["flag"], match["default"], match["meaning"].strip())
    return rows


FIELDS = {field.name: field for field in dataclasses.fields(RelayConfig)}


def test_every_key_is_documented_and_nothing_else() -> None:
    rows = documented()
    assert sorted(set(FIELDS) - set(rows)) == [], "keys missing from docs/CONFIGURATION.md"
    assert sorted(set(rows) - set(FIELDS)) == [], "documented keys RelayConfig does not have"
    assert all(len(meaning) > 20 for _, _, meaning in rows.values())


def test_each_documented_flag_is_the_keys_flag_and_every_flag_is_documented() -> None:
    rows = documented()
    by_option = {
        option: action.dest
        for action in build_parser()._actions
        for option in action.option_strings
        if action.dest in FIELDS
    }
    for key, (flag_cell, _, _) in rows.items():
        named = re.findall(r"`(--[a-z0-9-]+)", flag_cell)
        assert all(by_option.get(option) == key for option in named), (key, named)
        if not named:
            assert "config file only" in flag_cell, key
    for option, key in by_option.items():
        assert option in rows[key][0], f"{option} (key {key}) is not in the doc"


def test_each_documented_default_is_the_codes() -> None:
    rows = documented()
    for key, field in FIELDS.items():
        if field.default is dataclasses.MISSING or field.default is None:
            continue  # computed (data_dir, unix_socket) or none (cert, key): said in words
        literal = re.search(r"`([^`]+)`", rows[key][1])
        assert literal is not None, f"{key}: no default literal"
        value = tomllib.loads(f"v = {literal.group(1)}")["v"]
        assert value == field.default and type(value) is type(field.default), (key, value)


def test_the_readme_links_the_configuration_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/CONFIGURATION.md)" in readme
