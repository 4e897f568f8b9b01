"""``LoginScreen``: server, user name, password, "register" and "remember server".

Invariants:
- The screen only collects and checks input; it posts :class:`LoginScreen.Submitted` with a
  :class:`~tui.settings.LoginRequest` and the app does the networking. While a login is in
  flight the form is disabled; :meth:`LoginScreen.show_error` re-enables it.
- Error texts can contain what the relay said: they are shown as ``Content`` (never markup).
- The password field is masked and is never prefilled.
- Enter submits from every field, the checkboxes included (Space toggles them).
- Tab and Shift+Tab are priority bindings: the focus moves when the key is read, so a burst
  of keys (a paste, a password manager typing user, Tab, password) lands in the fields it
  was meant for. A paste of ``user<Tab>password`` into the user field fills both.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input, Label, Static

from tui.client.connection import DEFAULT_PORT
from tui.settings import AppConfig, LoginRequest, RememberedServer, parse_server
from tui.widgets.footer import Footer


class FormCheckbox(Checkbox, inherit_bindings=False):
    """A checkbox of the form: Space toggles it, Enter submits the form."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_button", "Toggle", show=False),
        Binding("enter", "screen.submit", "Log in", show=False),
    ]


class UserInput(Input):
    """The user name field: a pasted ``user<Tab>password`` fills the password too."""

    def _on_paste(self, event: events.Paste) -> None:
        user, tab, rest = event.text.partition("\t")
        if not tab:
            return  # Input's own handler (dispatched after this one) pastes it
        event.stop()
        event.prevent_default()
        self.value = user.strip()
        password = self.screen.query_one("#password", Input)
        password.value = rest.splitlines()[0] if rest else ""
        password.focus()


class LoginScreen(Screen[None]):
    """The first screen; see the module docstring."""

    DEFAULT_CSS = """
    LoginScreen {
        align: center middle;
        & > VerticalScroll { width: 64; max-width: 100%; height: auto; max-height: 100%; }
        & #login-form { height: auto; border: round $primary; padding: 0 1; }
        & #login-title { text-style: bold; color: $text-accent; width: 100%;
                         content-align: center middle; }
        & .row { height: auto; }
        & .row > Label { width: 10; padding-top: 1; }
        & .row > Input { width: 1fr; }
        & #toggles { height: auto; padding-left: 10; }
        & #login-actions { height: auto; padding-left: 10; }
        & #login-message { height: auto; min-height: 1; padding-left: 10; }
        & #login-message.-error { color: $text-error; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "submit", "Log in"),
        Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True),
    ]
    AUTO_FOCUS = "#username"

    class Submitted(Message):
        def __init__(self, request: LoginRequest) -> None:
            super().__init__()
            self.request = request

    def __init__(self, config: AppConfig, remembered: RememberedServer | None) -> None:
        super().__init__()
        self.config = config
        host = config.host or (remembered.host if remembered else "localhost")
        port = config.port or (remembered.port if remembered else DEFAULT_PORT)
        self.initial_server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.initial_user = config.user or (remembered.user if remembered else "")
        self.busy = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(), Vertical(id="login-form"):
            yield Static("Parley — log in to a relay", id="login-title")
            with Horizontal(classes="row"):
                yield Label("Server")
                yield Input(self.initial_server, id="server", placeholder="host:port")
            with Horizontal(classes="row"):
                yield Label("User")
                yield UserInput(self.initial_user, id="username", placeholder="your user name")
            with Horizontal(classes="row"):
                yield Label("Password")
                yield Input(id="password", password=True, placeholder="password")
            with Vertical(id="toggles"):
                yield FormCheckbox("Register a new account", id="register", compact=True)
                yield FormCheckbox("Remember server and user", True, id="remember", compact=True)
            with Horizontal(id="login-actions"):
                yield Button("Log in", id="login", variant="primary")
            yield Static("", id="login-message")
        yield Footer()

    def on_mount(self) -> None:
        if self.initial_user:
            self.query_one("#password", Input).focus()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "register":
            button = self.query_one("#login", Button)
            button.label = "Register and log in" if event.value else "Log in"
            button.refresh(layout=True)  # the label's width changed: so does the button's

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        order = ["server", "username", "password"]
        current = event.input.id or ""
        if current != "password" and current in order:
            following = self.query_one(f"#{order[order.index(current) + 1]}", Input)
            if not following.value:
                following.focus()
                return
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "login":
            self.action_submit()

    def action_submit(self) -> None:
        if self.busy:
            return
        try:
            request = self.read_form()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.set_busy(True, f"Connecting to {request.relay}…")
        self.post_message(self.Submitted(request))

    def read_form(self) -> LoginRequest:
        """The request the form describes; ``ValueError`` saying what is missing."""
        host, port = parse_server(self.query_one("#server", Input).value)
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not username:
            raise ValueError("enter your user name")
        if not password:
            raise ValueError("enter your password")
        return LoginRequest(
            host=host,
            port=port,
            username=username,
            password=password,
            register=self.query_one("#register", Checkbox).value,
            remember=self.query_one("#remember", Checkbox).value,
        )

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.busy = busy
        for widget in self.query("Input, Checkbox, Button"):
            widget.disabled = busy
        note = self.query_one("#login-message", Static)
        note.remove_class("-error")
        note.update(Content(message))

    def show_error(self, text: str) -> None:
        """The login failed (or the form is incomplete): say why, let the user retry."""
        self.set_busy(False)
        note = self.query_one("#login-message", Static)
        note.add_class("-error")
        note.update(Content(text))
        self.query_one("#password", Input).focus()

    @property
    def message_text(self) -> str:
        content = self.query_one("#login-message", Static).content
        return content.plain if isinstance(content, Content) else str(content)
