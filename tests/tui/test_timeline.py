"""The conversation layout model: day separators, the fixed gutter, cheap updates."""

from __future__ import annotations

import datetime
import time

from rich.cells import cell_len

from protocol import chat_pb2 as pb
from tui.client.history import HistoryEntry, MessageState
from tui.display import DISPLAY_LINES
from tui.timeline import GUTTER, Timeline

DAY = 86_400
T0 = int(time.mktime((2024, 6, 4, 12, 0, 0, 0, 0, -1)))  # local noon


def entry(
    local_id: int,
    text: str = "hi",
    *,
    outgoing: bool = False,
    ts: int = T0,
    state: MessageState | None = None,
    kind: int = pb.Message.MESSAGE,
) -> HistoryEntry:
    return HistoryEntry(
        local_id=local_id,
        peer=2,
        outgoing=outgoing,
        msg_id=local_id,
        seq=None,
        type=kind,
        text=text,
        data=b"",
        file=None,
        timestamp=ts,
        state=state or (MessageState.PENDING if outgoing else MessageState.RECEIVED),
    )


def timeline(width: int = 40) -> Timeline:
    return Timeline("alice", "bob", width=width, today=lambda: datetime.date(2024, 6, 4))


def plain(tl: Timeline) -> list[str]:
    return [line.plain for line in tl.lines]


def test_day_separators_and_gutter() -> None:
    tl = timeline()
    tl.prepend([entry(1, ts=T0 - DAY), entry(2, ts=T0 - DAY + 60), entry(3, outgoing=True)])
    lines = plain(tl)
    assert "Yesterday" in lines[0] and "Today" in lines[3]
    assert lines[1] == "12:00    bob: hi"
    assert lines[4] == "12:00 …  alice: hi"
    assert all(cell_len(line) <= 40 for line in lines)


def test_state_change_rewrites_only_the_head_line() -> None:
    tl = timeline()
    tl.prepend([entry(1), entry(2, "a long message that wraps over lines", outgoing=True)])
    head = tl.head_line(2)
    assert head is not None
    before = plain(tl)
    changed = tl.upsert(
        entry(
            2, "a long message that wraps over lines", outgoing=True, state=MessageState.DELIVERED
        )
    )
    assert changed == [head]
    after = plain(tl)
    assert after[head].startswith("12:00 ✓✓ alice:")
    assert [a for a, b in zip(before, after, strict=True) if a != b] == [before[head]]
    assert (
        tl.upsert(
            entry(
                2,
                "a long message that wraps over lines",
                outgoing=True,
                state=MessageState.DELIVERED,
            )
        )
        == []
    )


def test_append_prepend_and_out_of_order() -> None:
    tl = timeline()
    tl.prepend([entry(5), entry(6)])
    assert tl.upsert(entry(7)) == [len(tl) - 1]  # appended: only the new line
    added = tl.prepend([entry(3), entry(4)])
    assert added == 2 and tl.first_local_id == 3
    assert tl.upsert(entry(1, ts=T0 - 2 * DAY)) is None  # older than shown: full relayout
    assert [e.local_id for e in tl.entries] == [1, 3, 4, 5, 6, 7]
    assert tl.prepend([entry(4), entry(5)]) == 0  # duplicates ignored


def test_narrow_width_long_name_and_huge_text() -> None:
    tl = Timeline("alice", "b" * 32, width=20, today=lambda: datetime.date(2024, 6, 4))
    tl.prepend([entry(1, "word " * 10)])
    assert all(cell_len(line.plain) <= 20 or line.head for line in tl.lines)
    narrow = len(tl.lines)
    assert tl.set_width(100) and not tl.set_width(100)
    assert len(tl.lines) == 2 < narrow  # separator + one line: re-wrapped for the width
    big = timeline()
    big.prepend([entry(1, "\n" * 100_000)])
    assert len(big.lines) <= DISPLAY_LINES + 3
    notice = " ".join(line.plain.strip() for line in big.lines[-2:])  # wrapped at this width
    assert notice.endswith("… 96,000 more characters: click (or Enter) to read all")


def test_file_offers_and_entry_lookup() -> None:
    tl = timeline(width=80)
    offer = entry(1, "report.pdf\x1b[2J", kind=pb.Message.FILE_OFFER)
    tl.prepend([offer])
    assert "bob offers report.pdf[2J (0 B)" in plain(tl)[1]
    assert tl.entry_at(1) == offer and tl.entry_at(0) is None and tl.entry_at(99) is None
    assert tl.lines[1].spans[-1][1] == "file"
    assert GUTTER == 9


def test_failed_lists_failed_outgoing_only() -> None:
    tl = timeline()
    failed = entry(1, outgoing=True, state=MessageState.FAILED)
    tl.prepend([failed, entry(2), entry(3, outgoing=True)])
    assert [e.local_id for e in tl.failed()] == [1]
