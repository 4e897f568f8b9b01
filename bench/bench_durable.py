"""Relay CPU per durable 32-byte message WITH acks (v2 sessions, TLS by default).

Usage: python -m bench.bench_durable [--messages 200000] [--pairs 10] [--window 64]
       [--ack-every 64] [--plaintext]

Set-up (not measured): ``--pairs`` sender/receiver pairs of users, each registered and
logged in with protocol v2 on one connection, the two of a pair mutual buddies (the same
set-up as ``bench_relay.py --mode v2``, whose helpers this script imports).

Traffic: every Message payload is exactly 32 bytes (uid = receiver, type MESSAGE, unique
``id``: durable, deduplicated, stored before it is acknowledged). Each sender keeps
``--window`` messages **un-acked by the relay** in flight: it starts with ``--window``
messages and sends one more for every accept Ack (``Ack{id, seq}``, sent by the relay after
the message is committed). Receivers send batched delivery acks ``Ack{seq}`` after every
``--ack-every`` messages (the relay then deletes the rows and sends the senders their
delivery receipts ``Ack{id, delivered}``). This is the full durable path: store, commit,
accept-ack, push, delete on ack, receipt.

After ``--warmup`` seconds of traffic the relay process's own CPU time (utime + stime from
/proc/<pid>/stat) is sampled, and again once ``--messages`` more messages have been
delivered to receivers. Printed: messages delivered, wall time, msgs/s, relay CPU µs per
delivered message (target ≤ 16 µs) and the relay's CPU utilisation, the bench client's own
CPU (one thread, one selector, pre-encoded frames; on a 2-core machine it competes with
the relay for CPU, so it is kept lean), and the acks seen per message.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.bench_relay import (
    PAYLOAD_SIZE,
    Bench,
    Pair,
    add_traffic_options,
    measure,
    print_costs,
    print_profile,
    set_up_pairs,
    start_relay,
)
from bench.benchlib import BenchError, machine_description
from protocol import chat_pb2 as pb
from protocol.types import FrameType

TARGET_US = 16.0
_MESSAGE = int(FrameType.MESSAGE)
_ACK = int(FrameType.ACK)
_RESET = int(FrameType.RESET)
_Ack = pb.Ack


class DurableBench(Bench):
    """Senders are clocked by the relay's accept Acks; receivers acknowledge in batches."""

    def __init__(self, pairs: list[Pair], window: int, ack_every: int) -> None:
        super().__init__(pairs, window, True, ack_every)
        self.accepted = 0  # accept Acks (code OK) received by senders
        self.receipts = 0  # delivery receipts received by senders
        self.receiver_acks = 0  # Ack{seq} frames sent by receivers
        self.at_warm_up = (0, 0, 0)  # the three counters when the warm-up ended

    def warmed_up(self) -> None:
        self.at_warm_up = (self.accepted, self.receipts, self.receiver_acks)

    def _on_receiver(self, pair: Pair, frames: list[tuple[int, bytes]]) -> None:
        count, last_payload = self._deliveries(pair, frames)
        if count and self._ack_deliveries(pair, count, last_payload):
            self.receiver_acks += 1

    def _on_sender(self, pair: Pair, frames: list[tuple[int, bytes]]) -> None:
        accepted = 0
        for frame_type, payload in frames:
            if frame_type == _ACK:
                ack = _Ack.FromString(payload)
                if ack.delivered:
                    self.receipts += 1
                elif ack.code == _Ack.OK:
                    accepted += 1
                else:
                    raise BenchError(
                        f"{pair.sender.name}: message refused: {_Ack.Code.Name(ack.code)}"
                    )
            elif frame_type == _RESET:
                raise BenchError(f"{pair.sender.name}: Reset {pb.Reset.FromString(payload)}")
        if accepted:
            pair.sender_acks += accepted
            self.accepted += accepted
            self._send(pair, accepted)  # back to `window` un-acked messages


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_traffic_options(
        parser,
        window_help="messages each sender keeps in flight, un-acked by the relay",
        ack_help="a receiver sends Ack{seq} after this many messages",
    )
    args = parser.parse_args()

    print(machine_description())
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        relay = start_relay(args, Path(tmp) / "relay")
        bench: DurableBench | None = None
        try:
            pregenerate = (args.messages // args.pairs) + args.window + 40_000 // args.pairs
            pairs = set_up_pairs(relay, args.pairs, True, pregenerate)
            bench = DurableBench(pairs, args.window, args.ack_every)
            run = measure(relay, bench, args)
            accepted0, receipts0, receiver_acks0 = bench.at_warm_up
            accepted = bench.accepted - accepted0
            receipts = bench.receipts - receipts0
            receiver_acks = bench.receiver_acks - receiver_acks0
        finally:
            if bench is not None:
                bench.close()
            relay.stop()
    if run.delivered == 0:
        print("no message was delivered in the measured phase")
        return 1
    transport = "plaintext TCP" if args.plaintext else "TLS"
    print(
        f"v2 durable messages, {transport}, {args.pairs} pairs, each sender keeping "
        f"{args.window} messages un-acked by the relay, {PAYLOAD_SIZE}-byte payloads, "
        f"receiver Ack{{seq}} every {args.ack_every}"
    )
    print(f"warm-up: {run.warm_delivered:,} messages in {args.warmup:g} s")
    print(
        f"messages delivered: {run.delivered:,} (accept Acks {accepted:,}, delivery "
        f"receipts {receipts:,}, receiver Ack{{seq}} frames {receiver_acks:,})"
    )
    print_costs(run, TARGET_US)
    if args.profile:
        print(f"\ncProfile of the relay (whole run, set-up included): {args.profile}")
        print_profile(args.profile, 25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
