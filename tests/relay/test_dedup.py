"""relay.dedup: the Bloom filter never forgets what was added within its period; on a real
SQLite store with an injected wall clock, time never runs backwards."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from protocol import FrameType, encode_frame
from relay.dedup import INITIAL_WORDS, DedupWindow, PairBloom
from relay.store import InboxRow, Store

HOUR = 3600
START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _accept(
    store: Store,
    window: DedupWindow,
    recipient: int,
    seq: int,
    sender: int,
    client_id: int,
    timestamp: int,
) -> None:
    """What the relay does with a new durable message: filter, then store in the bucket."""
    assert not window.bloom.test_and_add(sender, client_id)
    frame = encode_frame(FrameType.MESSAGE, b"m")
    store.append_inbox(
        [InboxRow(recipient, seq, sender, client_id, timestamp, frame)], window.current_bucket()
    )


def test_a_backward_clock_step_neither_hides_a_record_nor_files_one_in_the_past(
    tmp_path: Path,
) -> None:
    """Issue 11: a backward wall-clock step moved the live buckets back past a record, and
    the retry of its id was stored twice."""
    clock = FakeClock(START)
    with Store(tmp_path / "relay.db", dedup_bucket_seconds=HOUR) as store:
        alice = store.add_user("alice", "alice", "h", 0)
        bob = store.add_user("bob", "bob", "h", 0)
        assert alice is not None and bob is not None
        window = DedupWindow(store, 2 * HOUR, 12, clock=clock)
        _accept(store, window, bob, 1, alice, 42, int(clock.now))
        bucket = window.current_bucket()

        clock.now -= 3 * 24 * HOUR  # the system clock steps back three days
        assert window.now() == START and window.current_bucket() == bucket
        assert window.bloom.test_and_add(alice, 42)
        record = window.find(alice, 42, bob)
        assert record is not None and record.seq == 1
        _accept(store, window, bob, 2, alice, 43, int(clock.now))
        assert store.newest_dedup_bucket() == bucket  # not filed three days back
        store.commit()

        # A restart while the clock is still behind starts from the newest bucket stored.
        again = DedupWindow(store, 2 * HOUR, 12, clock=clock)
        assert again.current_bucket() == bucket
        assert (alice, 42) in again.bloom and (alice, 43) in again.bloom  # reloaded
        found = again.find(alice, 43, bob)
        assert found is not None and found.seq == 2

        clock.now = START + 5 * HOUR  # time moves on: the record expires with its bucket
        assert again.find(alice, 42, bob) is None
        assert again.prune(100) == 2


u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


@given(pairs=st.lists(st.tuples(u32, u64), max_size=200))
def test_bloom_has_no_false_negatives_across_one_rotation(pairs: list[tuple[int, int]]) -> None:
    bloom = PairBloom(bits_log2=12, period=10.0, now=0.0)
    for a, b in pairs:
        bloom.add(a, b)
    assert all(pair in bloom for pair in pairs)
    assert bloom.maybe_rotate(10.0)
    assert all(pair in bloom for pair in pairs)  # still there for one more period


def test_bloom_forgets_after_two_rotations_and_is_mostly_negative() -> None:
    bloom = PairBloom(bits_log2=16, period=10.0)
    bloom.add(1, 2)
    assert not bloom.maybe_rotate(5.0)
    bloom.maybe_rotate(10.0)
    bloom.maybe_rotate(20.0)
    assert (1, 2) not in bloom
    for i in range(1000):
        bloom.add(7, i)
    false_positives = sum((8, i) in bloom for i in range(10_000))
    assert false_positives < 50  # 6 bits in one of 1,024 words per pair: under 0.5 %


def test_test_and_add_reports_prior_presence() -> None:
    bloom = PairBloom(bits_log2=16)
    assert not bloom.test_and_add(3, 4)
    assert bloom.test_and_add(3, 4)
    assert (3, 4) in bloom


def test_bloom_hash_is_keyed_so_ids_cannot_be_crafted_to_look_seen() -> None:
    """Issue 11: with Python's public int-tuple hash, ids that differ by 2**61 - 1 hash alike,
    so one stored id made every such id "maybe seen" (a store lookup each)."""
    bloom = PairBloom(bits_log2=16, secret=bytes(range(16)))
    bloom.add(1, 12345)
    assert (1, 12345) in bloom
    assert not any((1, 12345 + k * (2**61 - 1)) in bloom for k in range(1, 8))


def test_bloom_starts_small_and_grows_without_forgetting() -> None:
    """Issue 16: the filter was 2 x 8 MiB from the start. It now starts with one small slice
    per generation and adds larger ones as pairs arrive; nothing added is ever lost."""
    bloom = PairBloom(bits_log2=26, period=10.0, now=0.0)
    start = bloom.memory_bytes
    assert start <= 2 * INITIAL_WORDS * 8
    added: list[tuple[int, int]] = []
    sizes = [start]
    for i in range(3 * INITIAL_WORDS):
        bloom.add(9, i)
        added.append((9, i))
        if bloom.memory_bytes != sizes[-1]:
            sizes.append(bloom.memory_bytes)
            assert all(pair in bloom for pair in added)  # no false negative after growth
    assert len(sizes) >= 2 and sizes == sorted(sizes)  # grew, never shrank while filling
    assert sizes[-1] <= 2**26 // 8 * 2
    assert bloom.maybe_rotate(10.0)
    assert all(pair in bloom for pair in added)  # the grown generation survives one rotation
    bloom.maybe_rotate(20.0)
    assert bloom.memory_bytes < sizes[-1]  # the grown generation is gone after two
    assert sum(pair in bloom for pair in added) < len(added) // 100


def test_bloom_growth_stops_at_its_bound_and_keeps_every_pair() -> None:
    bloom = PairBloom(bits_log2=16, period=10.0, initial_words=16)  # 1,024 words at most
    pairs = [(1, i) for i in range(5_000)]
    for a, b in pairs:
        bloom.add(a, b)
    assert bloom.memory_bytes == 2**16 // 8  # one generation, filled to its bound
    assert all(pair in bloom for pair in pairs)


@given(pairs=st.lists(st.tuples(u32, u64), min_size=1, max_size=400), cut=st.integers(0, 400))
def test_bloom_has_no_false_negatives_while_it_grows_and_rotates(
    pairs: list[tuple[int, int]], cut: int
) -> None:
    """Slices of 2 words at first: a few pairs make it grow several times per generation."""
    bloom = PairBloom(bits_log2=14, period=10.0, now=0.0, initial_words=2)
    before, after = pairs[:cut], pairs[cut:]
    for index, (a, b) in enumerate(before):
        bloom.add(a, b)
        assert all(pair in bloom for pair in before[: index + 1])
    assert bloom.maybe_rotate(10.0)
    for a, b in after:
        bloom.add(a, b)
    assert all(pair in bloom for pair in pairs)
