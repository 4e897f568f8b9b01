"""The bench's C load client (``bench/loadgen``) against the real relay and mosquitto.

Builds the client with ``bench.build_loadgen`` and runs tiny scenarios in its count mode:
every sender sends exactly 100 messages and the client checks that every receiver got all
of them, each once and in order (the payload carries a per-sender counter), and in v2 that
the relay accepted every one (Ack{id}); also for every member of a room (v2.1). No timing
is asserted. What the tests need from the system (gcc, the OpenSSL headers, mosquitto) is
installed here with apt-get when it is missing and the suite runs as root (as CI does);
otherwise the tests skip and say what to install.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.build_loadgen import missing_prerequisites
from bench.loadgen_driver import (
    BENCH_DEVICE,
    config_for_pairs,
    config_for_room,
    prepare_pairs,
    prepare_room,
    relay_options,
    run_loadgen,
)
from bench.mosquitto import MosquittoProcess, mosquitto_binary
from tests.harness import RelayProcess

APT_PACKAGES = ("gcc", "libssl-dev", "mosquitto")


def _install_prerequisites() -> None:
    """apt-get install what is missing, as root only (never asks, never fails the import)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]
    for command in (["apt-get", "update", "-q"], install):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            return


if missing_prerequisites() or mosquitto_binary() is None:
    _install_prerequisites()
MISSING = missing_prerequisites()
pytestmark = pytest.mark.skipif(bool(MISSING), reason="; ".join(MISSING))
COUNT = 100


@pytest.mark.parametrize(
    ("version", "ack_every", "devices"),
    [(2, 1, 0), (2, 64, 0), (1, 64, 0), (2, 1, 3)],
    ids=["v2-ack-each", "v2-ack-every-64", "v1", "v2-3-devices"],
)
def test_every_message_arrives_at_the_relay_receivers(
    relay: RelayProcess, version: int, ack_every: int, devices: int
) -> None:
    pairs = asyncio.run(prepare_pairs(relay, "lg", 2, BENCH_DEVICE if devices else ""))
    options = [
        *relay_options(relay),
        "--version",
        str(version),
        "--ack-every",
        str(ack_every),
        "--devices",
        str(devices),
        "--count",
        str(COUNT),
    ]

    result = run_loadgen(options, config_for_pairs(pairs), [relay.pid], timeout=120)

    copies = 2 * COUNT * max(devices, 1)
    assert (result.sent, result.delivered, result.errors) == (2 * COUNT, copies, 0)
    assert result.ok
    assert result.connections == 2 + 2 * max(devices, 1)


@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed")
@pytest.mark.parametrize("qos", [0, 1])
def test_every_message_arrives_at_the_mosquitto_subscribers(tmp_path: Path, qos: int) -> None:
    binary = mosquitto_binary()
    assert binary is not None
    config = "G pub0 0 0 t/0\nR sub0\nG pub1 0 0 fan\nR sub1\nR sub2\n"
    with MosquittoProcess(tmp_path / "mosquitto", binary) as broker:
        options = ["--proto", "mqtt", "--port", str(broker.port), "--qos", str(qos)]
        result = run_loadgen([*options, "--count", str(COUNT)], config, [broker.pid], timeout=120)

    assert (result.sent, result.delivered, result.errors) == (2 * COUNT, 3 * COUNT, 0)
    assert result.ok


def test_every_room_message_reaches_every_member(relay: RelayProcess) -> None:
    room = asyncio.run(prepare_room(relay, "lgroom", 3))
    options = [*relay_options(relay), "--version", "2", "--devices", "1", "--count", str(COUNT)]

    result = run_loadgen(options, config_for_room(room), [relay.pid], timeout=120)

    assert (result.sent, result.delivered, result.errors) == (COUNT, 3 * COUNT, 0)
    assert result.ok
