"""Parley's terminal client: the client library (``tui.client``) and the Textual app."""

from tui.lean_imports import defer_unused_protobuf_modules

defer_unused_protobuf_modules()  # before anything imports protocol (tui/lean_imports.py)
