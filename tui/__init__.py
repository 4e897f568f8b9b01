"""Parley's terminal client: the client library (``tui.client``) and the Textual app."""
