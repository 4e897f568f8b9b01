"""Typing hints (PROTOCOL.md section 8): who is typing to us, and when we may hint them.

No Textual, no I/O. Time is always passed in (``now``, monotonic seconds), never read here,
so the timers are tested without sleeping.

State owned: per peer, the moment their marker disappears (:class:`TypingTracker`) and the
moment we last hinted them (:class:`TypingThrottle`).
"""

from __future__ import annotations

# INPUTING at most once per second while editing; the receiver shows "typing…" for about a
# second after each one (a little more, so that a peer typing steadily -- one hint per
# second plus network jitter -- does not make the marker flicker).
TYPING_SEND_INTERVAL = 1.0
TYPING_VISIBLE_FOR = 1.5


class TypingTracker:
    """Receiver side: who is typing, from INPUTING hints and their arrival time."""

    def __init__(self, visible_for: float = TYPING_VISIBLE_FOR) -> None:
        self.visible_for = visible_for
        self._until: dict[int, float] = {}

    def hint(self, peer: int, now: float) -> bool:
        """An INPUTING arrived from ``peer``; True if the marker just appeared."""
        appeared = not self.is_typing(peer, now)
        self._until[peer] = now + self.visible_for
        return appeared

    def stop(self, peer: int) -> bool:
        """``peer`` sent a message (or went away): the marker goes now. True if it was shown."""
        return self._until.pop(peer, None) is not None

    def is_typing(self, peer: int, now: float) -> bool:
        until = self._until.get(peer)
        return until is not None and now < until

    def typing(self, now: float) -> frozenset[int]:
        return frozenset(peer for peer, until in self._until.items() if now < until)

    def expire(self, now: float) -> list[int]:
        """Drop the markers that timed out; returns their peers."""
        gone = [peer for peer, until in self._until.items() if now >= until]
        for peer in gone:
            del self._until[peer]
        return gone

    def next_expiry(self) -> float | None:
        return min(self._until.values(), default=None)


class TypingThrottle:
    """Sender side: may we send an INPUTING hint to ``peer`` now? (once per interval)."""

    def __init__(self, interval: float = TYPING_SEND_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[int, float] = {}

    def should_send(self, peer: int, now: float) -> bool:
        last = self._last.get(peer)
        if last is not None and now - last < self.interval:
            return False
        self._last[peer] = now
        return True

    def reset(self, peer: int) -> None:
        """The message was sent: the next keystroke may hint again at once."""
        self._last.pop(peer, None)
