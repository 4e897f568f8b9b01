"""Textual's key names turned into characters and labels without searching Unicode's names.

Whenever the focus is inside a widget that consumes typed characters (the composer, an
``Input``), Textual's ``Screen._binding_chain`` asks ``textual.keys.key_to_character`` for
every binding key of the focus chain, and that looks each multi-letter name up in the
Unicode database (``unicodedata.lookup("UP")``, ``"F5"``, ``"PAGEDOWN"``…). A name that is
no character's probes the table's hash chains and reads names all over
``unicodedata.so``: about 0.8 MiB of its pages become resident in every client for about
fifteen key names (bench/bench_tui_memory.py, docs/BENCHMARKS.md "Client memory"). The
footer's labels (``App.get_key_display`` → ``textual.keys.format_key``) look up every key
shown the same way (``"f5"``, ``"n"``).

:func:`install_key_names` makes Textual's screen and app modules use
:func:`key_to_character` and :func:`format_key`, which answer Textual's named keys
(``Keys``: arrows, F-keys, Home, …) and single letters and digits from tables and ask
Textual's functions for anything else.

Invariants:
- Same answers as Textual's functions for every key (``tests/tui/test_key_names.py``
  compares them for all of ``Keys``, letters and digits); only the lookups are skipped.
- :func:`install_key_names` is idempotent and replaces only those two names in
  ``textual.screen`` and ``textual.app``.
"""

from __future__ import annotations

import string

from textual import app as textual_app
from textual import keys as textual_keys
from textual import screen as textual_screen

# Textual's named keys that are a character through a Unicode name or alias.
CHARACTER_KEYS = {"escape": "\x1b", "delete": "\x7f", "tab": "\t", "space": " ", "backspace": "\b"}
NOT_CHARACTERS = frozenset(key.value for key in textual_keys.Keys) - CHARACTER_KEYS.keys()
# Labelled as themselves unless Textual's display table says otherwise.
PLAIN_LABELS = (
    NOT_CHARACTERS | CHARACTER_KEYS.keys() | frozenset(string.ascii_letters + string.digits)
)

_textual_key_to_character = textual_keys.key_to_character
_textual_format_key = textual_keys.format_key


def key_to_character(key: str) -> str | None:
    """``textual.keys.key_to_character(key)``, without its Unicode name lookups for
    Textual's named keys."""
    if key in NOT_CHARACTERS:
        return None
    character = CHARACTER_KEYS.get(key)
    return character if character is not None else _textual_key_to_character(key)


def format_key(key: str) -> str:
    """``textual.keys.format_key(key)`` (the footer's label of a key), without its Unicode
    name lookups for named keys, letters and digits."""
    if key in PLAIN_LABELS:
        return textual_keys.KEY_DISPLAY_ALIASES.get(key) or key
    return _textual_format_key(key)


def install_key_names() -> None:
    """Make Textual's screens and app use this module's functions (module docstring)."""
    textual_screen.key_to_character = key_to_character  # type: ignore[attr-defined,assignment]
    textual_app.format_key = format_key  # type: ignore[attr-defined,assignment]
