"""Widgets of the TUI, each with its own ``DEFAULT_CSS``; none of them touches the network."""
