"""Progress of long work: a bar on a terminal, a few log lines elsewhere, nothing when off.

    with progress("collecting", unit="events") as bar:
        for batch in batches:
            bar.update(len(batch))

Where it shows is one process-wide setting (`set_mode`), chosen by the command line:

* "auto" (the default): a tqdm bar on stderr when stderr is a terminal; otherwise lines
  logged by the `training.console.progress` logger at INFO: one every `LINE_INTERVAL_S` seconds of
  work at most, and one when the work is done ("collecting: 10,000 events in 2.1 s"), so a
  cron log or CI log shows progress without a line per batch; while one unit takes long (a
  tuning trial of minutes), a line every `HEARTBEAT_S` says how long since the last one, and
  a bar's clock keeps running, so that a person can tell slow work from a hung process;
* "bar" and "lines": one of them whatever stderr is;
* "off": nothing (`maximus-train --quiet`, and the inner work of tuning trials).

Library code only reports progress; whether the lines reach a person is up to the
application's logging (the command line shows them on stderr).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from tqdm import tqdm

from training.errors import ConfigError

logger = logging.getLogger(__name__)

MODES = ("auto", "bar", "lines", "off")
LINE_INTERVAL_S = 10.0
HEARTBEAT_S = 60.0  # "lines": the longest silence while work goes on
_mode = "auto"


def set_mode(mode: str) -> str:
    """Set where progress shows (see the module docstring); returns the previous mode."""
    global _mode
    if mode not in MODES:
        raise ConfigError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
    previous, _mode = _mode, mode
    return previous


def get_mode() -> str:
    return _mode


@contextmanager
def suppressed() -> Iterator[None]:
    """No progress inside the block (work nested in work that shows its own progress)."""
    previous = set_mode("off")
    try:
        yield
    finally:
        set_mode(previous)


def _resolve(enabled: bool | None) -> str:
    if enabled is False or _mode == "off":
        return "off"
    if enabled is True and _mode == "auto":
        return "bar"
    if _mode == "auto":
        return "bar" if _isatty() else "lines"
    return _mode


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def _isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class Progress:
    """One piece of long work: `update(n)` as it advances, `close()` (or the `with` block's
    end) when it is done.

    Args:
        desc: what is being done, e.g. "collecting" or "training layer1_vae".
        total: the units expected, when known.
        unit: what is counted ("events", "epochs", "trials").
        initial: units already done (a resumed run).
        enabled: False never shows; True shows a bar even when stderr is not a terminal
            (unless the mode is "off" or "lines"); None follows the mode.
        interval_s: in "lines" mode, the least time between two lines before the last.
        heartbeat_s: in "lines" mode, the longest time without a line while the work goes on.
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", *,
                 initial: int = 0, enabled: bool | None = None,
                 interval_s: float = LINE_INTERVAL_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.interval_s, self.heartbeat_s = interval_s, heartbeat_s
        self.n = initial
        self.kind = _resolve(enabled)
        self.postfix: dict[str, Any] = {}
        self._started = self._last_line = self._last_update = time.monotonic()
        self._initial = initial
        self._bar = None
        if self.kind == "bar":
            width = _terminal_width()  # a terminal of unknown size would get an empty bar
            self._bar = tqdm(desc=desc, total=total, unit=f" {unit}", initial=initial,
                             file=sys.stderr, dynamic_ncols=width > 0,
                             ncols=None if width > 0 else 100)
        # update, close and the heartbeat thread's beat, one at a time: no line after the
        # closing one, no bar drawn again after it closed.
        self._lock = threading.Lock()
        self._closed = threading.Event()
        if self.kind != "off":  # a weak reference: a Progress dropped unclosed ends its thread
            threading.Thread(target=_heartbeat, args=(weakref.ref(self), self._closed),
                             name=f"progress: {desc}", daemon=True).start()

    def update(self, n: int = 1, **postfix: Any) -> None:
        """`n` more units done; `postfix` values (e.g. loss=0.1) are shown beside the count."""
        with self._lock:
            self.n += n
            if n:  # update(0), a poll of workers' progress, is no progress
                self._last_update = time.monotonic()
            if postfix:
                self.postfix.update(postfix)
            if self._bar is not None:
                if postfix:
                    self._bar.set_postfix(self.postfix, refresh=False)
                self._bar.update(n)
            elif self.kind == "lines" and time.monotonic() - self._last_line >= self.interval_s:
                self._last_line = time.monotonic()
                logger.info("%s", self._line(done=False))

    def replace_postfix(self, **postfix: Any) -> None:
        """Show `postfix` in place of the values given so far (e.g. the final figures)."""
        with self._lock:
            self.postfix = dict(postfix)
            if self._bar is not None:
                self._bar.set_postfix(self.postfix, refresh=False)

    def close(self, failed: bool = False) -> None:
        """End the bar, or log the closing line (none when the work `failed`)."""
        with self._lock:
            if self.kind == "off":
                return
            self._closed.set()
            if self._bar is not None:
                self._bar.close()
            elif not failed:
                logger.info("%s", self._line(done=True))
            self.kind = "off"

    def beat(self) -> None:
        """A bar's clock refreshed, or after `heartbeat_s` of silence a line saying so."""
        with self._lock:
            if not self._closed.is_set():
                self._beat()

    def _beat(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
        elif time.monotonic() - self._last_line >= self.heartbeat_s:
            self._last_line = time.monotonic()
            quiet = _duration(time.monotonic() - self._last_update)
            logger.info("%s; still working, %s", self._line(done=False),
                        f"{quiet} since the count last moved" if self.n > self._initial
                        else f"{quiet} since it started")

    def _line(self, done: bool) -> str:
        seconds = time.monotonic() - self._started
        count = f"{self.n:,}" + (f"/{self.total:,}" if self.total is not None else "")
        rate = (self.n - self._initial) / seconds if seconds > 0 else 0.0
        extra = "".join(f", {k} {_fmt(v)}" for k, v in self.postfix.items()  # figures only
                        if isinstance(v, (int, float)))
        if done:
            return f"{self.desc}: {count} {self.unit} in {seconds:.1f} s{extra}"
        return f"{self.desc}: {count} {self.unit} ({rate:,.1f} {self.unit}/s){extra}"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(failed=kind is not None)


def progress(desc: str, total: int | None = None, unit: str = "it", *, initial: int = 0,
             enabled: bool | None = None) -> Progress:
    """A `Progress` (see its arguments)."""
    return Progress(desc, total, unit, initial=initial, enabled=enabled)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _heartbeat(ref: weakref.ref[Progress], closed: threading.Event) -> None:
    """`Progress.beat` every second until the progress is closed or gone."""
    while not closed.wait(1.0):
        bar = ref()
        if bar is None or closed.is_set():
            return
        bar.beat()
        del bar


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
