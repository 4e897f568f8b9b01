"""Pure logic of file transfers (PROTOCOL.md section 8): no I/O, no clock of its own.

- :class:`SendWindow` — the sender's go-back-N window over one file.
- :class:`ReceiveCursor` — the receiver's contiguous offset and when to report it.
- :class:`RateEstimator` — bytes/s over a sliding time window, and the ETA from it.
- :class:`TransferOptions` — the engine's tunables. (Names: :mod:`~tui.client.transfer.names`.)

Invariants (each class restates its own):
- ``0 <= acked <= next <= size`` for a :class:`SendWindow` at all times, and nothing is
  sent beyond ``acked + window``: the unacknowledged bytes never exceed the window.
- A :class:`ReceiveCursor` accepts a chunk only at exactly its contiguous offset, so the
  bytes it has accepted are always the prefix ``[0, received)`` of the file.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

CHUNK_SIZE = 64 * 1024  # FILE_CHUNK data limit (section 8)
WINDOW = 1024 * 1024  # unacknowledged bytes a sender may have outstanding per transfer
ACK_EVERY = 256 * 1024  # the receiver reports progress at least this often
STALL_TIMEOUT = 3.0  # no progress for this long with bytes outstanding: re-send from acked
MAX_STALL_TIMEOUT = 30.0  # the stall timeout doubles on each consecutive stall up to this
ACK_DELAY = 0.01  # the receiver reports unreported bytes after this long without a chunk
GAP_REPORT_INTERVAL = 0.1  # a receiver re-reports its offset at most this often


# --- the sender's window ------------------------------------------------------------------


@dataclass
class SendWindow:
    """Go-back-N over one file of ``size`` bytes, with TCP-style timing and congestion.

    ``acked``: bytes the receiver has confirmed (contiguous). ``next``: the next offset to
    send. Invariant: ``0 <= acked <= next <= size`` and ``next - acked <= cwnd <= window``.

    Losses (a relay drops chunks when the receiver's buffer is full) are detected two ways:
    a duplicate report (a FILE_PROGRESS that does not advance ``acked`` while bytes are
    outstanding; acted on once per offset until ``acked`` moves) and a stall (no progress
    for the retransmission timeout: ``stall_timeout`` until an RTT is measured, then
    srtt + 4·rttvar as in RFC 6298, at least ``min_rto``, doubling while stalls repeat, at
    most ``MAX_STALL_TIMEOUT``). Either one rewinds ``next`` to ``acked`` (go-back-N) and
    shrinks the congestion window ``cwnd`` (halved on a duplicate report, to two chunks on
    a stall); progress grows it again (doubling per window up to ``ssthresh``, then by one
    chunk per window), never beyond ``window``. RTTs are sampled only from chunks sent for
    the first time (Karn's rule).
    """

    size: int
    window: int = WINDOW
    chunk: int = CHUNK_SIZE
    stall_timeout: float = STALL_TIMEOUT
    min_rto: float = 0.2
    acked: int = 0
    next: int = 0
    rewinds: int = 0
    stalls: int = 0
    cwnd: float = 0.0
    ssthresh: float = 0.0
    srtt: float | None = None
    rttvar: float = 0.0
    _sent_max: int = 0
    _timing: deque[tuple[int, float]] = field(default_factory=deque)
    _rewound_to: int | None = None
    _last_progress: float = 0.0
    _backoff: float = 1.0
    _last_chunk: tuple[int, int] = (0, 0)
    _probed: bool = False

    def __post_init__(self) -> None:
        if self.size < 0 or self.window < 1 or self.chunk < 1:
            raise ValueError("size must be >= 0, window and chunk >= 1")
        self.cwnd = self.ssthresh = float(self.window)

    @property
    def outstanding(self) -> int:
        """Bytes sent and not yet acknowledged."""
        return self.next - self.acked

    @property
    def done(self) -> bool:
        return self.acked >= self.size

    @property
    def rto(self) -> float:
        """The current retransmission timeout (backoff included)."""
        base = (
            self.stall_timeout
            if self.srtt is None
            else max(self.srtt + 4 * self.rttvar, self.min_rto)
        )
        return min(base * self._backoff, max(MAX_STALL_TIMEOUT, self.stall_timeout))

    def sendable(self) -> int:
        """How many bytes may be sent now at ``next`` (0: wait for progress)."""
        room = self.acked + int(self.cwnd) - self.next
        return max(min(self.chunk, self.size - self.next, room), 0)

    def sent(self, offset: int, length: int, now: float) -> None:
        """Record a chunk ``[offset, offset+length)`` as sent. A chunk that was prepared
        before a rewind or restart (``offset != next``) is simply not counted."""
        if offset != self.next:
            return
        if offset + length > min(self.size, self.acked + max(int(self.cwnd), self.chunk)):
            raise ValueError("chunk beyond the window or the file")
        if self.next == self.acked:
            self._last_progress = now  # the pipe was empty: the clock starts now
        self._last_chunk = (offset, length)
        self.next = offset + length
        if offset >= self._sent_max:  # first transmission: a valid RTT sample
            self._timing.append((self.next, now))
        self._sent_max = max(self._sent_max, self.next)

    def restart(self, offset: int, now: float) -> None:
        """The receiver (re-)accepted at ``offset``: start over from there."""
        offset = min(max(offset, 0), self.size)
        self.acked = self.next = self._sent_max = offset
        self._timing.clear()
        self._rewound_to = None
        self._backoff = 1.0
        self._last_progress = now

    def on_progress(self, offset: int, now: float) -> bool:
        """Apply a FILE_PROGRESS; returns True if it rewound ``next`` (go-back-N)."""
        if offset > self.size:
            return False  # nonsense from the peer
        if offset > self.acked:
            self._sample_rtt(offset, now)
            newly = offset - self.acked
            self.acked = offset
            self.next = max(self.next, offset)  # the receiver may be ahead of us
            if self.cwnd < self.ssthresh:
                self.cwnd += newly
            else:
                self.cwnd += self.chunk * newly / self.cwnd
            self.cwnd = min(self.cwnd, float(self.window))
            self._rewound_to = None
            self._backoff = 1.0
            self._probed = False
            self._last_progress = now
            return False
        if offset == self.acked and self.next > offset and self._rewound_to != offset:
            self.ssthresh = max(self.cwnd / 2, 2.0 * self.chunk)
            self.cwnd = self.ssthresh
            self._rewind(now)
            return True
        return False

    def _sample_rtt(self, offset: int, now: float) -> None:
        sent_at: float | None = None
        while self._timing and self._timing[0][0] <= offset:
            sent_at = self._timing.popleft()[1]
        if sent_at is None:
            return
        rtt = max(now - sent_at, 0.0)
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def _rewind(self, now: float) -> None:
        self._probed = False
        self.next = self.acked
        self._rewound_to = self.acked
        self._timing.clear()  # Karn: what is re-sent now gives no RTT sample
        self.rewinds += 1
        self._last_progress = now

    def touch(self, now: float) -> None:
        """Restart the stall clock (e.g. while the peer is away: nothing can be in flight)."""
        self._last_progress = now

    def stall_deadline(self) -> float | None:
        """When :meth:`check_stall` would rewind, or None when nothing is outstanding."""
        if self.outstanding <= 0 or self.done:
            return None
        return self._last_progress + self.rto

    def probe_deadline(self) -> float | None:
        """When a tail-loss probe is due (:meth:`take_probe`), or None."""
        if self.outstanding <= 0 or self.done or self._probed or self.srtt is None:
            return None
        return self._last_progress + 2 * self.srtt + ACK_DELAY

    def take_probe(self, now: float) -> tuple[int, int] | None:
        """Tail-loss probe: with bytes outstanding and no progress for about two RTTs,
        re-send the last chunk once (it is the tail the relay drops first). If bytes
        before it were lost, it arrives out of order and the receiver's duplicate report
        makes us go back at once instead of waiting for the full timeout. Returns the
        ``(offset, length)`` to re-send, or None."""
        deadline = self.probe_deadline()
        if deadline is None or now < deadline:
            return None
        self._probed = True
        offset, length = self._last_chunk
        if length <= 0 or offset < self.acked or offset + length > self.next:
            return None
        return offset, length

    def check_stall(self, now: float) -> bool:
        """Rewind to ``acked`` if bytes are outstanding and no progress came within the
        retransmission timeout (which then doubles). True if it rewound."""
        deadline = self.stall_deadline()
        if deadline is None or now < deadline:
            return False
        self.ssthresh = max(self.cwnd / 2, 2.0 * self.chunk)
        self.cwnd = min(2.0 * self.chunk, float(self.window))
        self._backoff *= 2
        self.stalls += 1
        self._rewind(now)
        return True


# --- the receiver's cursor ----------------------------------------------------------------


@dataclass
class ReceiveCursor:
    """The receiver's view of one file of ``size`` bytes.

    ``received``: the contiguous prefix accepted (queued for writing). ``reported``: the
    last offset sent in a FILE_PROGRESS. Invariant: ``reported <= received <= size``, and
    ``size`` itself is reported only through :meth:`confirm_complete` (after the SHA-256
    check), never by the periodic, delayed or gap reports.
    """

    size: int
    received: int = 0
    reported: int = 0
    ack_every: int = ACK_EVERY
    gap_interval: float = GAP_REPORT_INTERVAL
    ignored: int = 0
    _last_gap_report: float = float("-inf")
    _last_gap_offset: int = -1

    def accepts(self, offset: int, length: int) -> bool:
        """True if a chunk at ``offset`` is the next one and fits in the file."""
        return offset == self.received and length > 0 and offset + length <= self.size

    def take(self, length: int) -> None:
        """Record an accepted chunk of ``length`` bytes."""
        self.received += length

    def reportable(self) -> int:
        """The offset a report may carry: everything received, except that the full size
        waits for verification: until then ``size - 1`` says "all here, verifying" (the
        sender is left with one byte outstanding, so its probes cost next to nothing)."""
        return self.received if self.received < self.size else self.size - 1

    def due_report(self, *, held: bool = False) -> int | None:
        """Offset to report now after accepting data, or None. ``held``: the writer is
        behind, so progress is withheld (that is the receiver's flow control)."""
        if held:
            return None
        offset = self.reportable()
        if offset >= self.reported + self.ack_every or (
            self.received >= self.size and offset > self.reported
        ):
            self.reported = offset
            return offset
        return None

    def delayed_report(self) -> int | None:
        """The ack-delay timer fired: report whatever is unreported (None: nothing), so a
        sender whose window is smaller than ``ack_every`` is not left waiting."""
        offset = self.reportable()
        if offset > self.reported:
            self.reported = offset
            return offset
        return None

    def confirm_complete(self) -> int:
        """The file is verified and in place: the final report carries the full size."""
        self.received = self.reported = self.size
        return self.size

    def gap_reports(self, now: float) -> list[int]:
        """A chunk was ignored: the reports to send now, possibly none (a new gap is
        reported at once, the same one again at most every ``gap_interval``).

        A report must not advance the sender's ``acked``, or the sender takes it for normal
        progress: if we owe an advance, that goes first, then the duplicate that asks the
        sender to go back."""
        self.ignored += 1
        offset = self.reportable()
        if offset == self._last_gap_offset and now - self._last_gap_report < self.gap_interval:
            return []
        self._last_gap_report, self._last_gap_offset = now, offset
        if offset > self.reported:
            self.reported = offset
            return [offset, offset]
        return [self.reported]

    def restart(self, offset: int) -> None:
        """Resuming with ``offset`` bytes already on disk."""
        self.received = self.reported = min(max(offset, 0), self.size)


# --- rate and ETA ---------------------------------------------------------------------------


class RateEstimator:
    """Throughput over the last ``horizon`` seconds of samples ``(time, total bytes)``.

    Bounded: at most ``max_samples`` samples are kept. A total that goes down (a transfer
    that restarted lower) resets the estimate.
    """

    def __init__(self, horizon: float = 5.0, max_samples: int = 64) -> None:
        if horizon <= 0 or max_samples < 2:
            raise ValueError("horizon must be positive and max_samples >= 2")
        self.horizon = horizon
        self._samples: deque[tuple[float, int]] = deque(maxlen=max_samples)

    def update(self, now: float, total: int) -> None:
        samples = self._samples
        if samples and total < samples[-1][1]:
            samples.clear()
        if samples and now <= samples[-1][0]:
            samples[-1] = (samples[-1][0], total)
            return
        samples.append((now, total))
        while len(samples) > 2 and now - samples[1][0] >= self.horizon:
            samples.popleft()

    def rate(self) -> float:
        """Bytes per second (0.0 until two samples span some time)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def eta(self, remaining: int) -> float | None:
        """Seconds until ``remaining`` more bytes at the current rate (None: unknown)."""
        if remaining <= 0:
            return 0.0
        rate = self.rate()
        return remaining / rate if rate > 0 else None


@dataclass(frozen=True)
class TransferOptions:
    """Tunables of the engine; defaults follow the protocol's limits and the relay's
    defaults (ephemeral traffic to a receiver is dropped above half its 4 MiB high water)."""

    chunk_size: int = CHUNK_SIZE
    window: int = WINDOW  # unacknowledged bytes per transfer
    peer_window: int = 3 * WINDOW // 2  # unacknowledged bytes over all transfers to one peer
    ack_every: int = ACK_EVERY
    ack_delay: float = ACK_DELAY  # report unreported bytes when no chunk came for this long
    stall_timeout: float = STALL_TIMEOUT
    gap_report_interval: float = GAP_REPORT_INTERVAL
    progress_interval: float = 0.25  # TransferProgress events per transfer, at most this often
    persist_interval: float = 2.0  # offsets written to the database at most this often
    write_backlog: int = 4 * WINDOW  # receiver withholds progress while this much is unwritten
    max_write_backlog: int = 8 * WINDOW  # and drops chunks beyond this (hostile senders)
    v1_max_file: int = 4 * 1024 * 1024 - 64 * 1024  # a v1 FILE must fit the relay's max_frame
    max_rate: float = 0.0  # bytes/s a sender puts on the wire per transfer; 0 = no limit

    def __post_init__(self) -> None:
        if not 0 < self.chunk_size <= CHUNK_SIZE:
            raise ValueError(f"chunk_size must be 1..{CHUNK_SIZE}")
        if self.window < self.chunk_size or self.ack_every > self.window:
            raise ValueError("need chunk_size <= window and ack_every <= window")
        if self.peer_window < self.chunk_size:
            raise ValueError("peer_window must hold at least one chunk")
        if self.max_rate < 0:
            raise ValueError("max_rate must be >= 0 (0 = no limit)")
