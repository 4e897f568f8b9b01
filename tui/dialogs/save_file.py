"""``SaveFileDialog``: where to save an offered file — directory and name, checked live.

Returns a :class:`SaveChoice` (directory, name) or None when cancelled; the caller hands it
to ``TransferManager.accept``, which reduces the name to a safe base name again and still
never overwrites (a file created meanwhile gets ``name (n).ext`` there too).

Invariants:
- Nothing is overwritten silently: the dialog shows the exact path the file will get. If
  the offered name is taken in the default directory, it proposes ``name (1).ext`` (the
  first free one) in the name field and says why; a name typed over an existing file is
  reported the same way before Save.
- The name shown is the one the engine will use: :func:`protocol.validation.safe_basename`
  of what is typed (``../../.bashrc`` → ``bashrc``).
- The offer's texts come from the peer: shown as ``Content`` text (controls removed,
  length bounded), never parsed as markup.
- File-system checks (``lstat`` of a few candidate names) run in a worker thread, the
  newest check replacing any still running.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from protocol.validation import safe_basename
from tui.client.transfer.files import choose_target
from tui.client.transfer.store import Transfer
from tui.path_completion import resolve_dir
from tui.transfers_view import clip, clip_path, offer_line
from tui.widgets.path_input import PathInput


@dataclass(frozen=True)
class SaveChoice:
    directory: Path
    name: str


@dataclass(frozen=True)
class TargetCheck:
    """Where the file would go: ``target`` (None with an ``error``); ``taken``: the safe
    name asked for exists (so ``target`` is a numbered one); ``created``: the directory does
    not exist yet and will be created (only for the default directory)."""

    safe_name: str
    target: Path | None
    taken: bool = False
    created: bool = False
    error: str = ""


def check_target(
    directory: Path, name: str, reserved: list[Path], default_dir: Path
) -> TargetCheck:
    """Blocking (a few ``lstat`` calls): what accepting into ``directory`` as ``name`` does."""
    safe = safe_basename(name)
    if not directory.is_dir():
        if directory == default_dir and not directory.exists():
            return TargetCheck(safe, directory / safe, created=True)
        return TargetCheck(safe, None, error=f"{clip_path(directory)} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        return TargetCheck(safe, None, error=f"{clip_path(directory)} is not writable")
    try:
        target = choose_target(directory, safe, reserved)
    except FileExistsError as exc:
        return TargetCheck(safe, None, error=str(exc))
    return TargetCheck(safe, target, taken=target.name != safe)


class SaveFileDialog(ModalScreen[SaveChoice | None]):
    """Accept ``transfer`` (an incoming offer) into a directory; see the module docstring."""

    DEFAULT_CSS = """
    SaveFileDialog {
        align: center middle;
        & > #dialog {
            width: 90%;
            max-width: 100;
            height: auto;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #save-offer { margin: 1 0 0 0; }
        & #save-offered-as { color: $text-muted; }
        & Label { margin-top: 1; }
        & #save-target { margin: 1 0; height: auto; }
        & #save-target.-taken { color: $text-warning; }
        & #save-target.-error { color: $text-error; }
        & #save-buttons { height: auto; align-horizontal: right; }
        & Button { margin-left: 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save", priority=True),
    ]

    def __init__(
        self,
        transfer: Transfer,
        peer_name: str,
        default_dir: Path,
        reserved: Callable[[], list[Path]] = list,
    ) -> None:
        super().__init__()
        self.transfer = transfer
        self.peer_name = peer_name
        self.default_dir = default_dir
        self.reserved = reserved
        self.check: TargetCheck | None = None
        self._proposal: tuple[str, str] | None = None  # (taken name, proposed name)

    def compose(self) -> ComposeResult:
        transfer = self.transfer
        with Vertical(id="dialog"):
            yield Static(offer_line(self.peer_name, transfer.name, transfer.size), id="save-offer")
            if transfer.offered_name and transfer.offered_name != transfer.name:
                yield Static(
                    Content.assemble("offered as: ", clip(transfer.offered_name, 300)),
                    id="save-offered-as",
                )
            yield Label("Save in (Tab completes)")
            yield PathInput(str(self.default_dir), base=self.default_dir, id="save-dir")
            yield Label("As")
            yield Input(transfer.name, id="save-name")
            yield Static("Checking…", id="save-target")
            with Horizontal(id="save-buttons"):
                yield Button("Save (Ctrl+S)", id="save-ok", variant="primary", disabled=True)
                yield Button("Cancel (Esc)", id="save-cancel")

    def on_mount(self) -> None:
        self.query_one("#save-name", Input).focus()
        self._recheck()

    # --- checking ---------------------------------------------------------------------------

    def _inputs(self) -> tuple[Path, str]:
        directory = self.query_one("#save-dir", PathInput).value.strip()
        name = self.query_one("#save-name", Input).value
        return resolve_dir(directory, self.default_dir), name or self.transfer.name

    def on_input_changed(self, message: Input.Changed) -> None:
        self._recheck()

    def _recheck(self) -> None:
        self.query_one("#save-ok", Button).disabled = True
        self.check = None
        directory, name = self._inputs()
        self._check(directory, name)

    @work(exclusive=True, group="save-check", exit_on_error=False)
    async def _check(self, directory: Path, name: str) -> None:
        check = await asyncio.to_thread(
            check_target, directory, name, self.reserved(), self.default_dir
        )
        if self._inputs() != (directory, name):
            return  # typed on meanwhile; a newer check is coming
        if check.taken and self._proposal is None and check.target is not None:
            # The first look, at the offered name, found it taken: propose the free one
            # (setting the field checks again, and that check enables Save).
            self._proposal = (check.safe_name, check.target.name)
            self.query_one("#save-name", Input).value = check.target.name
            return
        self._show(check)

    def _show(self, check: TargetCheck) -> None:
        note = self.query_one("#save-target", Static)
        proposal = self._proposal
        proposed = (
            proposal is not None and check.target is not None and check.target.name == proposal[1]
        )
        note.set_class(bool(check.error), "-error")
        note.set_class(check.taken or proposed, "-taken")
        if check.target is None:
            note.update(Content(check.error))
            return
        target = clip_path(check.target)
        if check.taken:
            text = Content.assemble(
                (clip(check.safe_name, 80), "bold"),
                " already exists there and will not be overwritten: it will be saved as ",
                (target, "bold"),
            )
        elif proposal is not None and proposed:
            text = Content.assemble(
                (clip(proposal[0], 80), "bold"),
                " already exists there: proposing ",
                (clip(proposal[1], 80), "bold"),
                " — it will be saved as ",
                (target, "bold"),
            )
        else:
            text = Content.assemble("It will be saved as ", (target, "bold"))
            if check.created:
                text += Content(" (the folder will be created)")
        note.update(text)
        self.check = check
        self.query_one("#save-ok", Button).disabled = False

    # --- answers ----------------------------------------------------------------------------

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save-ok":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        if self.check is None or self.check.target is None:
            return  # still checking, or the directory is unusable
        directory, name = self._inputs()
        self.dismiss(SaveChoice(directory, name))

    def action_cancel(self) -> None:
        self.dismiss(None)
