"""A receiving client in a process of its own, so a test can SIGKILL it mid-transfer.

``python -m tests.e2e.transfer_peer HOST PORT FINGERPRINT USER PASSWORD DATA_DIR DOWNLOADS``
logs in, prints ``READY``, accepts every offer into DOWNLOADS and prints
``PROGRESS <bytes>`` as bytes arrive (and ``DONE <path>`` at the end). Nothing else.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tui.client import ClientSession, Endpoint, SessionOptions, TrustPolicy
from tui.client.transfer import TransferManager
from tui.client.transfer.events import (
    TransferCompleted,
    TransferEvent,
    TransferOffered,
    TransferProgress,
)


async def main(
    host: str, port: str, fingerprint: str, user: str, password: str, data_dir: str, downloads: str
) -> None:
    session = ClientSession(
        Endpoint(host, int(port)),
        user,
        password,
        trust=TrustPolicy.pinned(fingerprint),
        data_dir=Path(data_dir),
        options=SessionOptions(backoff_base=0.05, backoff_cap=0.5),
    )
    manager = TransferManager(session, data_dir=Path(data_dir), downloads_dir=Path(downloads))
    tasks: set[asyncio.Task[object]] = set()

    def on_event(event: TransferEvent) -> None:
        if isinstance(event, TransferOffered):
            task = asyncio.ensure_future(manager.accept(event.transfer.id))
            tasks.add(task)
        elif isinstance(event, TransferProgress) and not event.transfer.outgoing:
            print(f"PROGRESS {event.bytes}", flush=True)
        elif isinstance(event, TransferCompleted):
            print(f"DONE {event.path}", flush=True)

    manager.add_listener(on_event)
    await session.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:8]))
