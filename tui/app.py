"""``ParleyApp``: the Textual application — screens, the network worker, commands.

Invariants:
- The connection lives in one App-level worker (``group="net"``, exclusive, errors do not
  kill the app): :func:`tui.net.run_session`. A failed login comes back through
  ``on_worker_state_changed`` and is shown on the login screen.
- With ``config.local_socket`` the app logs in on the relay's Unix socket at mount, as the
  process's Unix user: the login screen is underneath (it shows a refusal) but nobody fills
  it, and no trust prompt can appear (no TLS).
- Quitting closes the session first (acknowledgements flushed, a goodbye Reset sent).
- The app holds no chat state: the main screen's :class:`~tui.state.chat.ChatState` and the
  client library do.
- Screens and dialogs that only a user action or a rare error opens (help, trust prompt)
  are imported where they are opened, not at start: every module loaded costs every running
  client memory (``bench/bench_tui_memory.py``; the help screen with Textual's DataTable is
  about 0.3 MiB). ``tests/tui/test_lazy_imports.py`` keeps it so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.filter import LineFilter
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tui.client.local_socket import local_login_name
from tui.client.session import ClientSession
from tui.client.transfer import TransferManager
from tui.client.trust import FingerprintMismatch
from tui.key_names import install_key_names
from tui.messages import SessionEvent
from tui.net import describe_login_error, run_session
from tui.relogin import last_chat, relogin_reason
from tui.screens.login import LoginScreen
from tui.screens.main import MainScreen
from tui.screens.rooms import room_commands
from tui.settings import AppConfig, LoginRequest, load_remembered
from tui.terminal import TerminalProfile
from tui.terminal_keys import install_key_parser


class ParleyApp(App[None]):
    """The chat client; see the module docstring."""

    CSS_PATH = "parley.tcss"
    TITLE = "Parley"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
    ]

    def __init__(
        self, config: AppConfig | None = None, *, terminal: TerminalProfile | None = None
    ) -> None:
        super().__init__()
        self.config = config or AppConfig()
        # ASCII-only or 16-colour terminals (tui/terminal.py): a line filter and a theme.
        self.terminal = terminal or TerminalProfile.detect()
        theme = self.terminal.theme
        if theme is not None:
            self.register_theme(theme)
            self.theme = theme.name
        self.session: ClientSession | None = None
        self.transfers: TransferManager | None = None
        self._request: LoginRequest | None = None

    def get_driver_class(self) -> type[Driver]:
        install_key_parser()  # Alt+Enter read as such, also inside tmux (tui/terminal_keys.py)
        install_key_names()  # no Unicode name searches for "up", "f5"… (tui/key_names.py)
        return super().get_driver_class()

    def get_line_filters(self) -> Sequence[LineFilter]:
        return [*super().get_line_filters(), *self.terminal.line_filters]

    def on_mount(self) -> None:
        self.push_screen(LoginScreen(self.config, load_remembered(self.config.settings_path)))
        socket_path = self.config.local_socket
        if socket_path is not None:
            path = str(socket_path)
            self._request = LoginRequest(
                path, 0, local_login_name(), "", remember=False, unix_path=path
            )
            self.connect(self._request)

    # --- logging in ---------------------------------------------------------------------

    def on_login_screen_submitted(self, message: LoginScreen.Submitted) -> None:
        self._request = message.request
        self.connect(message.request)

    @work(exclusive=True, group="net", exit_on_error=False)
    async def connect(self, request: LoginRequest) -> None:
        await run_session(self, request)

    async def ask_trust(self, relay_key: str, fingerprint: str) -> bool:
        """First contact with a relay: ask in a dialog (used by the trust policy)."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def answered(trusted: bool | None) -> None:
            if not answer.done():
                answer.set_result(bool(trusted))

        from tui.dialogs.trust import TrustDialog  # on first use (module docstring: memory)

        self.push_screen(TrustDialog(relay_key, fingerprint), answered)
        return await answer

    async def session_started(
        self, session: ClientSession, request: LoginRequest, transfers: TransferManager
    ) -> MessagePump:
        self.session = session
        self.transfers = transfers
        screen = MainScreen(session, self.config, transfers=transfers)
        await self.switch_screen(screen)
        peer = last_chat(session)  # the chat open when this device last ran
        if peer is not None:
            screen.open_conversation(peer)
        return screen

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "net" or event.state is not WorkerState.ERROR:
            return
        error = worker.error
        assert error is not None
        relay = self._request.relay if self._request is not None else "the relay"
        if isinstance(error, FingerprintMismatch):
            from tui.dialogs.fingerprint_changed import FingerprintChangedDialog

            self.push_screen(FingerprintChangedDialog(error))
        login = self.login_screen
        if login is not None:
            login.show_error(describe_login_error(error, relay))
        else:
            self.notify(
                describe_login_error(error, relay), severity="error", timeout=15, markup=False
            )

    def on_session_event(self, message: SessionEvent) -> None:
        """After the main screen: a session that cannot go on with its credentials (the
        password was changed on the relay) sends the user back to the login form."""
        reason = relogin_reason(message.event)
        if reason is not None and self.session is not None:
            self.run_worker(self.back_to_login(reason, self.session.username), group="relogin")

    async def back_to_login(self, reason: str, username: str) -> None:
        self.workers.cancel_group(self, "net")  # run_session's end closes the session
        self.session = self.transfers = None
        while len(self.screen_stack) > 2:  # dialogs over the main screen
            await self.pop_screen()
        login = LoginScreen(self.config, load_remembered(self.config.settings_path))
        login.initial_user = username
        await self.switch_screen(login)
        login.show_error(reason)

    @property
    def login_screen(self) -> LoginScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, LoginScreen):
                return screen
        return None

    @property
    def main_screen(self) -> MainScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, MainScreen):
                return screen
        return None

    # --- actions and commands -----------------------------------------------------------

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen  # on first use (module docstring: memory)

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        main = self.main_screen
        if main is not None:
            main.save_boards()  # the next start opens boards from snapshots
        if self.transfers is not None:
            await self.transfers.close()  # before the session (offsets persisted)
        if self.session is not None:
            await self.session.close()
        self.exit()

    def action_help_quit(self) -> None:
        """Ctrl+C (Textual's binding; copying comes first when text is selected)."""
        self.notify("Press Ctrl+Q to quit.", title="Quit?", markup=False)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Parley's commands only (not Textual's Keys, Screenshot, Maximize, Theme)."""
        main = self.main_screen
        if main is not None:
            yield SystemCommand(
                "Add buddy", "Find a user and send a buddy request", main.action_add_buddy
            )
            yield SystemCommand(
                "Search users", "Search the relay's users by name", main.action_add_buddy
            )
            yield SystemCommand(
                "Switch conversation",
                "Open the chat with another buddy",
                main.action_switch_conversation,
            )
            yield SystemCommand(
                "Search history",
                "Find text in this chat or all chats, and jump to it (Ctrl+F)",
                main.action_search_history,
            )
            yield SystemCommand(
                "Re-send failed messages",
                "Send the failed messages of this chat again",
                main.action_resend_failed,
            )
            yield SystemCommand("Reconnect now", "Skip the reconnect wait", main.action_reconnect)
            yield SystemCommand(
                "Board",
                "Show the drawing board of this chat, or go back to the chat (F2)",
                lambda: main.action_show_pane("board"),
            )
            yield SystemCommand(
                "Board: clear",
                "Clear the board on both sides (asks first)",
                lambda: main.board_action(lambda board: board.action_clear_board()),
            )
            yield SystemCommand(
                "Board: export as text",
                "Save the board as a text file in your documents folder",
                lambda: main.board_action(lambda board: board.action_export_board()),
            )
            yield SystemCommand(
                "Files",
                "Show file transfers (offers, progress), or go back to the chat (F3)",
                lambda: main.action_show_pane("files"),
            )
            yield SystemCommand(
                "Send files",
                "Pick files to send to the buddy of the open chat (Ctrl+T)",
                main.action_send_file,
            )
            yield SystemCommand(
                "Mute / unmute this chat",
                "No bell, title count or toast for the open chat (m on a buddy or room row)",
                main.toggle_mute,
            )
            for title, help_text, callback in room_commands(main):
                yield SystemCommand(title, help_text, callback)
        yield SystemCommand("Help: keys", "List every key binding", self.action_help)
        yield SystemCommand("Quit", "Quit Parley (Ctrl+Q)", self.action_quit)
