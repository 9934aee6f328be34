"""Tests for training.collection.prefetch: order, errors from the source or a transform reach the consumer
after the items before them, and closing early stops the threads and closes the source."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from training.collection.prefetch import prefetch
from training.errors import SourceError

DEADLINE_S = 10.0  # only a guard against a hang; a working prefetch finishes at once


class Source:
    """An iterator over 0, 1, 2, ... (forever, or up to `fail_at`, where it raises), recording
    how many items were drawn and whether its `finally` ran."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.drawn = 0
        self.closed = threading.Event()

    def __call__(self) -> Iterator[int]:
        try:
            while True:
                if self.drawn == self.fail_at:
                    raise SourceError(f"conn.log: corrupt gzip data at record {self.drawn}")
                self.drawn += 1
                yield self.drawn - 1
        finally:
            self.closed.set()


def prefetch_threads(exclude: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in exclude and t.name.startswith("prefetch")]


def assert_threads_end(threads: list[threading.Thread]) -> None:
    """Wait (bounded) for `threads` to end, then check that none is still listed."""
    deadline = time.monotonic() + DEADLINE_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    still_running = [t.name for t in threading.enumerate() if t in threads]
    assert still_running == []


def test_order_is_preserved() -> None:
    assert list(prefetch(iter(range(200)))) == list(range(200))
    assert list(prefetch(iter(range(50)), lambda x: x * x, workers=3)) == [
        x * x for x in range(50)]
    assert list(prefetch(iter([]))) == []


def test_order_is_preserved_when_later_items_finish_first() -> None:
    released = threading.Event()

    def transform(item: int) -> tuple[int, bool]:
        if item == 2:
            released.set()
        # Item 0 finishes only after item 2 has run.
        return item, released.wait(DEADLINE_S) if item == 0 else True

    got = list(prefetch(iter(range(6)), transform, workers=3))
    assert got == [(0, True), (1, True), (2, True), (3, True), (4, True), (5, True)]


def test_source_error_reaches_the_consumer_after_the_items_before_it() -> None:
    source = Source(fail_at=3)
    before = set(threading.enumerate())
    got = []
    with pytest.raises(SourceError) as excinfo:
        for item in prefetch(source(), workers=2):
            got.append(item)
    assert got == [0, 1, 2]
    assert type(excinfo.value) is SourceError
    assert str(excinfo.value) == "conn.log: corrupt gzip data at record 3"
    assert_threads_end(prefetch_threads(before))


def test_source_error_on_the_first_item() -> None:
    with pytest.raises(SourceError, match="at record 0$"):
        next(prefetch(Source(fail_at=0)()))


def test_transform_error_reaches_the_consumer_and_closes_the_source() -> None:
    source = Source()

    def transform(item: int) -> int:
        if item == 3:
            raise ValueError(f"cannot canonicalize batch {item}")
        return 10 * item

    before = set(threading.enumerate())
    got = []
    with pytest.raises(ValueError) as excinfo:
        for item in prefetch(source(), transform, workers=2):
            got.append(item)
    assert got == [0, 10, 20]
    assert type(excinfo.value) is ValueError
    assert str(excinfo.value) == "cannot canonicalize batch 3"
    assert source.closed.is_set()
    assert_threads_end(prefetch_threads(before))


@pytest.mark.parametrize("workers", [1, 3])
def test_closing_early_stops_the_threads_and_closes_the_source(workers: int) -> None:
    source = Source()  # endless: only closing can stop it
    before = set(threading.enumerate())
    consumer = prefetch(source(), workers=workers)
    assert [next(consumer), next(consumer)] == [0, 1]
    threads = prefetch_threads(before)
    assert "prefetch-read" in {t.name for t in threads}
    assert not source.closed.is_set()

    consumer.close()
    assert_threads_end(threads)
    assert source.closed.is_set()  # the source generator's `finally` ran
    assert source.drawn < 2 + 2 * (workers + 2)  # read ahead a bounded amount, then stopped


def test_threads_end_when_the_source_is_exhausted() -> None:
    before = set(threading.enumerate())
    assert list(prefetch(iter(range(5)), workers=2)) == [0, 1, 2, 3, 4]
    assert_threads_end(prefetch_threads(before))
