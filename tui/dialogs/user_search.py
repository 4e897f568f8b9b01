"""``UserSearchDialog``: find users on the relay (ListUser with a query) and pick one.

Invariants:
- Queries go through the ``search`` callable (``ClientSession.list_users``) in an
  exclusive worker of this dialog: a newer query cancels an older one, and closing the
  dialog cancels whatever is in flight. Typing is debounced.
- Names are hostile: options are ``Content`` built from cleaned plain strings.
- Returns the chosen :class:`~tui.client.events.UserInfo`, or None (Escape). Yourself and
  people who already are buddies are listed but cannot be chosen.
- Enter in the query field acts on the results *of that query* (a pending debounce or a
  search in flight is replaced by an immediate search first): a single match that can be
  chosen is chosen, otherwise the results get the focus with the first one highlighted.
  Down in the query field does the latter at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from protocol import chat_pb2 as pb
from tui.client.events import UserInfo
from tui.client.session import UserList
from tui.display import safe_name

Search = Callable[[str], Awaitable[UserList]]
DEBOUNCE = 0.25

_RELATION_TAG: dict[int, str] = {
    pb.User.BUDDY: " (buddy)",
    pb.User.REQUEST_SENT: " (request sent)",
    pb.User.REQUEST_RECEIVED: " (asked you)",
}


class UserSearchDialog(ModalScreen[UserInfo | None]):
    """Search users; Enter on a result chooses it."""

    DEFAULT_CSS = """
    UserSearchDialog {
        align: center middle;
        & > #dialog {
            width: 64;
            max-width: 100%;
            height: 80%;
            min-height: 12;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #results { height: 1fr; }
        & #search-status { color: $text-muted; height: 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "focus_results", "Results", show=False),
    ]

    def __init__(
        self,
        search: Search,
        *,
        own_uid: int | None,
        relations: Mapping[int, int],
        title: str = "Add a buddy: search users",
    ) -> None:
        super().__init__()
        self.search = search
        self.own_uid = own_uid
        self.relations = dict(relations)
        self.title_text = title
        self.users: list[UserInfo] = []
        self._debounce: Timer | None = None
        self._shown_query: str | None = None  # the query whose results are listed
        self._submitted = False  # Enter was pressed: act when its results arrive

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.assemble((self.title_text, "bold")))
            yield Input(placeholder="name or part of a name", id="query")
            yield OptionList(id="results")
            yield Static("", id="search-status")

    def on_mount(self) -> None:
        self.run_search("")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._debounce is not None:
            self._debounce.stop()
        query = event.value
        self._debounce = self.set_timer(DEBOUNCE, lambda: self.run_search(query))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        query = event.value.strip()
        if self._shown_query == query and self._debounce is None:
            self._act_on_results()
            return
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        self._submitted = True
        self.run_search(event.value)

    def _act_on_results(self) -> None:
        """Enter in the query field: choose a single match, else go to the results."""
        choosable = [user for user in self.users if self._can_choose(user)]
        if len(self.users) == 1 and len(choosable) == 1:
            self.dismiss(choosable[0])
            return
        self.action_focus_results()

    def _can_choose(self, user: UserInfo) -> bool:
        return user.uid != self.own_uid and self.relations.get(user.uid) != pb.User.BUDDY

    @work(exclusive=True, group="user-search", exit_on_error=False)
    async def run_search(self, query: str) -> None:
        self._debounce = None
        status = self.query_one("#search-status", Static)
        status.update(Content("searching…"))
        try:
            found = await self.search(query.strip())
        except Exception as exc:  # NotConnected, TimeoutError, ...: say so, stay open
            status.update(Content(f"search failed: {exc or type(exc).__name__}"))
            self._submitted = False
            return
        self.show_results(found, query.strip())
        if self._submitted:
            self._submitted = False
            self._act_on_results()

    def show_results(self, found: UserList, query: str = "") -> None:
        self._shown_query = query
        self.users = list(found.users)
        options: list[Option] = []
        for user in self.users:
            mine = user.uid == self.own_uid
            relation = self.relations.get(user.uid)
            tag = " (you)" if mine else _RELATION_TAG.get(relation or -1, "")
            prompt = Content.assemble(
                ("● ", "$text-success") if user.online else ("○ ", "$text-muted"),
                (safe_name(user.username, user.uid), "bold"),
                (tag, "$text-muted"),
            )
            disabled = not self._can_choose(user)
            options.append(Option(prompt, id=f"user-{user.uid}", disabled=disabled))
        results = self.query_one("#results", OptionList)
        results.set_options(options)
        count = len(self.users)
        text = f"{count} user{'s' if count != 1 else ''}"
        if found.truncated:
            text += " (more exist: type more of the name)"
        self.query_one("#search-status", Static).update(Content(text))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        uid = int((event.option.id or "user-0").removeprefix("user-"))
        for user in self.users:
            if user.uid == uid:
                self.dismiss(user)
                return

    def action_focus_results(self) -> None:
        """Focus the results with a result highlighted (one key press, not two)."""
        results = self.query_one("#results", OptionList)
        if not results.option_count:
            return
        results.focus()
        if results.highlighted is None:
            results.action_first()

    def action_cancel(self) -> None:
        self.dismiss(None)
