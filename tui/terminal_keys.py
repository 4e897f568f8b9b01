"""Keys that Textual's xterm parser reports wrongly for a chat composer, read right.

Textual 8's ``XTermParser`` turns the bytes a terminal sends into key events. Two ways a
terminal says Alt+Enter come out wrong there:

- ``ESC CR`` — what tmux, screen, xterm (``metaSendsEscape``) and most terminals send for
  Alt+Enter outside the kitty keyboard protocol. Textual reads a lone ESC followed by a key
  as Alt+that key (``ESC x`` → ``alt+x``), but for keys it maps through its table of named
  keys (Enter, Tab, …) it drops the Alt: ``ESC CR`` arrives as a plain ``enter``, and the
  composer sends instead of starting a new line.
- ``CSI 27 ; mod ; code ~`` — xterm's ``modifyOtherKeys`` form (tmux with
  ``extended-keys`` on sends Alt+Enter as ``ESC [27;3;13~``). Textual reads the 27 as the
  key and the code as text and reports a key named ``"\\r"``, which nothing binds. It is
  the same key as the kitty form ``CSI code ; mod u`` (which Textual reads right), so it is
  read as that.

:class:`ParleyXTermParser` fixes both and is otherwise Textual's parser;
:func:`install_key_parser` makes Textual's Linux driver (the one Parley runs on; not
the inline one, which it never uses) build this parser: the driver takes the class from a
module-level name, so that name is replaced. ``ESC`` then ``Enter`` typed by hand
within Textual's ESC delay (``ESCDELAY``, 100 ms) is read as Alt+Enter too — the same rule
Textual applies to every other ``ESC`` + key.

Invariants:
- Only the two forms above and ``ESC`` + digit (read as Alt+digit, for Alt+1…9: Textual's
  table turns ``ESC 3`` into the macOS Option character ``£``) change meaning; every other
  byte sequence gives exactly the events Textual's own parser gives.
- :func:`install_key_parser` is idempotent and touches nothing but the driver's parser name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from textual import events
from textual._xterm_parser import XTermParser
from textual.drivers import linux_driver

# xterm modifyOtherKeys: CSI 27 ; modifiers ; code ~
_MODIFY_OTHER_KEYS = re.compile(r"\x1b\[27;(\d+);(\d+)~")

# Keys that Textual names through its table and whose Alt it drops after a lone ESC.
_ALT_NAMED = {"\r": "alt+enter"}
# ESC + digit: Alt+digit (Alt+1…9 switch chats). Textual's table maps these to the
# characters macOS's Option+digit types (ESC 1 → "¡", ESC 3 → "£"), which the composer would
# insert and which no binding could tell from a typed "£".
_ALT_DIGIT = re.compile(r"\x1b([0-9])")


class ParleyXTermParser(XTermParser):
    """Textual's parser, with Alt+Enter read right (see the module docstring)."""

    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        other = _MODIFY_OTHER_KEYS.fullmatch(sequence)
        if other is not None:
            modifiers, code = other.groups()
            sequence = f"\x1b[{code};{modifiers}u"
        elif alt and sequence in _ALT_NAMED:
            return [events.Key(_ALT_NAMED[sequence], None)]
        elif (digit := _ALT_DIGIT.fullmatch(sequence)) is not None:
            return [events.Key(f"alt+{digit.group(1)}", None)]
        return super()._sequence_to_key_events(sequence, alt)


def install_key_parser() -> None:
    """Make Textual's Linux driver read the keyboard with :class:`ParleyXTermParser`."""
    linux_driver.XTermParser = ParleyXTermParser  # type: ignore[attr-defined]
