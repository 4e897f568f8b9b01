"""Slash commands typed in the composer: the pure parser, the command table and Tab
completion (no widgets, no session; :mod:`tui.command_runner` carries commands out).

Invariants:
- :func:`parse` never raises: a text is a :class:`Command`, a :class:`Send` (a message to
  send as typed; ``//text`` sends ``/text``) or a :class:`Refused` (unknown command or bad
  arguments) with the sentence to show; a refused text is never sent.
- A command name is matched case-insensitively and only in full (``/he`` is unknown;
  Tab completes it).
- :data:`COMMANDS` is the only list of commands: the parser, the completion, ``/help`` and
  the help screen read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PLACEHOLDER = "Select a chat, or type a /command (/help lists them)"


@dataclass(frozen=True)
class Spec:
    name: str
    args: str  # usage after the name, e.g. "NAME text"; "" for none
    help: str
    required: int = 0  # how many leading words must be there (the last takes the rest)


COMMANDS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec("msg", "NAME text", "Send text to buddy NAME and open that chat", 2),
        Spec("join", "ROOM", "Join the room ROOM you are invited to (or open it)", 1),
        Spec("invite", "NAME", "Invite user NAME into the open room", 1),
        Spec("leave", "", "Leave the open room"),
        Spec("me", "action", 'Send "* yourname action"', 1),
        Spec("away", "[message]", "Auto-reply to 1:1 messages until /back (local only)"),
        Spec("back", "", "Stop the away auto-reply"),
        Spec("ignore", "NAME", "Block NAME on the relay; hide their room messages", 1),
        Spec("unignore", "NAME", "Unblock NAME", 1),
        Spec("clear", "", "Clear the conversation view (the history stays)"),
        Spec("mute", "", "No bell, title count or toast for the open chat (unread still counts)"),
        Spec("unmute", "", "Bell, title count and toasts again for the open chat"),
        Spec("search", "[TEXT]", "Search the history, this chat or all (Ctrl+F)"),
        Spec("help", "", "List the keys and these commands"),
        Spec("quit", "", "Quit Parley"),
    )
}


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]  # the required words; the last one holds the rest of the line

    @property
    def rest(self) -> str:
        return self.args[-1] if self.args else ""


@dataclass(frozen=True)
class Send:
    text: str


@dataclass(frozen=True)
class Refused:
    reason: str


Parsed = Command | Send | Refused


def usage(spec: Spec) -> str:
    return f"/{spec.name} {spec.args}".rstrip()


def parse(text: str) -> Parsed:
    """What the composer's text means; see the module docstring."""
    text = text.rstrip("\n")
    if not text.startswith("/"):
        return Send(text)
    if text.startswith("//"):
        return Send(text[1:])
    head, _, rest = text[1:].partition(" ")
    name = head.strip().casefold()
    if "\n" in name:  # "/word\nmore": a command takes one line
        name, _, more = name.partition("\n")
        rest = f"{more} {rest}".strip()
    spec = COMMANDS.get(name)
    if spec is None:
        shown = head.split("\n", 1)[0][:32]
        return Refused(f"Unknown command /{shown} (/help lists them; // sends a literal /).")
    rest = rest.strip()
    if spec.required == 0:
        return Command(name, (rest,) if rest else ())
    words = rest.split(maxsplit=spec.required - 1)
    if len(words) < spec.required:
        return Refused(f"Usage: {usage(spec)}")
    return Command(name, tuple(words))


def command_lines() -> list[tuple[str, str]]:
    """(usage, help) for each command, in table order (for /help and the help screen)."""
    return [(usage(spec), spec.help) for spec in COMMANDS.values()]


# --- Tab completion ---------------------------------------------------------------------------


def completions(text: str, names: Iterable[str]) -> tuple[str, list[str]]:
    """The word being completed at the end of ``text`` and its candidates, sorted: command
    names (with their slash) for a first word starting with "/", else ``names`` (buddies,
    room members, rooms) starting with the word, case-insensitively."""
    start = max(text.rfind(" "), text.rfind("\n")) + 1
    word = text[start:]
    if not word:
        return word, []
    key = word.casefold()
    if start == 0 and word.startswith("/") and not word.startswith("//"):
        pool: Iterable[str] = (f"/{name}" for name in COMMANDS)
    else:
        pool = names
    found = sorted(
        {n for n in pool if n.casefold().startswith(key) and n != word}, key=str.casefold
    )
    return word, found


def complete(text: str, names: Iterable[str], turn: int = 0) -> str | None:
    """``text`` with its last word completed to the ``turn``-th candidate (cycling), a space
    added after a command name; None when nothing matches."""
    word, found = completions(text, names)
    if not found:
        return None
    choice = found[turn % len(found)]
    suffix = " " if choice.startswith("/") else ""
    return text[: len(text) - len(word)] + choice + suffix
