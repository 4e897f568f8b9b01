"""1,000 client sessions come back after a relay restart, every one of them by token.

Acceptance (issue 4): after a relay crash (SIGKILL) and restart, 1,000 ClientSessions
reconnect on their own (backoff with jitter) and log in with their resume token; the
restarted relay computes no scrypt hash at all while they do (its SIGUSR1 stats line says
``scrypt=0`` with all 1,000 online again).

Resource use is kept low: one asyncio loop, in-memory LocalStores, the relay's fast test
scrypt cost for the 1,000 registrations and first (password) logins. Nothing is timed.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.harness import RelayProcess
from tests.tui.client.sessions import policy_for
from tests.waiting import wait_until
from tui.client import (
    ClientSession,
    ConnectionState,
    ConnectionStateChanged,
    Endpoint,
    Event,
    LocalStore,
    SessionOptions,
    register_account,
)

SESSIONS = 1_000
CONCURRENCY = 100  # registrations / first logins in flight at once (set-up only)
OPTIONS = SessionOptions(backoff_base=0.05, backoff_cap=1.0)
HANG = 120.0  # upper bound against hangs only, never a performance claim
_STATS = re.compile(r"stats: connections=(\d+) online=(\d+) .*scrypt=(\d+)")


async def bounded(jobs: list[Callable[[], Awaitable[object]]], limit: int) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[object]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


async def test_a_thousand_sessions_resume_by_token_after_a_relay_restart(
    relay: RelayProcess, tmp_path: Path
) -> None:
    endpoint = Endpoint(relay.host, relay.port)
    policy = policy_for(relay)
    names = [f"storm{i:04d}" for i in range(SESSIONS)]
    await bounded(
        [
            lambda n=n: register_account(endpoint, policy, n, f"pw-{n}")  # type: ignore[misc]
            for n in names
        ],
        CONCURRENCY,
    )
    sessions = [
        ClientSession(
            endpoint,
            name,
            f"pw-{name}",
            trust=policy,
            store=LocalStore.open(":memory:"),
            options=OPTIONS,
            rng=random.Random(i).random,
        )
        for i, name in enumerate(names)
    ]
    restarted = False
    back: set[int] = set()  # sessions logged in again after the restart
    back_by_password: list[str] = []

    def listener(index: int) -> Callable[[Event], None]:
        session = sessions[index]

        def on_event(event: Event) -> None:
            if (
                restarted
                and isinstance(event, ConnectionStateChanged)
                and event.state is ConnectionState.CONNECTED
            ):
                back.add(index)
                if not session.resumed_by_token:
                    back_by_password.append(session.username)

        return on_event

    for index, session in enumerate(sessions):
        session.add_listener(listener(index))
    try:
        await bounded(
            [
                lambda s=s: s.start(retry_first=True)  # type: ignore[misc]
                for s in sessions
            ],
            CONCURRENCY,
        )
        assert all(s.connected and not s.resumed_by_token for s in sessions)

        await asyncio.to_thread(relay.kill)  # the crash: the token table is what survives
        restarted = True
        await asyncio.to_thread(relay.start)  # same port, same data dir
        # The restarted process's log starts at its last "listening on" line.
        mark = max(i for i, line in enumerate(relay.log_lines) if "listening on" in line)

        def describe() -> str:
            states: dict[str, int] = {}
            for s in sessions:
                states[s.state.value] = states.get(s.state.value, 0) + 1
            errors = {repr(s.last_error) for s in sessions if s.last_error is not None}
            return f"{len(back)} back, states {states}, errors {sorted(errors)[:5]}"

        await wait_until(
            lambda: len(back) == SESSIONS,
            "every session is back",
            timeout=HANG,
            poll=0.05,
            describe=describe,
        )
        assert back_by_password == []
        assert all(s.connected and s.resumed_by_token for s in sessions)

        # The restarted relay's own counters, with every session online again.
        assert relay.process is not None
        relay.process.send_signal(signal.SIGUSR1)
        stats: list[re.Match[str]] = []

        def stats_logged() -> bool:
            stats[:] = [m for line in relay.log_lines[mark:] if (m := _STATS.search(line))]
            return bool(stats)

        await wait_until(stats_logged, "the relay logged its stats", timeout=HANG, poll=0.05)
        connections, online, scrypt = (int(g) for g in stats[-1].groups())
        assert online == SESSIONS and connections >= SESSIONS
        assert scrypt == 0, f"the restarted relay computed {scrypt} scrypt hashes"
        token_logins = [line for line in relay.log_lines[mark:] if " login uid=" in line]
        assert len(token_logins) >= SESSIONS
        assert all(line.endswith("(token)") for line in token_logins)
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
