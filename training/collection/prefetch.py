"""Overlap reading and processing: a reader thread feeds a small pool, results come in order.

Parsing (pyarrow), hashing (numpy) and gunzipping (zlib) release the GIL, so while the consumer
works on batch k, batch k+1 is being read and batches k+1..k+workers are being transformed on
the other cores. `merge` runs several such pipelines at once (parallel Elasticsearch slices)
and hands their results over as they come.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


def prefetch(items: Iterator[T], transform: Callable[[T], R] | None = None,
             workers: int = 1) -> Iterator[R]:
    """Yield `transform(item)` for each item, in order, computed ahead in background threads.

    The items are drawn from `items` by one reader thread (so a generator is never entered
    from two threads); up to `workers` transforms run at once. An exception in the reader or a
    transform is re-raised here, after the results before it; closing this generator stops
    the threads and closes `items`.
    """
    transform = transform or (lambda item: item)  # type: ignore[assignment]
    handoff: queue.Queue = queue.Queue(maxsize=workers + 1)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prefetch-transform")

    def put(entry: object) -> bool:
        return _put(handoff, stop, entry)

    def read() -> None:
        try:
            for item in items:
                if not put(pool.submit(transform, item)):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
            return
        put(_DONE)

    reader = threading.Thread(target=read, name="prefetch-read", daemon=True)
    reader.start()
    try:
        while True:
            entry = handoff.get()
            if entry is _DONE:
                return
            if isinstance(entry, BaseException):
                raise entry
            future: Future = entry
            yield future.result()
    finally:
        stop.set()
        reader.join()
        pool.shutdown(wait=True, cancel_futures=True)
        _close(items)


def _put(handoff: queue.Queue, stop: threading.Event, entry: object) -> bool:
    """Hand `entry` over, waiting while the queue is full; False once the consumer stopped."""
    while not stop.is_set():
        try:
            handoff.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _close(items: Iterator) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


class _Failed:
    """An exception raised by one of the merged iterators, on its way to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def merge(iterators: Sequence[Iterator[T]]) -> Iterator[T]:
    """Yield the items of several iterators as they come, each drawn in a thread of its own.

    The items of one iterator keep their order; different iterators interleave. An exception in
    one is re-raised here (after the items it yielded before it); closing this generator, or
    that exception, stops every thread and closes every iterator, each in the thread that drew
    it. A single iterator is drawn directly, without a thread: the sequential case costs nothing.
    """
    if len(iterators) <= 1:
        for items in iterators:
            try:
                yield from items
            finally:
                _close(items)
        return
    handoff: queue.Queue = queue.Queue(maxsize=len(iterators))
    stop = threading.Event()

    def put(entry: object) -> bool:
        return _put(handoff, stop, entry)

    def drain(items: Iterator[T]) -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failed(exc))
            return
        finally:
            _close(items)
        put(_DONE)

    threads = [threading.Thread(target=drain, args=(items,), name=f"merge-{i}", daemon=True)
               for i, items in enumerate(iterators)]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            entry = handoff.get()
            if entry is _DONE:
                running -= 1
            elif isinstance(entry, _Failed):
                raise entry.exc
            else:
                yield entry
    finally:
        stop.set()
        for thread in threads:
            thread.join()
