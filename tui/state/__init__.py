"""What the chat TUI knows, as models without widgets (unit-tested without a Textual app).

- ``chat``: :class:`~tui.state.chat.ChatState` — buddies, unread counts, typing markers and
  the open conversation; consumes session events and reports what changed.
- ``roster``: unread counts and the rows of the buddy list.
- ``typing``: the typing-hint timers of PROTOCOL.md section 8.
- ``board`` / ``board_book``: one drawing board, and the boards of all conversations kept
  in step with the local history (the book and ``roster.stored_unread`` are the only code
  here that touches the local store).
- ``transfers``: the newest snapshot of every transfer the Files pane shows.

Widgets render these; screens route events to them. Nothing here imports Textual.
"""
