"""Overlap reading and processing: a reader thread feeds a small pool, results come in order.

Parsing (pyarrow), hashing (numpy) and gunzipping (zlib) release the GIL, so while the consumer
works on batch k, batch k+1 is being read and batches k+1..k+workers are being transformed on
the other cores.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
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
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

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
        close = getattr(items, "close", None)
        if close is not None:
            close()
