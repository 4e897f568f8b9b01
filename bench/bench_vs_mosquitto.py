"""The relay against mosquitto in the same run, driven by the independent C load client.

Usage: python -m bench.bench_vs_mosquitto [--scenarios KEY,KEY|all] [--list] [--scale F]

Checks first (installs nothing): a C compiler and the OpenSSL headers (to build
``bench/loadgen``) and mosquitto; when one is missing it prints the exact command to run
(``apt-get install -y mosquitto libssl-dev gcc``) and exits 1. ``--no-mosquitto`` runs the
relay side alone.

Every scenario runs the relay side on a **fresh relay** (``tests/harness.py``
``RelayProcess``: TLS with a generated certificate, a new data dir, fast scrypt) whose users,
buddies and rooms are set up over the wire first (not measured), and the MQTT side on a
fresh mosquitto (``bench/mosquitto.py``: TLS 1.3 listener, ``persistence false``). The load
client (one process, C, epoll, OpenSSL, TLS_AES_128_GCM_SHA256 for both) warms up, then reads
the server's utime + stime from /proc/PID/stat and its own getrusage at both ends of the
measured phase. Payloads are 32 bytes; see ``bench/loadgen/loadgen.c`` for the pacing.

Figures: relay CPU µs per message (per *delivered copy* for rooms and MQTT fan-out; per
message *sent* for the multi-device rows, where one message is several copies), the same
for mosquitto, their ratio, and the load client's own CPU per message and share of one core
in each run (it must stay well below the servers' for the figures to be the servers').
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from bench.bench_hostile import PingProbe
from bench.benchlib import (
    BENCH_PASSWORD,
    ROOT,
    RelayProcess,
    WireClient,
    machine_description,
    percentile,
    register_all,
)
from bench.build_loadgen import BuildError, build, missing_prerequisites
from bench.loadgen_driver import (
    BENCH_DEVICE,
    LoadgenError,
    LoadResult,
    config_for_pairs,
    config_for_room,
    prepare_pairs,
    prepare_room,
    relay_options,
    run_loadgen,
)
from bench.mosquitto import INSTALL_HINT, MosquittoProcess, mosquitto_binary, mosquitto_version
from protocol import chat_pb2 as pb

FULL_INSTALL = "apt-get install -y mosquitto libssl-dev gcc"
STALL_NOTE_S = 0.25  # a pause longer than this in a measured phase is reported


@dataclass(frozen=True)
class ParleyLoad:
    """Relay side: ``pairs`` sender→receiver pairs, or one sender to a room of ``room``."""

    version: int
    pairs: int = 10
    ack_every: int = 64
    devices: int = 0  # receiving devices per receiver (v2.1); 0 = no device field
    room: int = 0  # members receiving; > 0 = room mode

    @property
    def copies_per_message(self) -> int:
        return self.devices if self.devices > 1 else 1


@dataclass(frozen=True)
class MqttLoad:
    """Mosquitto side: ``pairs`` publisher→subscriber pairs (a topic each), or one
    publisher to ``fanout`` subscribers of one topic."""

    qos: int
    pairs: int = 10
    fanout: int = 0


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    parley: ParleyLoad | None
    mqtt: MqttLoad | None
    messages: int  # copies delivered in the measured phase (each side)


SCENARIOS = [
    Scenario("v1-qos0", "v1 vs QoS 0, 10 pairs", ParleyLoad(1), MqttLoad(0), 100_000),
    Scenario(
        "v2ack1-qos1",
        "v2 Ack{seq} per msg vs QoS 1, 10 pairs",
        ParleyLoad(2, ack_every=1),
        MqttLoad(1),
        100_000,
    ),
    Scenario(
        "v2ack64-qos1",
        "v2 Ack{seq} every 64 vs QoS 1, 10 pairs",
        ParleyLoad(2, ack_every=64),
        MqttLoad(1),
        100_000,
    ),
    Scenario(
        "v1-qos0-1000",
        "v1 vs QoS 0, 1000 pairs",
        ParleyLoad(1, pairs=1000),
        MqttLoad(0, pairs=1000),
        300_000,
    ),
    Scenario(
        "v2ack1-qos1-1000",
        "v2 Ack per msg vs QoS 1, 1000 pairs",
        ParleyLoad(2, pairs=1000, ack_every=1),
        MqttLoad(1, pairs=1000),
        300_000,
    ),
    Scenario(
        "dev1", "v2.1, 1 receiving device, Ack every 64", ParleyLoad(2, devices=1), None, 100_000
    ),
    Scenario(
        "dev3", "v2.1, 3 receiving devices, Ack every 64", ParleyLoad(2, devices=3), None, 150_000
    ),
    *(
        Scenario(
            f"room{n}",
            f"room of {n} (Ack every 64) vs QoS 1 fan-out to {n}, per copy",
            ParleyLoad(2, room=n),
            MqttLoad(1, fanout=n),
            copies,
        )
        # At ~0.6 µs per copy the relay's CPU for 200,000 copies was 12 clock ticks (10 ms
        # each, /proc/PID/stat): 8 % steps. These counts give it 0.5-1 s.
        for n, copies in ((10, 300_000), (100, 1_000_000), (500, 1_500_000))
    ),
    *(
        Scenario(
            f"fan{n}-qos0", f"QoS 0 fan-out to {n}, per copy", None, MqttLoad(0, fanout=n), copies
        )
        for n, copies in ((10, 100_000), (100, 200_000), (500, 300_000))
    ),
]


@dataclass(frozen=True)
class SideResult:
    """One side of a scenario: CPU per unit (message or copy) of server and load client."""

    units: float
    server_cpu: float
    result: LoadResult
    spread: tuple[float, ...] = ()  # server µs per unit of every repeat (--repeat)
    pings: tuple[float, ...] = ()  # --ping: the bystander's round trips (s), sorted
    pings_lost: int = 0  # --ping: pings never answered

    @property
    def server_us(self) -> float:
        return self.server_cpu / self.units * 1e6

    @property
    def loadgen_us(self) -> float:
        return self.result.loadgen_cpu / self.units * 1e6

    def share(self, cpu: float) -> str:
        return f"{cpu / self.result.seconds * 100:.0f} %"


def median_side(runs: list[SideResult]) -> SideResult:
    """The run with the median server cost, carrying every run's cost in ``spread``."""
    ordered = sorted(runs, key=lambda run: run.server_us)
    middle = ordered[(len(ordered) - 1) // 2]
    return replace(middle, spread=tuple(run.server_us for run in ordered))


def run_scenario(
    scenario: Scenario, args: argparse.Namespace
) -> tuple[SideResult | str | None, SideResult | str | None]:
    """Both sides ``--repeat`` times, alternating; each side's median run, or why it could
    not run (None: the scenario has no such side)."""
    sides: list[Callable[[], SideResult] | None] = [
        None if scenario.parley is None else partial(run_parley, scenario.parley, scenario, args),
        None
        if scenario.mqtt is None or args.no_mosquitto
        else partial(run_mqtt, scenario.mqtt, scenario, args),
    ]
    runs: list[list[SideResult]] = [[], []]
    failures: list[str | None] = [None, None]
    for _ in range(args.repeat):
        for index, (name, once) in enumerate(zip(("relay", "mosquitto"), sides, strict=True)):
            if once is None or failures[index] is not None:
                continue
            try:
                runs[index].append(once())
            except (LoadgenError, RuntimeError, OSError, EOFError) as error:
                failures[index] = f"{name} not run: {str(error).splitlines()[0][:160]}"
    results: list[SideResult | str | None] = []
    for index in range(2):
        if sides[index] is None:
            results.append(None)
        else:
            results.append(failures[index] or median_side(runs[index]))
    return results[0], results[1]


def rooms_available() -> bool:
    """The relay answers ROOM frames once the rooms handler exists (issue 14)."""
    return (ROOT / "relay" / "handlers" / "rooms.py").exists()


def traffic_options(args: argparse.Namespace, messages: int, fan_out: bool) -> list[str]:
    """The load client's pacing: one-to-one senders keep ``--window`` messages in flight, a
    room's or a topic's sender ``--room-window``."""
    return [
        "--window",
        str(args.room_window if fan_out else args.window),
        "--warmup",
        str(args.warmup),
        "--messages",
        str(max(1000, int(messages * args.scale))),
        "--max-seconds",
        str(args.max_seconds),
    ]


def run_parley(load: ParleyLoad, scenario: Scenario, args: argparse.Namespace) -> SideResult:
    if load.room and not rooms_available():
        raise LoadgenError("the relay has no rooms yet (relay/handlers/rooms.py is missing)")
    extra = ["--max-room-members", str(max(500, load.room + 1))] if load.room else []
    extra += args.relay_option
    with tempfile.TemporaryDirectory(prefix="parley-vs-mosquitto-") as tmp:
        relay = RelayProcess(Path(tmp) / "relay", extra_args=extra)
        relay.start()
        try:
            if load.room:
                room = asyncio.run(prepare_room(relay, "b", load.room))
                config = config_for_room(room)
            else:
                device = BENCH_DEVICE if load.devices else ""
                config = config_for_pairs(
                    asyncio.run(prepare_pairs(relay, "b", load.pairs, device))
                )
            options = [
                *relay_options(relay),
                "--version",
                str(load.version),
                "--ack-every",
                str(load.ack_every),
                "--devices",
                str(load.devices if load.room == 0 else 1),
            ]
            probe = start_bystander(relay) if args.ping else None
            try:
                result = run_loadgen(
                    options + traffic_options(args, scenario.messages, load.room > 0),
                    config,
                    [relay.pid],
                )
            finally:
                if probe is not None:
                    probe.finish(2.0)
                    probe.sock.close()
        finally:
            relay.stop()
    units = result.delivered / load.copies_per_message
    if probe is None:
        return SideResult(units, result.watch_cpu[0], result)
    pings = tuple(sorted(rtt for _, rtt in probe.answered))
    return SideResult(units, result.watch_cpu[0], result, pings=pings, pings_lost=len(probe.sent))


def start_bystander(relay: RelayProcess) -> PingProbe:
    """``--ping``: a v2 session of its own, not in the load, sending Ping every 20 ms from a
    thread of this process (bench_hostile's probe) while the load client runs."""
    asyncio.run(register_all(relay, ["bystander"], 1))
    client = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
    login = client.login("bystander", BENCH_PASSWORD, version=2)
    if login.code != pb.LoginResponse.SUCCESS:
        client.close()
        raise LoadgenError(f"bystander login refused: {login}")
    probe = PingProbe(client)
    probe.start()
    return probe


def print_pings(
    rows: list[tuple[Scenario, SideResult | str | None, SideResult | str | None]],
) -> None:
    for scenario, relay, _ in rows:
        if isinstance(relay, SideResult) and (relay.pings or relay.pings_lost):
            pings = list(relay.pings)
            print(
                f"bystander ping during {scenario.key} (median relay run, whole run): p50 "
                f"{percentile(pings, 0.5) * 1e3:.1f} ms, p99 {percentile(pings, 0.99) * 1e3:.1f} "
                f"ms, max {pings[-1] * 1e3 if pings else float('nan'):.1f} ms over "
                f"{len(pings)} pings, {relay.pings_lost} unanswered"
            )


def run_mqtt(load: MqttLoad, scenario: Scenario, args: argparse.Namespace) -> SideResult:
    binary = mosquitto_binary()
    assert binary is not None
    if load.fanout:
        config = "G bench-pub 0 0 bench/fanout\n" + "".join(
            f"R bench-sub{i}\n" for i in range(load.fanout)
        )
    else:
        config = "".join(
            f"G bench-pub{i} 0 0 bench/p{i}\nR bench-sub{i}\n" for i in range(load.pairs)
        )
    with tempfile.TemporaryDirectory(prefix="parley-vs-mosquitto-") as tmp:
        broker = MosquittoProcess(Path(tmp) / "mosquitto", binary)
        broker.start()
        try:
            options = ["--proto", "mqtt", "--port", str(broker.port), "--qos", str(load.qos)]
            result = run_loadgen(
                options + traffic_options(args, scenario.messages, load.fanout > 0),
                config,
                [broker.pid],
            )
        finally:
            broker.stop()
    return SideResult(float(result.delivered), result.watch_cpu[0], result)


def _cell(side: SideResult | str | None, what: str) -> str:
    if side is None:
        return "—"
    if isinstance(side, str):
        return side if what == "server" else ""
    if what == "msgs":
        return f"{side.result.delivered:,}"
    if what == "server":
        spread = f" [{side.spread[0]:.2f}–{side.spread[-1]:.2f}]" if len(side.spread) > 1 else ""
        return f"{side.server_us:.2f}{spread} ({side.share(side.server_cpu)})"
    return f"{side.loadgen_us:.2f} ({side.share(side.result.loadgen_cpu)})"


def print_table(
    rows: list[tuple[Scenario, SideResult | str | None, SideResult | str | None]],
) -> None:
    print(
        "| scenario | msgs relay / mosq | relay µs/msg (% core) | mosquitto µs/msg (% core) "
        "| ratio | loadgen µs/msg (% core): relay run / mosq run |"
    )
    print("|---|---|---|---|---|---|")
    for scenario, relay, mosq in rows:
        ratio = (
            f"{relay.server_us / mosq.server_us:.2f}"
            if isinstance(relay, SideResult) and isinstance(mosq, SideResult)
            else "—"
        )
        print(
            f"| {scenario.key}: {scenario.title} | {_cell(relay, 'msgs')} / {_cell(mosq, 'msgs')} "
            f"| {_cell(relay, 'server')} | {_cell(mosq, 'server')} | {ratio} "
            f"| {_cell(relay, 'loadgen')} / {_cell(mosq, 'loadgen')} |"
        )


def print_targets(
    results: dict[str, tuple[SideResult | str | None, SideResult | str | None]],
) -> None:
    def relay_us(key: str) -> float | None:
        side = results.get(key, (None, None))[0]
        return side.server_us if isinstance(side, SideResult) else None

    def mosq_us(key: str) -> float | None:
        side = results.get(key, (None, None))[1]
        return side.server_us if isinstance(side, SideResult) else None

    lines = []
    for small, big in (("v1-qos0", "v1-qos0-1000"), ("v2ack1-qos1", "v2ack1-qos1-1000")):
        a, b = relay_us(small), relay_us(big)
        if a and b:
            lines.append(f"flatness {small}: 1000 pairs / 10 pairs = {b / a:.2f} (target ≤ 1.20)")
    one, three = relay_us("dev1"), relay_us("dev3")
    if one and three:
        lines.append(
            f"issue 13: 3-device / 1-device relay CPU per message = {three / one:.2f} "
            "(target ≤ 1.6)"
        )
    rooms = [(n, relay_us(f"room{n}")) for n in (10, 100, 500)]
    if any(us for _, us in rooms):
        text = ", ".join(f"{n}: {us:.2f} µs" for n, us in rooms if us)
        lines.append(
            f"issue 14: room relay CPU per delivered copy {text} (target ≤ 3 at 100, falling)"
        )
        for n, us in rooms:
            q0, q1 = mosq_us(f"fan{n}-qos0"), mosq_us(f"room{n}")
            if us and q0 and q1:
                lines.append(
                    f"  room {n}: ratio vs mosquitto QoS 0 {us / q0:.2f}, vs QoS 1 {us / q1:.2f}"
                )
    for line in lines:
        print(line)


def check_prerequisites(need_mosquitto: bool) -> list[str]:
    problems = missing_prerequisites()
    if need_mosquitto and mosquitto_binary() is None:
        problems.append(f"mosquitto is not installed: run `{INSTALL_HINT}`")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--scenarios", default="all", help="comma-separated keys (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--window", type=int, default=64, help="messages in flight per sender")
    parser.add_argument(
        "--room-window",
        type=int,
        default=256,
        help="messages in flight per room or topic sender (the relay handles up to 256 room "
        "messages per sender per loop pass: room_frames_per_pass)",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of traffic first")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="cap per measured phase")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each side this many times (alternating); report the median and the range",
    )
    parser.add_argument("--no-mosquitto", action="store_true", help="run the relay side only")
    parser.add_argument(
        "--relay-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="an option for every relay started (repeatable), e.g. "
        "--relay-option=--room-frames-per-pass=64 --room-window 64 for the figures before "
        "session 7",
    )
    parser.add_argument(
        "--ping",
        action="store_true",
        help="a bystander session pings the relay every 20 ms during each relay run; print "
        "its round trips (loop-pass latency under the load)",
    )
    args = parser.parse_args()
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.key:18} {scenario.title}")
        return 0
    wanted = None if args.scenarios == "all" else set(args.scenarios.split(","))
    chosen = [s for s in SCENARIOS if wanted is None or s.key in wanted]
    unknown = (wanted or set()) - {s.key for s in SCENARIOS}
    if unknown or not chosen:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))} (see --list)")
    problems = check_prerequisites(not args.no_mosquitto)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"to install everything: {FULL_INSTALL}", file=sys.stderr)
        return 1
    try:
        build()
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(machine_description())
    binary = mosquitto_binary()
    if binary and not args.no_mosquitto:
        print(mosquitto_version(binary))

    rows: list[tuple[Scenario, SideResult | str | None, SideResult | str | None]] = []
    for scenario in chosen:
        relay_side, mosq_side = run_scenario(scenario, args)
        rows.append((scenario, relay_side, mosq_side))
        print(f"done: {scenario.key}", file=sys.stderr, flush=True)
    print()
    print_table(rows)
    print()
    for scenario, relay, mosq in rows:
        for name, side in (("relay", relay), ("mosquitto", mosq)):
            if isinstance(side, SideResult) and side.result.longest_gap > STALL_NOTE_S:
                print(
                    f"note: {scenario.key} {name} run: no event for "
                    f"{side.result.longest_gap:.2f} s once (idle time; CPU figures unaffected)"
                )
    print_pings(rows)
    print_targets({scenario.key: (relay, mosq) for scenario, relay, mosq in rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
