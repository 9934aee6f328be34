"""Window layers (2, 3) under live scoring: hold each window's events until it closes, then score.

    windows = WindowScorer(layer, AlertRows(...), state, grace_seconds=300)
    rejects, late = windows.add(events, read)          # each read of a poll
    for events, rows in windows.close(tail.lagging): ...  # the windows that closed, scored
    state.commit(..., [*outputs, windows.pending_file], windows=windows.saved())
    windows.committed()

A unit of a window layer (a layer-2 edge, a layer-3 window) is known once its window of event
time is over. Event time only moves forward through the events themselves: the watermark is
the latest event time read so far, and a window closes when the watermark has passed its end
by `grace_seconds`. Two bounds keep one source from closing windows another has not
delivered yet: while a file has a backlog (the poll left bytes unread in it), the watermark
goes no further than the latest time read from it; and it never passes this machine's clock
(an event a sensor stamped in the future is held until its time comes). When a live sensor
(its latest event was read within the grace of its timestamp) goes quiet, event time moves
on with the clock from there, so the windows of its last events close too; a log replayed
from the past only moves event time through its own events.

The grace is for sensors that log an event after its time: Zeek writes a connection when it
ends, stamped with its start, and a connection that went quiet only after
its TCP inactivity timeout (5 minutes by default), hence the default of 300 s. An event whose
window has already closed when it is read is late: it is quarantined with that reason and
counted, never scored into a window that has gone out.

The events of open windows live in memory and in `pending-<generation>.arrow` in the state
folder, appended each poll and checkpointed with the read positions (`FollowState`), so a
killed scorer resumes with them. When windows close, what is still open is written to the
next generation's file (and, for layer 3, the carried buckets to `history-<generation>.arrow`;
`training.layers.layer3_history`); the commit then names that generation and the old files
go. A run killed before that commit finds the old generation named, cut back to its committed
size, and reads its events again from the committed positions: every window is scored once.

The windows scored here are those the batch path builds from the same events (the tests
compare them), except that a window only holds events read before it closed. Which events
come too late can depend on how the reads were cut into polls, so a run that resumes after a
crash may close a window with other events than the killed run would have; each window is
still scored and alerted once (the state folder names a layout fingerprint of the model, so
resuming with a model of another window, entity or history is refused).
"""

from __future__ import annotations

import logging
import math
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import torch

from training.artifacts.atomic import atomic_write
from training.collection.schema_union import concat_tables
from training.errors import CheckpointError, ConfigError
from training.features.traffic import floor_div, timestamps_us
from training.layers.base import Layer
from training.scoring.alerts import AlertRows
from training.scoring.follow_state import AppendOnly, FollowState
from training.scoring.tail import Read

logger = logging.getLogger(__name__)

DEFAULT_GRACE = 300.0  # seconds: Zeek's TCP inactivity timeout
JUMP_US = 3600 * 1_000_000  # event time crossing a longer stretch with no events: a warning
_LENGTH = struct.Struct("<Q")  # each appended table: its byte length, then an Arrow IPC stream


def check_grace(seconds: float) -> None:
    """Raises ConfigError unless `seconds` is a finite number >= 0."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"the window grace (--window-grace) must be a finite number of "
                          f"seconds >= 0, got {seconds}")


class WindowScorer:
    """Scores the units of a window layer as their windows close (see the module docstring).

    Args:
        layer: a window layer (`Layer.window_seconds` is not None).
        rows: the model's row builder (featurized units -> scored rows).
        state: the follow state folder; what it saved about the windows is resumed.
        grace_seconds: how long past its end a window waits for late events (`check_grace`).

    Raises:
        ConfigError: a bad grace; CheckpointError: the state's windows were made by a model
        with another layout (the folder was used with another model).
    """

    def __init__(self, layer: Layer, rows: AlertRows, state: FollowState,
                 grace_seconds: float = DEFAULT_GRACE) -> None:
        check_grace(grace_seconds)
        self.layer, self.rows, self.folder = layer, rows, state.folder
        self.period_us = round(layer.window_seconds * 1_000_000)
        self.grace_us = round(grace_seconds * 1_000_000)
        self.layout = layer.data_spec.fingerprint
        saved = state.saved.get("windows", {})
        if saved and saved.get("layout") != self.layout:
            raise CheckpointError(f"{self.folder} holds the open windows of a model with "
                                  "another layout (window, entity or history): it was used "
                                  "with another model; give another --state folder")
        # A new window state takes a generation no file here has: the state file on disk may
        # still name one of them (a switch of model not yet committed: `follow_switch`).
        self.generation: int = saved.get("generation", _next_free(self.folder))
        self.first_open: int | None = saved.get("first_open")  # windows before it have closed
        self.watermark: int | None = saved.get("watermark")  # event time windows close by, us
        # file (dev:ino) -> latest event time read from it, and where it was read
        self.latest: dict[str, int] = saved.get("latest", {})
        self.paths: dict[str, str] = saved.get("paths", {})
        # (latest event time, clock) when a live sensor's latest event was read; None while
        # the events read are older than the grace (a log replayed, a backlog)
        since = saved.get("live_since")
        self.live_since: tuple[int, int] | None = None if since is None else tuple(since)
        self.warned_jump = False  # a jump of event time is warned of once a run
        self._polled: list[np.ndarray] = []  # event times held this poll, for the jump check
        self._obsolete: list[Path] = self._other_generations()
        self.pending_file = state.output(self._path("pending"), private=True)
        self.pending = list(_read_tables(self.pending_file.path))
        self.history = layer.carried_history()
        if self.history is not None and self._path("history").exists():
            self.history.load_table(ipc.open_file(self._path("history")).read_all())

    @property
    def held(self) -> int:
        """Events of open windows held."""
        return sum(t.num_rows for t in self.pending)

    def saved(self) -> dict[str, int | str | None]:
        """What the state file records about the windows."""
        return {"layout": self.layout, "generation": self.generation,
                "first_open": self.first_open, "watermark": self.watermark,
                "latest": self.latest, "paths": self.paths,
                "live_since": None if self.live_since is None else list(self.live_since)}

    # -- reading ------------------------------------------------------------------------------

    def add(self, events: pa.Table, read: Read, lines: np.ndarray) -> tuple[list[dict], int]:
        """Hold `events` (of one `read`, `lines` the line of its file each was read from)
        until their windows close. Returns the quarantine records of those that cannot be
        held (no time, or their window has closed), with their file and line, and how many of
        them are late."""
        micros, timed = timestamps_us(events)
        window = floor_div(micros, self.period_us)
        late = timed & (window < (self.first_open if self.first_open is not None else
                                  np.iinfo(np.int64).min))
        keep = timed & ~late
        if keep.any():
            key = f"{read.position.dev}:{read.position.ino}"
            self.latest[key] = max(self.latest.get(key, 0), int(micros[keep].max()))
            self._polled.append(micros[keep])
            self.paths[key] = read.position.path
            held = events.filter(pa.array(keep)) if not keep.all() else events
            self.pending.append(held)
            self.pending_file.append([_table_bytes(held)])
        return (self._rejects(events, read.position.path, lines, micros, ~timed, late),
                int(late.sum()))

    def _rejects(self, events: pa.Table, path: str, lines: np.ndarray, micros: np.ndarray,
                 untimed: np.ndarray, late: np.ndarray) -> list[dict]:
        ids = events["event_id"]
        out = [{"file": path, "line": int(lines[i]), "field": "timestamp",
                "event_id": ids[int(i)].as_py(),
                "reason": f"no timestamp: {self.layer.name} cannot place the event in a window"}
               for i in np.flatnonzero(untimed)]
        if late.any():
            closed = np.datetime64(self.first_open * self.period_us, "us")
            starts = np.datetime_as_string((floor_div(micros[late], self.period_us)
                                            * self.period_us).astype("datetime64[us]"))
            out += [{"file": path, "line": line, "field": "timestamp", "event_id": event_id,
                     "reason": f"late: its {self.layer.name} window (from {start}Z) had "
                               f"closed (windows before {closed}Z were scored; raise "
                               "--window-grace to wait longer)"}
                    for event_id, line, start in zip(ids.filter(pa.array(late)).to_pylist(),
                                                     lines[late].tolist(), starts.tolist())]
        return out

    # -- closing ------------------------------------------------------------------------------

    def _advance(self, lagging: set[tuple[int, int]]) -> None:
        """Move the watermark: the latest event time read, but no further than what a file
        with a backlog has reached (its unread lines are older than the other files' newest),
        nor past this machine's clock (a sensor stamping events in the future). A live sensor
        (its latest event was read within the grace of its time) that has gone quiet moves
        event time on with the clock, so its last windows close too."""
        if not self.latest:
            return
        now = time.time_ns() // 1000
        behind = [t for key, t in self.latest.items()
                  if tuple(map(int, key.split(":"))) in lagging]
        candidate = min(behind) if behind else max(self.latest.values())
        if lagging:  # a backlog is no live sensor
            self.live_since = None
        elif self.live_since is None or candidate > self.live_since[0]:  # new events
            self.live_since = (candidate, now) if now - candidate <= self.grace_us else None
        else:  # quiet: as much event time has passed as clock time
            candidate = self.live_since[0] + (now - self.live_since[1])
        candidate = min(candidate, now)
        polled, self._polled = self._polled, []
        if self.watermark is not None and not self.warned_jump and \
                self._gap(polled, candidate) > max(JUMP_US, 10 * self.period_us):
            self.warned_jump = True
            source = self.paths.get(max(self.latest, key=self.latest.get), "a followed file")
            logger.warning(
                "event time jumped from %sZ to %sZ (the latest event read from %s): the windows "
                "before it close now, and events stamped earlier than that minus the grace will "
                "be quarantined as late. If that file holds a wrong timestamp, stop the scorer, "
                "move the --state folder aside and start again without it",
                np.datetime64(self.watermark, "us"), np.datetime64(candidate, "us"), source)
        self.watermark = candidate if self.watermark is None else max(self.watermark, candidate)

    def _gap(self, polled: list[np.ndarray], candidate: int) -> int:
        """The longest stretch of event time the watermark would cross, from where it stands
        to `candidate`, with no event read this poll inside it. A backlog read in order (a
        cron --once after six hours) fills its span with events: small gaps. One event
        stamped hours ahead of the rest leaves a gap as long as its error: the jump worth a
        warning. Event time moved on by the clock (a quiet live sensor) is no jump."""
        times = np.concatenate(polled) if polled else np.empty(0, np.int64)
        times = np.sort(times[(times > self.watermark) & (times <= candidate)])
        if not times.size:
            return 0
        return int(np.diff(times, prepend=self.watermark).max())

    def close(self, lagging: set[tuple[int, int]]) -> list[tuple[pa.Table, pa.RecordBatch]]:
        """Score the windows the watermark has closed: [(their events, their scored rows)].

        Args:
            lagging: the files (dev, ino) the last poll left bytes unread in (`Tail.lagging`).
        """
        self._advance(lagging)
        if self.watermark is None:
            return []
        first_open = int(floor_div(np.int64(self.watermark - self.grace_us), self.period_us))
        if self.first_open is not None and first_open <= self.first_open:
            return []
        scored, keep = [], None
        if self.pending:
            table = concat_tables(self.pending)
            micros, _ = timestamps_us(table)  # every held event has a time
            done = pa.array(floor_div(micros, self.period_us) < first_open)
            closing, keep = table.filter(done), table.filter(pc.invert(done))
            if closing.num_rows:
                scored.append((closing, self._score(closing)))
        self.first_open = first_open
        if self.history is not None:
            self.history.forget_before(first_open)
        self._next_generation(keep)
        return scored

    def _score(self, events: pa.Table) -> pa.RecordBatch:
        units = self.layer.featurize(events)
        if self.history is not None:
            units = self.history.fill(units)
            self.history.add(units)
        with torch.inference_mode():
            scores = self.layer.score(self.rows.model, units)
        return self.rows.rows(units, scores, events)

    def _next_generation(self, keep: pa.Table | None) -> None:
        """Write what stays open (and the carried history) as the next generation; the old
        files go once the state names the new one (`committed`)."""
        self._obsolete += [self.pending_file.path, self._path("history")]
        self.pending_file.close()
        self.generation += 1
        path = self._path("pending")
        path.unlink(missing_ok=True)  # a crashed run's leftover of this generation
        self.pending_file = AppendOnly(path, None, private=True)
        self.pending = [keep] if keep is not None and keep.num_rows else []
        self.pending_file.append([_table_bytes(t) for t in self.pending])
        if self.history is not None:
            table = self.history.to_table()
            with atomic_write(self._path("history"), private=True) as handle:
                with ipc.new_file(handle, table.schema) as writer:
                    writer.write_table(table)

    def committed(self) -> None:
        """The state now names the current generation: remove the files of older ones."""
        for path in self._obsolete:
            path.unlink(missing_ok=True)
        self._obsolete = []

    def close_files(self) -> None:
        """Close the held-events file (the run is over; what it holds stays for the next)."""
        self.pending_file.close()

    def _path(self, kind: str) -> Path:
        return self.folder / f"{kind}-{self.generation}.arrow"

    def _other_generations(self) -> list[Path]:
        """The files of generations the state does not name: they go at the first commit."""
        mine = {self._path("pending").name, self._path("history").name}
        others = [p for p in _generation_files(self.folder) if p.name not in mine]
        for path in others:
            logger.info("removing %s at the first checkpoint: a generation of held events the "
                        "state does not name", path)
        return others


def _generation_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*-*.arrow") if p.name.split("-")[0] in ("pending", "history")]


def _next_free(folder: Path) -> int:
    """The generation after every one whose files are in `folder` (0 in an empty one)."""
    numbers = [int(p.stem.split("-", 1)[1]) for p in _generation_files(folder)
               if p.stem.split("-", 1)[1].isdigit()]
    return max(numbers, default=-1) + 1


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    return _LENGTH.pack(len(data)) + data


def held_events(path: Path, committed: int | None = None) -> int:
    """How many events a pending file holds in its first `committed` bytes (all of it: None)."""
    return sum(t.num_rows for t in _read_tables(path, committed))


def _read_tables(path: Path, committed: int | None = None) -> Iterator[pa.Table]:
    """The tables appended to a pending file, in its first `committed` bytes (None: all,
    the file being cut back to its committed size already)."""
    data = memoryview(path.read_bytes() if path.exists() else b"")[:committed]
    at = 0
    while at < len(data):
        if at + _LENGTH.size > len(data):
            raise CheckpointError(f"{path}: truncated at byte {at}; move the state folder "
                                  "aside to start over")
        (length,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        yield ipc.open_stream(pa.py_buffer(data[at:at + length])).read_all()
        at += length
