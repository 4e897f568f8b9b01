"""Decoder throughput: frames/s for 32-byte messages and MB/s for 64 KiB frames.

Usage: python -m bench.bench_decoder [--seconds 2]
Feeds a pre-built stream in 16 KiB reads (a typical TLS record's worth) and prints figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from protocol import FrameDecoder, encode_frame
from protocol import chat_pb2 as pb


def _run(stream: bytes, chunk: int, seconds: float) -> tuple[int, int, float]:
    frames = 0
    total_bytes = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        decoder = FrameDecoder()
        for i in range(0, len(stream), chunk):
            frames += len(decoder.feed(stream[i : i + chunk]))
        total_bytes += len(stream)
        elapsed = time.perf_counter() - start
    return frames, total_bytes, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per case")
    args = parser.parse_args()
    small = encode_frame(6, pb.Message(uid=7, type=pb.Message.MESSAGE, msg="x" * 26, id=1))
    small_stream = small * 20_000
    frames, _, elapsed = _run(small_stream, 16384, args.seconds)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"small frames ({len(small) - 5}-byte payload): {frames / elapsed:,.0f} frames/s")
    big = encode_frame(6, os.urandom(64 * 1024))
    big_stream = big * 256
    _, nbytes, elapsed = _run(big_stream, 16384, args.seconds)
    print(f"64 KiB frames: {nbytes / elapsed / 1e6:,.0f} MB/s")


if __name__ == "__main__":
    main()
