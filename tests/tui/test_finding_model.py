"""Finding things, without an app: the "new messages" line in the timeline, where the first
unread message is, the search highlight, the LIKE pattern and the store's queries."""

from __future__ import annotations

from protocol import chat_pb2 as pb
from tests.tui.test_timeline import entry, plain, timeline
from tui.client.store import LocalStore
from tui.search import HIT, HistorySearch, highlight, hit_ranges, like_pattern, snippet
from tui.terminal import to_ascii
from tui.timeline import count_back_unread


def test_the_marker_line_goes_before_its_message_and_survives_rewrapping() -> None:
    tl = timeline()
    tl.prepend([entry(1, "old"), entry(2, "mine", outgoing=True), entry(3, "new one")])
    assert tl.marker_line() is None
    tl.set_marker(3)
    lines = plain(tl)
    index = tl.marker_line()
    assert index is not None
    assert "new messages" in lines[index] and lines[index].startswith("─")
    assert lines[index + 1].endswith("bob: new one")
    assert tl.head_line(3) == index + 1
    assert tl.entry_at(index) is None  # the marker belongs to no message
    # Re-wrapping and appending keep it in place; ASCII terminals get dashes.
    tl.set_width(30)
    tl.upsert(entry(4, "later"))
    lines = plain(tl)
    index = tl.marker_line()
    assert index is not None and lines[index + 1].endswith("bob: new one")
    assert to_ascii(lines[index]).startswith("--") and "new messages" in to_ascii(lines[index])
    tl.set_marker(None)
    assert not any("new messages" in line for line in plain(tl))


def test_a_marker_on_a_message_not_loaded_shows_when_its_page_comes() -> None:
    tl = timeline()
    tl.prepend([entry(10), entry(11)])
    tl.set_marker(5)
    assert tl.marker_line() is None
    tl.prepend([entry(4), entry(5), entry(6)])
    index = tl.marker_line()
    assert index is not None and tl.head_line(5) == index + 1


def test_count_back_unread_counts_incoming_chat_messages_only() -> None:
    page = [
        entry(1, "a"),
        entry(2, "b"),
        entry(3, "me", outgoing=True),
        entry(4, "stroke", kind=pb.Message.GRAPHICS),
        entry(5, "c"),
    ]
    found, left = count_back_unread(page, 2)
    assert found is not None and found.local_id == 2 and left == 0
    found, left = count_back_unread(page, 5)  # not enough here: 2 still to count before
    assert found is None and left == 2


def test_highlight_splits_spans_case_insensitively_and_keeps_text_literal() -> None:
    spans = [("12:00", "time"), ("bob", "peer"), ("A [b]X[/b] and [B]x[/B]", "text")]
    out = highlight(spans, "[b]x[/b]", frozenset({"time", "peer"}))
    assert "".join(text for text, _ in out) == "12:00bobA [b]X[/b] and [B]x[/B]"
    assert [text for text, key in out if key == HIT] == ["[b]X[/b]", "[B]x[/B]"]
    assert highlight(spans, "", frozenset()) == spans
    assert hit_ranges("100%_ and 100%", "%_") == [(3, 5)]


def test_snippet_is_one_printable_line_around_the_hit() -> None:
    text = "start " + "word " * 100 + "\x1b[31mNEEDLE\nafter"
    spans = snippet(text, "needle", limit=60)
    joined = "".join(t for t, _ in spans)
    assert "\n" not in joined and "\x1b" not in joined
    assert joined.startswith("…")
    assert [t for t, key in spans if key == HIT] == ["NEEDLE"]


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"


def _incoming(store: LocalStore, peer: int, n: int, text: str) -> None:
    message = pb.Message(uid=peer, type=pb.Message.MESSAGE, msg=text, id=n, seq=n, timestamp=n)
    store.add_incoming(message)


def test_store_search_is_literal_case_insensitive_bounded_and_scoped() -> None:
    store = LocalStore.open(":memory:")
    _incoming(store, 2, 1, "100% sure")
    _incoming(store, 2, 2, "100 percent")
    _incoming(store, 2, 3, "snake_case")
    _incoming(store, 2, 4, "snakeXcase")
    _incoming(store, 3, 5, "Hello from carol")
    _incoming(store, 3, 6, "back\\slash")
    search = HistorySearch(store)
    assert [h.text for h in search.run("%").hits] == ["100% sure"]
    assert [h.text for h in search.run("e_c").hits] == ["snake_case"]
    assert [h.text for h in search.run("k\\s").hits] == ["back\\slash"]
    assert [h.text for h in search.run("HELLO").hits] == ["Hello from carol"]
    assert search.run("hello", peer=2).hits == ()
    assert [h.local_id for h in search.run("100").hits] == [2, 1]  # newest first
    for n in range(7, 7 + 250):
        _incoming(store, 2, n, f"flood {n}")
    result = search.run("flood")
    assert len(result.hits) == 200 and result.more
    assert result.hits[0].text == "flood 256"


def test_store_pages_forward_after_a_local_id() -> None:
    store = LocalStore.open(":memory:")
    for n in range(1, 11):
        _incoming(store, 2, n, f"m{n}")
    forward = store.page(2, after=4, limit=3)
    assert [e.text for e in forward] == ["m5", "m6", "m7"]
    assert [e.text for e in store.page(2, before=4, limit=2)] == ["m2", "m3"]
