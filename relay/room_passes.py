"""A room's durable messages of one loop pass, kept to be fanned out once at the pass's flush.

Every member box of a room gets the same messages of a pass, in the same order; per box only
the seq field of each copy differs. So :class:`relay.inboxes.Inboxes` keeps a room's messages
of the pass here and :func:`relay.room_delivery.fan_out_pass` fans them out together: a
box's run is built with :func:`relay.run_frames.run_frames`, and stored once for all the
boxes that take the same segment (a shared run, :mod:`relay.store.inboxes`).

Invariants:
- ``bodies[i]`` is the i-th message (its MESSAGE payload with the sender's override fields,
  no seq); ``senders[i]`` its sender's uid and ``sending_boxes[i]`` the box it came from.
- :meth:`RoomPass.segments` cuts the messages into consecutive slices of at most
  :data:`relay.store.MAX_RUN_MESSAGES`, each fitting :data:`relay.store.MAX_RUN_BYTES` with
  its largest seq field (a message alone may exceed it), so a segment is one stored run.

Pure: no I/O, no relay state.
"""

from __future__ import annotations

from relay.run_frames import FramePieces
from relay.store import MAX_RUN_BYTES, MAX_RUN_MESSAGES

_LARGEST_COPY_OVERHEAD = 5 + 11  # frame header, seq tag and a 10-byte varint


class RoomPass:
    """A room's durable messages accepted this pass, in order (module docstring)."""

    __slots__ = ("bodies", "senders", "sending_boxes", "timestamp")

    def __init__(self, timestamp: int) -> None:
        self.timestamp = timestamp
        self.bodies: list[bytes] = []
        self.senders: list[int] = []
        self.sending_boxes: list[int] = []

    def add(self, body: bytes, sender: int, sending_box: int) -> None:
        self.bodies.append(body)
        self.senders.append(sender)
        self.sending_boxes.append(sending_box)

    def segments(self) -> list[tuple[int, FramePieces]]:
        """The messages cut into stored runs (module docstring): each one's first index and
        its messages' pieces."""
        slices = []
        start = size = 0
        bodies = self.bodies
        for index, body in enumerate(bodies):
            copy_size = len(body) + _LARGEST_COPY_OVERHEAD
            if index > start and (
                index - start >= MAX_RUN_MESSAGES or size + copy_size > MAX_RUN_BYTES
            ):
                slices.append((start, FramePieces(bodies[start:index])))
                start, size = index, 0
            size += copy_size
        if bodies:
            slices.append((start, FramePieces(bodies[start:])))
        return slices
