"""Pure transfer logic: the sender's window (go-back-N, stalls, probes, congestion), the
receiver's cursor, rate/ETA, and a simulated lossy link driving both ends."""

from __future__ import annotations

import random

import pytest

from tui.client.transfer.logic import (
    CHUNK_SIZE,
    MAX_STALL_TIMEOUT,
    WINDOW,
    RateEstimator,
    ReceiveCursor,
    SendWindow,
    TransferOptions,
)

KIB = 1024
MIB = 1024 * KIB


def fill(window: SendWindow, now: float = 0.0) -> list[tuple[int, int]]:
    """Send everything the window allows; returns the chunks sent."""
    sent = []
    while (length := window.sendable()) > 0:
        sent.append((window.next, length))
        window.sent(window.next, length, now)
    return sent


# --- SendWindow ------------------------------------------------------------------------------


def test_window_bounds_what_is_outstanding() -> None:
    window = SendWindow(10 * MIB)
    chunks = fill(window)
    assert window.outstanding == WINDOW == len(chunks) * CHUNK_SIZE
    assert all(length <= CHUNK_SIZE for _, length in chunks)
    assert window.sendable() == 0
    with pytest.raises(ValueError):
        window.sent(window.next, CHUNK_SIZE, 0.0)  # beyond the window
    window.on_progress(256 * KIB, 0.01)
    assert window.sendable() == CHUNK_SIZE
    assert len(fill(window)) == 4 and window.outstanding == WINDOW


def test_small_file_and_empty_file() -> None:
    window = SendWindow(100)
    assert fill(window) == [(0, 100)]
    assert not window.done
    window.on_progress(100, 0.0)
    assert window.done and window.sendable() == 0
    assert SendWindow(0).done


def test_duplicate_report_rewinds_once_per_offset() -> None:
    window = SendWindow(10 * MIB)
    fill(window)
    assert not window.on_progress(128 * KIB, 0.01)  # advance: normal progress
    assert (window.acked, window.next) == (128 * KIB, WINDOW)
    assert window.on_progress(128 * KIB, 0.02)  # duplicate: go back
    assert (window.acked, window.next, window.rewinds) == (128 * KIB, 128 * KIB, 1)
    assert window.cwnd == WINDOW / 2  # and halve the congestion window
    fill(window, 0.03)
    assert not window.on_progress(128 * KIB, 0.04)  # the same offset again: in-flight stale
    assert window.rewinds == 1
    window.on_progress(256 * KIB, 0.05)
    fill(window, 0.05)
    assert window.on_progress(256 * KIB, 0.06)  # a new loss further on: go back again
    assert window.rewinds == 2


def test_report_ahead_of_us_jumps_forward_and_stale_reports_are_ignored() -> None:
    window = SendWindow(10 * MIB)
    window.restart(0, 0.0)
    window.on_progress(3 * MIB, 0.1)  # the receiver already had more (e.g. after a restart)
    assert (window.acked, window.next) == (3 * MIB, 3 * MIB)
    assert not window.on_progress(MIB, 0.2)
    assert window.acked == 3 * MIB
    assert not window.on_progress(11 * MIB, 0.3)  # beyond the file: nonsense, ignored
    assert window.acked == 3 * MIB


def test_restart_from_accept_goes_back_even_below_acked() -> None:
    window = SendWindow(10 * MIB)
    fill(window)
    window.on_progress(WINDOW, 0.1)
    window.restart(512 * KIB, 0.2)  # the receiver lost what it had not written
    assert (window.acked, window.next) == (512 * KIB, 512 * KIB)
    window.restart(20 * MIB, 0.3)
    assert window.acked == window.next == 10 * MIB  # clamped to the file


def test_stall_rewinds_with_exponential_backoff() -> None:
    window = SendWindow(10 * MIB, stall_timeout=3.0)
    window.restart(0, 0.0)
    fill(window, 0.0)
    assert window.stall_deadline() == 3.0  # no RTT measured yet: the configured timeout
    assert not window.check_stall(2.9)
    assert window.check_stall(3.0)
    assert (window.next, window.stalls) == (0, 1)
    assert window.cwnd == 2 * CHUNK_SIZE  # start slow after a timeout
    fill(window, 3.0)
    assert window.stall_deadline() == 3.0 + 6.0  # doubled
    assert window.check_stall(9.0)
    fill(window, 9.0)
    for _ in range(10):
        deadline = window.stall_deadline()
        assert deadline is not None
        assert window.check_stall(deadline)
        fill(window, deadline)
    assert window.rto == MAX_STALL_TIMEOUT  # capped
    window.on_progress(CHUNK_SIZE, 500.0)
    assert window.rto == 3.0  # progress resets the backoff (no valid RTT sample: Karn)


def test_nothing_outstanding_never_stalls() -> None:
    window = SendWindow(10 * MIB)
    assert window.stall_deadline() is None and not window.check_stall(1e9)
    fill(window)
    window.on_progress(WINDOW, 1.0)
    assert window.stall_deadline() is None


def test_rtt_is_measured_on_first_transmissions_only() -> None:
    window = SendWindow(10 * MIB, min_rto=0.2)
    window.sent(0, CHUNK_SIZE, 10.0)
    window.on_progress(CHUNK_SIZE, 10.05)
    assert window.srtt == pytest.approx(0.05)
    assert window.rto == pytest.approx(0.2)  # srtt + 4 * rttvar = 0.15, floored
    window.sent(CHUNK_SIZE, CHUNK_SIZE, 11.0)
    window.on_progress(CHUNK_SIZE, 11.5)  # duplicate: rewind, retransmission follows
    window.sent(CHUNK_SIZE, CHUNK_SIZE, 12.0)
    window.on_progress(2 * CHUNK_SIZE, 12.01)  # ambiguous sample: ignored
    assert window.srtt == pytest.approx(0.05)


def test_congestion_window_grows_back_but_never_beyond_the_window() -> None:
    window = SendWindow(100 * MIB)
    now = 0.0
    fill(window, now)
    window.on_progress(0, now)  # a duplicate report of offset 0: a loss
    assert window.cwnd == WINDOW / 2
    for _ in range(200):
        now += 0.01
        fill(window, now)
        window.on_progress(window.next, now)
        assert window.outstanding <= window.cwnd <= WINDOW
    assert window.cwnd == WINDOW


def test_tail_loss_probe_resends_the_last_chunk_once() -> None:
    window = SendWindow(10 * MIB)
    window.sent(0, CHUNK_SIZE, 0.0)
    window.on_progress(CHUNK_SIZE, 0.01)  # srtt = 10 ms
    fill(window, 0.02)
    last = window.next - CHUNK_SIZE
    deadline = window.probe_deadline()
    assert deadline is not None and deadline < 0.02 + window.rto
    assert window.take_probe(deadline - 0.001) is None
    assert window.take_probe(deadline) == (last, CHUNK_SIZE)
    assert window.take_probe(deadline + 1) is None  # once
    window.on_progress(2 * CHUNK_SIZE, deadline + 0.01)
    assert window.probe_deadline() is not None  # re-armed by progress


# --- ReceiveCursor ---------------------------------------------------------------------------


def test_cursor_takes_only_the_next_chunk_and_reports_periodically() -> None:
    cursor = ReceiveCursor(MIB, ack_every=256 * KIB)
    reports = []
    for offset in range(0, MIB, CHUNK_SIZE):
        assert not cursor.accepts(offset + 1, CHUNK_SIZE)
        assert cursor.accepts(offset, CHUNK_SIZE)
        cursor.take(CHUNK_SIZE)
        report = cursor.due_report()
        if report is not None:
            reports.append(report)
    # Never the full size unverified: size - 1 says "all here, verifying".
    assert reports == [256 * KIB, 512 * KIB, 768 * KIB, MIB - 1]
    assert cursor.received == MIB
    assert cursor.delayed_report() is None and cursor.gap_reports(0.0) == [MIB - 1]
    assert not cursor.accepts(MIB, 1)  # nothing beyond the file
    assert cursor.confirm_complete() == MIB


def test_withheld_progress_is_flow_control() -> None:
    cursor = ReceiveCursor(4 * MIB, ack_every=256 * KIB)
    cursor.take(512 * KIB)
    assert cursor.due_report(held=True) is None
    assert cursor.due_report(held=False) == 512 * KIB


def test_delayed_report_covers_windows_smaller_than_ack_every() -> None:
    cursor = ReceiveCursor(4 * MIB, ack_every=256 * KIB)
    cursor.take(128 * KIB)
    assert cursor.due_report() is None
    assert cursor.delayed_report() == 128 * KIB
    assert cursor.delayed_report() is None


def test_gap_reports_are_duplicates_and_rate_limited_per_offset() -> None:
    cursor = ReceiveCursor(4 * MIB, ack_every=256 * KIB, gap_interval=0.1)
    cursor.take(300 * KIB)
    cursor.due_report()  # reported 300 KiB
    cursor.take(64 * KIB)
    # owed an advance: send it, then the duplicate that asks the sender to go back
    assert cursor.gap_reports(1.0) == [364 * KIB, 364 * KIB]
    assert cursor.gap_reports(1.05) == []  # same gap, too soon
    assert cursor.gap_reports(1.11) == [364 * KIB]
    cursor.take(64 * KIB)
    assert cursor.gap_reports(1.12) == [428 * KIB, 428 * KIB]  # a new gap: at once
    assert cursor.ignored == 4


def test_resume_restarts_the_cursor() -> None:
    cursor = ReceiveCursor(MIB)
    cursor.restart(300 * KIB)
    assert cursor.received == cursor.reported == 300 * KIB
    assert cursor.accepts(300 * KIB, CHUNK_SIZE) and not cursor.accepts(0, CHUNK_SIZE)


# --- RateEstimator ----------------------------------------------------------------------------


def test_rate_and_eta() -> None:
    rate = RateEstimator(horizon=5.0)
    assert rate.rate() == 0.0 and rate.eta(100) is None and rate.eta(0) == 0.0
    for second in range(11):
        rate.update(float(second), second * 1_000_000)
    assert rate.rate() == pytest.approx(1_000_000)
    assert rate.eta(5_000_000) == pytest.approx(5.0)
    rate.update(11.0, 11_000_000)
    rate.update(11.0, 11_500_000)  # same instant: replaces, never divides by zero
    assert rate.rate() > 1_000_000


def test_rate_follows_recent_samples_and_resets_when_bytes_go_down() -> None:
    rate = RateEstimator(horizon=2.0)
    for second in range(10):
        rate.update(float(second), second * 100)
    for second in range(10, 20):
        rate.update(float(second), 900 + (second - 9) * 1000)
    assert rate.rate() == pytest.approx(1000)  # the old slow phase is beyond the horizon
    rate.update(21.0, 50)  # a restart from a lower offset
    assert rate.rate() == 0.0 and rate.eta(10) is None


def test_rate_estimator_is_bounded() -> None:
    rate = RateEstimator(horizon=1e9, max_samples=8)
    for i in range(1000):
        rate.update(float(i), i)
    assert len(rate._samples) == 8


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        TransferOptions(chunk_size=CHUNK_SIZE + 1)
    with pytest.raises(ValueError):
        TransferOptions(window=CHUNK_SIZE, ack_every=2 * CHUNK_SIZE)
    with pytest.raises(ValueError):
        TransferOptions(max_rate=-1)


# --- both ends over a simulated lossy link ------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_go_back_n_over_a_lossy_fifo_link(seed: int) -> None:
    """A FIFO link that drops chunks and reports at random: the receiver ends with exactly
    the file, in order, and the sender never has more than the window outstanding."""
    rng = random.Random(seed)
    size = 3 * MIB + 12345
    data = rng.randbytes(size)
    window = SendWindow(size, min_rto=0.05)
    cursor = ReceiveCursor(size, ack_every=256 * KIB, gap_interval=0.02)
    received = bytearray()
    now = 0.0
    to_receiver: list[tuple[int, bytes]] = []
    to_sender: list[int] = []
    for _ in range(200_000):
        now += 0.001
        length = window.sendable()
        if length:
            offset = window.next
            window.sent(offset, length, now)
            if rng.random() > 0.15:  # 15 % of the chunks are dropped
                to_receiver.append((offset, data[offset : offset + length]))
        else:
            probe = window.take_probe(now)
            if probe is not None:
                to_receiver.append((probe[0], data[probe[0] : probe[0] + probe[1]]))
            window.check_stall(now)
        assert window.outstanding <= WINDOW
        if to_receiver and rng.random() < 0.7:
            offset, chunk = to_receiver.pop(0)
            if cursor.accepts(offset, len(chunk)):
                cursor.take(len(chunk))
                received += chunk
                report = cursor.due_report()
                if report is not None:
                    to_sender.append(report)
                if cursor.received == size:
                    to_sender.append(cursor.confirm_complete())
            else:
                to_sender.extend(cursor.gap_reports(now))
        elif not to_receiver and cursor.received < size:
            report = cursor.delayed_report()
            if report is not None:
                to_sender.append(report)
        if to_sender and rng.random() < 0.7:
            report = to_sender.pop(0)
            if rng.random() > 0.1:  # and 10 % of the reports
                window.on_progress(report, now)
        if window.done:
            break
    assert window.done, (window.acked, cursor.received)
    assert bytes(received) == data
