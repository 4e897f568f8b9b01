"""README.md against the real app (issue 15, acceptance): the key-binding table, the composer
commands and the F1 help agree, and the README's picture of the main screen is what the app
draws at 80×24.

Both sides are read at run time (README.md from disk; the bindings from the classes in
``tui/screens``, ``tui/widgets``, ``tui/dialogs`` and ``ParleyApp``; the commands from
:data:`tui.commands.COMMANDS`; the F1 help from :func:`tui.keymap.key_rows`), so a binding
or a README row added later is checked too.

Invariants checked:
- every key of every binding a Parley class defines is in a README row of the section(s)
  :data:`CLASS_SECTIONS` gives for that class, except the pairs in :data:`NOT_IN_README`;
  a Parley class with bindings and no entry in :data:`CLASS_SECTIONS` fails the test;
- every key a README row names is bound in that section: by the Parley classes of the
  section or the Textual classes they are built of (their merged ``BINDINGS``), by the
  Textual parts listed in :data:`TEXTUAL_PARTS`, or is one of the :data:`NON_KEY_PHRASES`
  (mouse actions, typing);
- the "Composer commands" rows are exactly the commands' usages and help texts;
- every F1 help row has a README row in the same section naming at least its keys, and
  every README row names only keys the F1 help shows in its section, except the sections
  in :data:`README_BEYOND_F1` and the keys in :data:`KEYS_BEYOND_F1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Input, ListView, OptionList

import tui.dialogs
import tui.screens
import tui.widgets
from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, start_peer, wait_until
from tui.app import ParleyApp
from tui.client.history import MessageState
from tui.client.session import ClientSession
from tui.commands import COMMANDS, usage
from tui.keymap import key_rows

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS_SECTION = "Composer commands"

# Which README section(s) document a Parley class's bindings (any one of them will do).
CLASS_SECTIONS: dict[str, tuple[str, ...]] = {
    "ParleyApp": ("Everywhere",),
    "MainScreen": ("Main screen",),
    "RoomScreen": ("Main screen",),
    "HistoryFinding": ("Main screen",),
    "AttentionScreen": ("Main screen",),
    "HelpScreen": ("Help screen",),
    "LoginScreen": ("Login screen", "Everywhere"),
    "FormCheckbox": ("Login screen",),
    "BuddyList": ("Buddies",),
    "RoomList": ("Rooms",),
    "Composer": ("Composer",),
    "ConversationView": ("Conversation",),
    "BoardCanvas": ("Board",),
    "BoardPane": ("Board",),
    "FilesPane": ("Files",),
    "PathInput": ("Send files dialog", "Save file dialog"),
    "PickFileDialog": ("Send files dialog",),
    "SaveFileDialog": ("Save file dialog",),
    "SearchDialog": ("Search dialog",),
    "FullMessageDialog": ("Whole message dialog",),
    "KickedDialog": ("Session taken dialog",),
    "ChoiceDialog": ("Dialogs",),
    "FingerprintChangedDialog": ("Fingerprint changed dialog",),
    "RoomMemberDialog": ("Dialogs",),
    "RoomNameDialog": ("Dialogs",),
    "TrustDialog": ("Dialogs",),
    "UserSearchDialog": ("Dialogs",),
    "SwitchConversationDialog": ("Dialogs",),
}

# (class, key) bindings deliberately not in the README, with the reason.
NOT_IN_README: dict[tuple[str, str], str] = {
    ("UserSearchDialog", "down"): "↓ from the name field into the results list: list movement",
    ("SwitchConversationDialog", "down"): "↓ from the filter into the matches: list movement",
}

# Textual widgets a section is built of, whose own bindings the README may name.
TEXTUAL_PARTS: dict[str, tuple[type[DOMNode], ...]] = {
    "Everywhere": (Screen,),  # Tab / Shift+Tab focus, Ctrl+C copy
    "Files": (ListView,),  # the transfer list: ↑ ↓ Enter
    "Search dialog": (Input, OptionList),  # the query field and the hits
    "Mouse": (),
}

# Cells (or parts of cells) of the Keys column that name no key: mouse actions and typing.
NON_KEY_PHRASES = (
    "mouse: click an offer in the chat",
    "mouse: press, drag, release",
    "click, wheel",
    "type,",
)

# README sections the F1 help does not show, and README rows beyond the F1 help's keys.
README_BEYOND_F1: dict[str, str] = {
    "Login screen": "the F1 help lists the keys of the main screen and its parts",
    "Help screen": "the help's own keys are said in its title (Esc closes)",
    "Whole message dialog": "a dialog's keys show in its own footer",
    "Session taken dialog": "a dialog's keys show in its own footer",
    "Fingerprint changed dialog": "a dialog's keys show in its own footer",
}
KEYS_BEYOND_F1: dict[tuple[str, str], str] = {
    ("Search dialog", "enter"): "Enter jumps to the hit: the hit list's own key (OptionList)",
}

_KEY_NAMES = {
    "Esc": "escape",
    "Enter": "enter",
    "Del": "delete",
    "Tab": "tab",
    "Space": "space",
    "PgUp": "pageup",
    "PgDn": "pagedown",
    "Home": "home",
    "End": "end",
    "←": "left",
    "→": "right",
    "↑": "up",
    "↓": "down",
}
_ARROWS = ("left", "right", "up", "down")
_KEY_TOKEN = rf"(?:(?:Ctrl|Alt|Shift)\+)*(?:F\d{{1,2}}|[A-Z0-9]|{'|'.join(_KEY_NAMES)})"


@dataclass(frozen=True)
class Row:
    where: str
    keys: str
    action: str


def key_name(token: str) -> str:
    """``Ctrl+N`` → ``ctrl+n``, ``F5`` → ``f5``, ``Esc`` → ``escape``, ``A`` → ``a``."""
    *mods, base = token.split("+")
    for mod in mods:
        assert mod in ("Ctrl", "Alt", "Shift"), f"{token!r}: unknown modifier {mod!r}"
    if base in _KEY_NAMES:
        name = _KEY_NAMES[base]
    elif re.fullmatch(r"F\d{1,2}", base) or re.fullmatch(r"[A-Z0-9]", base):
        name = base.lower()
    else:
        raise AssertionError(f"{token!r} is not a key name")
    return "+".join([mod.lower() for mod in mods] + [name])


def keys_of(row: Row) -> frozenset[str]:
    """The keys a row names: its Keys cell plus an "(also KEYS" note in its action."""
    text = row.keys
    for phrase in NON_KEY_PHRASES:
        text = text.replace(phrase, " ")
    shifted = "(Shift:" in text  # "← ↑ → ↓ (Shift: 5 cells)"
    text = re.sub(r"\(Shift:[^)]*\)", " ", text)
    text = re.sub(  # "Alt+1 … Alt+9"
        r"(\w+)\+(\d) … \1\+(\d)",
        lambda m: " ".join(f"{m[1]}+{n}" for n in range(int(m[2]), int(m[3]) + 1)),
        text,
    )
    keys = {key_name(token) for token in re.split(r"[\s,/]+", text) if token}
    also = re.search(rf"\(also ({_KEY_TOKEN}(?: / {_KEY_TOKEN})*)\b", row.action)
    if also:  # "New line (also Shift+Enter)", as tui.keymap writes a third key
        keys |= {key_name(token) for token in also[1].split(" / ")}
    if shifted:
        keys |= {f"shift+{key}" for key in keys if key in _ARROWS}
    return frozenset(keys)


def readme_rows() -> list[Row]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| Where | Keys | Action |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, f"README row with {len(cells)} cells: {line!r}"
        rows.append(Row(*cells))
    assert rows, "no rows under the README's key table header"
    return rows


def parley_classes() -> list[type[DOMNode]]:
    """ParleyApp and every DOM class defined in tui/screens, tui/widgets, tui/dialogs."""
    found: list[type[DOMNode]] = [ParleyApp]
    for package in (tui.screens, tui.widgets, tui.dialogs):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            found += [
                obj
                for obj in vars(module).values()
                if inspect.isclass(obj)
                and issubclass(obj, DOMNode)
                and obj.__module__ == module.__name__
            ]
    return found


def own_bindings(cls: type[DOMNode]) -> list[Binding]:
    bindings = cls.__dict__.get("BINDINGS", [])
    assert all(isinstance(b, Binding) for b in bindings), f"{cls.__name__}: use Binding(...)"
    return list(bindings)


def merged_keys(cls: type[DOMNode]) -> set[str]:
    """Every key bound by the class or a base class (Textual's own included)."""
    merged = cls._merged_bindings
    assert merged is not None
    return {key for key in merged.key_to_bindings for key in key.split(",")}


def section_keys() -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {section: set() for section in TEXTUAL_PARTS}
    for cls in parley_classes():
        for section in CLASS_SECTIONS.get(cls.__name__, ()):
            keys.setdefault(section, set()).update(merged_keys(cls))
    for section, parts in TEXTUAL_PARTS.items():
        for part in parts:
            keys[section] |= merged_keys(part)
    keys["Everywhere"].add(ParleyApp.COMMAND_PALETTE_BINDING)
    return keys


def test_every_binding_of_the_app_has_a_readme_row() -> None:
    rows = [row for row in readme_rows() if row.where != COMMANDS_SECTION]
    by_section: dict[str, set[str]] = {}
    for row in rows:
        by_section.setdefault(row.where, set()).update(keys_of(row))
    missing, unmapped = [], []
    for cls in parley_classes():
        bindings = own_bindings(cls)
        if not bindings:
            continue
        if cls.__name__ not in CLASS_SECTIONS:
            unmapped.append(cls.__name__)
            continue
        sections = CLASS_SECTIONS[cls.__name__]
        for binding in bindings:
            for key in binding.key.split(","):
                if (cls.__name__, key) in NOT_IN_README:
                    continue
                if not any(key in by_section.get(section, set()) for section in sections):
                    missing.append(f"{cls.__name__}: {key} ({binding.description!r}) in {sections}")
    assert not unmapped, f"classes with bindings missing from CLASS_SECTIONS: {unmapped}"
    assert not missing, "bindings without a README row:\n" + "\n".join(missing)


def test_every_readme_row_names_keys_the_app_binds() -> None:
    available = section_keys()
    wrong = []
    for row in readme_rows():
        if row.where == COMMANDS_SECTION:
            continue
        assert row.where in available, f"README section {row.where!r} has no class in the test"
        unbound = sorted(keys_of(row) - available[row.where])
        if unbound:
            wrong.append(f"{row.where} | {row.keys}: {unbound} not bound there")
    assert not wrong, "README rows naming keys the app does not bind:\n" + "\n".join(wrong)


def test_readme_commands_are_the_composer_commands() -> None:
    readme = {
        row.keys.strip("`"): row.action for row in readme_rows() if row.where == COMMANDS_SECTION
    }
    assert readme == {usage(spec): spec.help for spec in COMMANDS.values()}


def test_readme_and_the_f1_help_agree() -> None:
    readme = readme_rows()
    f1 = [Row(row.where, row.keys, row.action) for row in key_rows(ParleyApp.BINDINGS)]
    assert [r for r in f1 if r.where == COMMANDS_SECTION] == [
        Row(r.where, r.keys.strip("`"), r.action) for r in readme if r.where == COMMANDS_SECTION
    ]
    f1_keys: dict[str, set[str]] = {}
    for row in f1:
        if row.where != COMMANDS_SECTION:
            f1_keys.setdefault(row.where, set()).update(keys_of(row))
    not_in_readme = [
        f"{row.where} | {row.keys}"
        for row in f1
        if row.where != COMMANDS_SECTION
        and not any(r.where == row.where and keys_of(row) <= keys_of(r) for r in readme)
    ]
    assert not not_in_readme, "F1 help rows without a README row:\n" + "\n".join(not_in_readme)
    not_in_f1 = []
    for row in readme:
        if row.where in (COMMANDS_SECTION, *README_BEYOND_F1):
            continue
        extra = {key for key in keys_of(row) if (row.where, key) not in KEYS_BEYOND_F1}
        if extra - f1_keys.get(row.where, set()):
            missing = sorted(extra - f1_keys.get(row.where, set()))
            not_in_f1.append(f"{row.where} | {row.keys}: {missing}")
    assert not not_in_f1, "README rows the F1 help does not show:\n" + "\n".join(not_in_f1)
    for section in README_BEYOND_F1:
        assert section not in f1_keys, f"{section!r} is in the F1 help now: drop the exception"


# --- the picture of the main screen ---------------------------------------------------------

SIZE = (80, 24)
_VARYING = (  # data-dependent parts of the picture
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}:\d+"), "HOST:PORT"),
    (re.compile(r"\bTLS \S+"), "TLS FINGERPRINT"),
    (re.compile(r"\b\d\d:\d\d\b"), "HH:MM"),
)


def normalized(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        for pattern, replacement in _VARYING:
            line = pattern.sub(replacement, line)
        lines.append(line.rstrip())
    return lines


def readme_picture() -> str:
    """The fenced block that follows "The main screen at 80×24" in the README."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"The main screen at 80×24[^\n]*\n\n```\n(.*?)\n```", text, re.S)
    assert match, "README: no picture after 'The main screen at 80×24…:'"
    return match[1]


async def test_the_readme_picture_is_the_main_screen_at_80x24(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    """The state the picture shows: alice chats with bob (online, typing); dave (online,
    typing) sent 2 unread messages; carol is a buddy who is offline; erin asks alice to be
    buddies; alice asked frank, who has not answered."""
    expected = normalized(readme_picture())
    peers = {name: await start_peer(relay, tmp_path, name) for name in ("carol", "dave", "erin")}
    peers["frank"] = await start_peer(relay, tmp_path, "frank")
    carol, dave, erin, frank = peers["carol"], peers["dave"], peers["erin"], peers["frank"]
    app = ParleyApp(app_config(tmp_path, relay))
    typing: asyncio.Task[None] | None = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            alice = screen.session.uid or 0
            for peer in (bob, dave, carol):
                await screen.session.add_buddy(peer.uid or 0)
                await peer.add_buddy(alice)
            await screen.session.add_buddy(frank.uid or 0)
            await erin.add_buddy(alice)
            await carol.close()
            await wait_until(
                pilot,
                lambda: all(n in screen_text(app) for n in ("erin", "frank", "○ carol")),
                "erin's request, frank waiting and carol offline in the buddy list",
            )
            screen.buddy_list.focus()
            screen.buddy_list.highlight_uid(bob.uid or 0)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.focused is screen.composer, "the chat with bob")
            await pilot.press(*"Morning! The relay build is green.", "enter")
            await wait_until(pilot, lambda: "is green" in screen_text(app), "alice's message")
            bob.send_text(
                alice,
                "Great. I'll tag it after lunch. Can you check the TUI on a 60x20 terminal"
                " over ssh before that?",
            )
            await wait_until(pilot, lambda: "after lunch" in screen_text(app), "bob's answer")
            await pilot.press(*"Sure, doing it now.", "enter")
            dave.send_text(alice, "ping")
            dave.send_text(alice, "are you there?")

            async def keep_typing() -> None:  # the marker shows for 1.5 s after each hint
                while True:
                    bob.send_typing(alice)
                    dave.send_typing(alice)
                    await asyncio.sleep(0.3)

            typing = asyncio.create_task(keep_typing())

            def delivered() -> int:
                states = [entry.state for entry in screen.view.timeline.entries]
                return states.count(MessageState.DELIVERED)

            await wait_until(pilot, lambda: delivered() == 2, "both of alice's messages delivered")
            try:
                await wait_until(
                    pilot, lambda: normalized(screen_text(app)) == expected, "the README picture"
                )
            except AssertionError:
                actual = normalized(screen_text(app))
                diff = [
                    f"line {n + 1}:\n  README: {want!r}\n  app:    {got!r}"
                    for n, (want, got) in enumerate(zip(expected, actual, strict=False))
                    if want != got
                ]
                raise AssertionError(
                    "README picture differs from the app at 80×24:\n"
                    + "\n".join(diff)
                    + "\nthe app's screen:\n"
                    + screen_text(app)
                ) from None
    finally:
        if typing is not None:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        for name in ("dave", "erin", "frank"):
            await peers[name].close()
