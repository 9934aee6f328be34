"""Tests for training.collection.prefetch.merge: parallel streams interleave with each one's order kept,
an error reaches the consumer after the items before it, and closing early (or an error)
stops every thread and closes every stream."""

from __future__ import annotations

import threading

import pytest

from training.collection.prefetch import merge, prefetch
from training.errors import SourceError
from training.tests.test_prefetch import Source, assert_threads_end


def _threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before
            and t.name.startswith(("merge", "prefetch"))]


def test_every_item_once_and_each_stream_in_order() -> None:
    streams = [iter(range(k * 1000, k * 1000 + 300 + 50 * k)) for k in range(4)]
    items = list(merge(streams))
    assert sorted(items) == sorted(i for k in range(4) for i in range(k * 1000, k * 1000 + 300 + 50 * k))
    for k in range(4):
        mine = [i for i in items if i // 1000 == k]
        assert mine == sorted(mine)


def test_one_stream_is_drawn_without_a_thread() -> None:
    before = set(threading.enumerate())
    seen_threads = []

    def stream():
        for i in range(3):
            seen_threads.append(threading.current_thread())
            yield i

    assert list(merge([stream()])) == [0, 1, 2]
    assert set(seen_threads) == {threading.main_thread()} and _threads(before) == []
    assert list(merge([])) == []


def test_an_error_in_one_stream_stops_all_and_closes_them() -> None:
    before = set(threading.enumerate())
    failing, endless = Source(fail_at=5), Source()
    received = []
    with pytest.raises(SourceError, match="corrupt gzip data at record 5"):
        for item in merge([prefetch(failing()), prefetch(endless())]):
            received.append(item)
    assert set(range(5)) <= set(received)  # the failing stream's items before its error
    assert failing.closed.is_set() and endless.closed.is_set()
    assert_threads_end(_threads(before))


def test_closing_early_stops_every_thread_and_closes_every_stream() -> None:
    before = set(threading.enumerate())
    sources = [Source() for _ in range(3)]
    merged = merge([prefetch(s(), lambda x: x, workers=2) for s in sources])
    assert next(merged) is not None
    merged.close()
    assert all(s.closed.is_set() for s in sources)
    assert_threads_end(_threads(before))
