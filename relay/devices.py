"""The device registry as the relay sees it: which boxes a user's messages go to.

PROTOCOL.md section 9: every device of a user has its own inbox, its *box*
(:mod:`relay.store.devices`). :class:`DeviceRegistry` is the one owner of the cache of each
user's boxes and of the devices registered in the open transaction; the message path
(:mod:`relay.delivery`) asks it where a message goes, the login handler registers devices
with it, the maintenance timer expires them through it.

Invariants:
- ``boxes_of(uid)`` is the store's devices of ``uid`` (by box; the uid box first when a
  device holds it), or the uid box alone while the user has no device (messages wait there
  for its first device), as of the latest change the relay made. The relay is the only
  writer of the devices table while it runs (an admin's ``user remove`` deletes rows too,
  and the relay forgets that user's entry when it applies the kick: :meth:`forget_user`).
- ``generation`` grows whenever any user's boxes may have changed: caches derived from
  boxes (a room's delivery targets, :mod:`relay.rooms`) compare it.
- A :class:`Box` says whether its device is named (v2.1: it receives ``outgoing`` copies);
  the uid box of a user with no device counts as the device ``""``.
- A user has at most the configured number of devices: a login on a new device beyond it
  first forgets the least recently seen device without a live session
  (:meth:`DeviceRegistry.make_room`), so no user can multiply the copies of every message
  sent to it.
- Devices registered since the last commit are remembered (:attr:`created`): if that commit
  is lost, :meth:`writes_lost` drops the cache and returns their boxes, whose sessions the
  caller resets (their rows, and so their box numbers, are gone and may be handed out again).
"""

from __future__ import annotations

import contextlib
from collections.abc import Container
from typing import NamedTuple

from relay.store import Store, StoreUnavailable

EXPIRY_BATCH = 100  # devices forgotten per maintenance call at most


class DeviceLimit(Exception):
    """A user at its device limit logs in on a new device while every device is in use."""


class Box(NamedTuple):
    """One device's inbox: its number, and whether the device is named (v2.1)."""

    box: int
    named: bool


class DeviceRegistry:
    """Each user's boxes, cached; devices registered in the open transaction."""

    __slots__ = ("_boxes", "created", "generation", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self._boxes: dict[int, tuple[Box, ...]] = {}
        self.created: list[int] = []
        self.generation = 0  # grows whenever some user's boxes change (caches built on them)

    def boxes_of(self, uid: int) -> tuple[Box, ...]:
        """Where a durable message to ``uid`` is stored: one box per device, or its uid box
        while it has none. The hot path: a dict lookup once cached."""
        boxes = self._boxes.get(uid)
        if boxes is None:
            devices = self.store.devices_of(uid)
            boxes = tuple(Box(d.box, d.name != "") for d in devices) or (Box(uid, False),)
            self._boxes[uid] = boxes
        return boxes

    def register(self, uid: int, name: str, now: int) -> int:
        """The box of ``uid``'s device ``name`` (registered now if new), seen ``now``.

        Raises :class:`relay.store.StoreUnavailable` if a new device cannot be written.
        """
        box, created = self.store.claim_device(uid, name, now)
        if created:
            self.created.append(box)
            self._boxes.pop(uid, None)
            self.generation += 1
        return box

    def make_room(self, uid: int, name: str, limit: int, live: Container[int]) -> list[int]:
        """Before ``uid`` logs in on device ``name``: if that device is new and the user has
        ``limit`` devices, forget the least recently seen one without a live session (in
        ``live``), with what its box holds. Returns the boxes forgotten; raises
        :class:`DeviceLimit` if every device is in use."""
        devices = self.store.devices_of(uid)
        if len(devices) < limit or any(d.name == name for d in devices):
            return []
        idle = sorted((d for d in devices if d.box not in live), key=lambda d: d.last_seen)
        if not idle:
            raise DeviceLimit(f"{len(devices)} devices, all in use")
        forgotten = [d.box for d in idle[: len(devices) - limit + 1]]
        for box in forgotten:
            self.store.forget_device(box)
        self._boxes.pop(uid, None)
        self.generation += 1
        return forgotten

    def seen(self, box: int, now: int) -> None:
        """A session of ``box``'s device ended ``now`` (best effort)."""
        # A failed write is answered for with the pass's others; last_seen is only a hint.
        with contextlib.suppress(StoreUnavailable):
            self.store.touch_device(box, now)

    def forget_user(self, uid: int) -> None:
        """``uid``'s devices changed outside this registry (its account was removed)."""
        self._boxes.pop(uid, None)
        self.generation += 1

    def expire(self, now: int, expiry_days: int, live: set[int]) -> list[tuple[int, int, str]]:
        """Forget at most :data:`EXPIRY_BATCH` devices not seen for ``expiry_days`` days,
        with their boxes' messages; a device with a live session (its box in ``live``) is
        marked seen instead. Returns (uid, box, name) of those forgotten."""
        forgotten = []
        for uid, box, name in self.store.expired_devices(now - expiry_days * 86400, EXPIRY_BATCH):
            if box in live:
                self.store.touch_device(box, now)
                continue
            self.store.forget_device(box)
            self._boxes.pop(uid, None)
            self.generation += 1
            forgotten.append((uid, box, name))
        return forgotten

    def committed(self) -> None:
        """The pass's transaction is over: its devices are durable."""
        self.created.clear()

    def writes_lost(self) -> list[int]:
        """The pass's writes were rolled back: drop the cache; return the boxes of the
        devices registered in it (gone with it)."""
        lost, self.created = self.created, []
        self._boxes.clear()
        self.generation += 1
        return lost
