"""Full screens of the TUI: login, main (buddies + conversation), help."""
