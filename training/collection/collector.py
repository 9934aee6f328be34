"""Collecting events from every configured source onto the canonical schema.

The work happens on Arrow batches (`DataCollector.batches`); `collect()` yielding one
`CollectedEvent` at a time, `collect_table()` and `collect_to()` are built on it.

Per batch: parse, map onto the canonical schema (bad records quarantined with file, line,
field and reason), keep events inside [start_date, end_date), drop events whose id was seen
before (in this batch, in an earlier source, or in an earlier run of the same output_dir), then
hand the batch over. Each source stream (a file) keeps a read position; with an `output_dir`,
positions, seen ids, quarantined records and counters are checkpointed, so an interrupted or
repeated collection resumes after the last delivered event and delivers each event once.
`collect_to()` writes event parts and checkpoints in one sequence, so even a SIGKILL loses or
duplicates nothing. Plain `collect()` checkpoints a batch once the caller asks for the next one.

Dedup keys are 64-bit hashes of event ids, keyed with a secret drawn per output_dir so crafted
events cannot be made to collide with others on purpose. Two distinct ids collide with
probability about n^2 / 2^65 (1e-5 for 20 million events).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.artifacts.atomic import atomic_write
from training.collection.canonical import FIELD_NAMES, IP_TEXT, Canonical, canonicalize
from training.collection.event_files import (
    CollectedEvent, source_records, table_to_events, write_events,
)
from training.collection.prefetch import merge, prefetch
from training.collection.resume_state import CollectionState
from training.collection.schema import labeled, traffic_times
from training.collection.schema_union import concat_tables
from training.collection.skipped_files import note_skipped
from training.collection.time_range import check_run
from training.errors import ConfigError, SourceError
from training.kernels.hashing import hash_array
from training.console.progress import progress
from training.sources import DataSource, DataSourceType, Source, create_source
from training.sources.base import START, RawBatch, Reject

logger = logging.getLogger(__name__)

__all__ = ["CollectedEvent", "DataCollector", "DataSource", "DataSourceType"]

_WORKERS = max(1, min(4, os.cpu_count() or 1))
CHECKPOINT_SECONDS = 5.0  # collect_to's commits, unless checkpoint_every is given
PART_ROWS = 1 << 18  # events held in memory before they are written as a part
_COUNTERS = ("rows", "events", "quarantined", "outside_time_range", "duplicates", "batches",
             "checkpoints", "committed_batches", "labeled_duplicates")


@dataclass
class _Step:
    """One delivered batch and the bookkeeping to commit once it has been consumed."""

    table: pa.Table
    source: str
    stream: str
    position: dict
    rejects: list[Reject]
    counts: dict[str, int] = field(default_factory=dict)
    raw: RawBatch | None = None  # the batch as read, and the row of each delivered event in it
    raw_rows: np.ndarray | None = None


def _canonical_pair(reader: Source, raw) -> tuple:
    return raw, canonicalize(raw, reader, require_time=True)


class DataCollector:
    """Collects events from several sources, deduplicated, checkpointed, quarantining bad records.

    Args:
        sources: what to read.
        output_dir: where checkpoints, quarantined records and (with `collect_to`) events go.
            None keeps everything in memory: nothing is resumed and quarantined records are in
            `quarantined`.
        checkpoint_enabled: persist and resume positions and seen ids in `output_dir`.
        deduplicate: drop events whose id was already delivered.
        checkpoint_every: commit after this many batches; None (the default): `batches` and
            `collect` after every batch, `collect_to` every `CHECKPOINT_SECONDS`.
        progress: False shows no progress, True a bar; None follows `training.console.progress`
            (a bar on a terminal, a few log lines elsewhere).
    """

    def __init__(
        self,
        sources: Sequence[DataSource] | DataSource,
        output_dir: str | Path | None = None,
        checkpoint_enabled: bool = True,
        deduplicate: bool = True,
        checkpoint_every: int | None = None,
        progress: bool | None = None,
    ) -> None:
        sources = [sources] if isinstance(sources, DataSource) else list(sources)  # one: a list
        if not sources:
            raise ConfigError("sources must name at least one DataSource, got none")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"source names must be unique (they key checkpoints), got {names}")
        if checkpoint_every is not None and (not isinstance(checkpoint_every, int)
                                             or checkpoint_every < 1):
            raise ConfigError(f"checkpoint_every must be an integer >= 1, got {checkpoint_every!r}")
        self.sources = sources
        self.readers: list[Source] = [create_source(s) for s in self.sources]
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.checkpoint_enabled = checkpoint_enabled
        self.deduplicate, self.checkpoint_every, self.progress = (deduplicate, checkpoint_every,
                                                                  progress)
        self.quarantined: list[Reject] = []
        self._stats: dict = {}
        self._timestamps: dict[str, list[int]] = {}  # stream -> [traffic events, untimed ones]
        self.labeled_duplicates: list[pa.Array] = []  # event ids of dropped copies with a label

    # -- batch path -------------------------------------------------------------------------

    def batches(self, start_date: datetime | str | None = None,
                end_date: datetime | str | None = None, max_events: int | None = None,
                resume_from_checkpoint: bool = True) -> Iterator[pa.Table]:
        """Yield canonical event tables; a batch is committed when the next one is requested."""
        for step in self._delivered(start_date, end_date, max_events, resume_from_checkpoint):
            yield step.table

    def _delivered(self, start_date, end_date, max_events, resume: bool) -> Iterator[_Step]:
        start, end = check_run(start_date, end_date, max_events)
        state = self._open(resume, start, end, delivers=True)
        with self._committing(state) as accept:
            for step in self._steps(state, start, end, max_events):
                yield step
                accept(step)

    def collect_table(self, start_date=None, end_date=None, max_events=None,
                      resume_from_checkpoint: bool = True) -> pa.Table:
        """Every collected event in one table (extra columns unified across sources)."""
        return concat_tables(list(self.batches(start_date, end_date, max_events,
                                               resume_from_checkpoint)))

    def collect(self, start_date=None, end_date=None, max_events=None,
                resume_from_checkpoint: bool = True) -> Iterator[CollectedEvent]:
        """Yield `CollectedEvent`s (the original per-event API), built from the batch path.
        Naive `start_date` and `end_date` are UTC, as the original took them; each event's
        `timestamp` is a naive UTC datetime and its `raw_data` the source record as read."""
        for step in self._delivered(start_date, end_date, max_events, resume_from_checkpoint):
            yield from table_to_events(step.table, source_records(step.raw, step.raw_rows))

    def collect_to(self, start_date=None, end_date=None, max_events=None,
                   resume_from_checkpoint: bool = True) -> Path:
        """Write events as Parquet parts under `output_dir/events/`, crash-safe.

        The batches accepted since the last part become one part (written atomically) when
        they reach `PART_ROWS` events or a checkpoint is due: every `checkpoint_every` batches,
        by default every `CHECKPOINT_SECONDS` (a folder of small hourly logs spent most of its
        time syncing a part and a checkpoint per file). Parts beyond the last checkpoint are
        removed on resume.
        """
        if self.output_dir is None or not self.checkpoint_enabled:
            raise ConfigError("collect_to needs an output_dir and checkpoint_enabled=True")
        start, end = check_run(start_date, end_date, max_events)
        state = self._open(resume_from_checkpoint, start, end)
        held: list[pa.Table] = []  # events accepted since the last part

        def write_part() -> None:
            if held:
                with atomic_write(state.part_path(state.parts), private=True) as handle:
                    pq.write_table(concat_tables(held), handle)
                state.parts += 1
                held.clear()

        with self._committing(state, write_part, CHECKPOINT_SECONDS) as accept:
            for step in self._steps(state, start, end, max_events):
                if step.table.num_rows:
                    held.append(step.table)
                    if sum(t.num_rows for t in held) >= PART_ROWS:
                        write_part()
                accept(step)
        return self.output_dir / "events"

    def save_to_file(self, events: Iterable[CollectedEvent] | pa.Table, filename: str | Path) -> Path:
        """Write events (an iterable of `CollectedEvent` or a table) to .jsonl, .json or
        .parquet (optionally .gz for the JSON formats), atomically. A relative filename goes
        under `output_dir` when there is one."""
        path = Path(filename)
        if not path.is_absolute() and self.output_dir is not None:
            path = self.output_dir / path
        return write_events(events, path, metadata={"sources": [s.name for s in self.sources]})

    def get_stats(self) -> dict:
        """Counters of the collection (across resumed runs when checkpointed)."""
        return orjson.loads(orjson.dumps(self._stats))

    def untimed_streams(self) -> dict[str, int]:
        """Streams (files) of the last run without a timestamp in any event: stream -> events."""
        return {k: n for k, (n, missing) in self._timestamps.items() if n and missing == n}

    # -- internals ----------------------------------------------------------------------------

    def _open(self, resume: bool, start: datetime | None, end: datetime | None,
              delivers: bool = False) -> CollectionState:
        directory = self.output_dir if self.checkpoint_enabled else None
        state = CollectionState.load(directory, resume, self._recipe(start, end), delivers)
        self._stats = state.stats
        self._timestamps = {}
        self._stats.update({counter: self._stats.get(counter, 0) for counter in _COUNTERS})
        self._stats.setdefault("labels", {"-1": 0, "0": 0, "1": 0})
        self._started = time.perf_counter()
        if directory is None:
            self.quarantined = []
        return state

    def _recipe(self, start: datetime | None, end: datetime | None) -> dict:
        """What decides which events a collection delivers: a resumed one must match it.
        (Block sizes, timeouts and credentials only change how, not what: see
        `Source.how_params`; credentials are never stored.)"""
        return orjson.loads(orjson.dumps({
            "sources": [{
                "name": s.name, "type": s.source_type.value, "time_field": s.time_field,
                "params": reader.recipe_params(),
                "field_map": s.field_map, "label_map": s.label_map.overrides,
                "default_label": s.default_label, "query_filter": s.query_filter,
            } for s, reader in zip(self.sources, self.readers)],
            "start_date": start, "end_date": end, "deduplicate": self.deduplicate,
            "ip_text": IP_TEXT, "field_names": FIELD_NAMES}, default=str))

    def _steps(self, state: CollectionState, start, end, max_events) -> Iterator[_Step]:
        remaining = max_events
        bar = progress("collecting", max_events, "events", enabled=self.progress)
        try:
            for reader in self.readers:
                reader.begin(start, end)
                streams = reader.streams()
                # Parallel streams (Elasticsearch slices) are read at once and interleaved;
                # files are read one after another, each a group of one.
                groups = [streams] if reader.concurrent_streams else [[s] for s in streams]
                for group in groups:
                    positions = {s: state.position(reader.name, s) or START for s in group}
                    pipelines = [self._pipeline(reader, s, positions[s], len(group)) for s in group]
                    with closing(merge(pipelines)) as batches:
                        for raw, canonical in batches:
                            step = self._filter(state, reader.name, raw, canonical,
                                                positions[raw.stream], start, end, remaining)
                            positions[raw.stream] = step.position
                            if remaining is not None:
                                remaining -= step.table.num_rows
                            bar.update(step.table.num_rows)
                            yield step
                            if remaining == 0:
                                return  # closing the merge stops every stream's threads
                note_skipped(reader, streams, self._stats)
        except BaseException:  # an error, an interrupt, a consumer that stopped: no "done" line
            bar.close(failed=True)
            raise
        finally:
            bar.close()
            for reader in self.readers:
                reader.close()

    @staticmethod
    def _pipeline(reader: Source, stream: str, position: dict, parallel: int) -> Iterator[tuple]:
        """One stream's (raw, canonical) batches, read and mapped ahead in background threads."""
        return prefetch(reader.read(stream, position), partial(_canonical_pair, reader),
                        workers=max(1, _WORKERS // parallel))

    def _filter(self, state: CollectionState, source: str, raw, canonical: Canonical,
                position: dict, start, end, remaining: int | None) -> _Step:
        """Skip rows already delivered, apply the time range and dedup; cut at max_events."""
        table, records, rejects = canonical.table, canonical.records, canonical.rejects
        rows = canonical.source_rows
        skip_through = position.get("skip_through", -1)
        if skip_through >= 0:
            fresh = records > skip_through
            table, records = table.filter(pa.array(fresh)), records[fresh]
            rows = None if rows is None else rows[fresh]
            rejects = [r for r in rejects if r.record > skip_through]
        n = table.num_rows
        inside = np.ones(n, dtype=bool)
        if start or end:
            times = table["timestamp"]
            after = pc.greater_equal(times, pa.scalar(start, times.type)) if start else None
            before = pc.less(times, pa.scalar(end, times.type)) if end else None
            mask = pc.and_kleene(after, before) if after is not None and before is not None else (
                after if after is not None else before)
            inside = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        new = np.ones(n, dtype=bool)
        keys = hash_array(table["event_id"], key=state.secret) if self.deduplicate else None
        if keys is not None:
            new[inside] = state.seen.first_new(keys[inside])
        keep = inside & new
        within = np.ones(n, dtype=bool)
        end_position = raw.end
        if remaining is not None and keep.sum() > remaining:
            last = np.flatnonzero(keep)[remaining - 1]
            cut = int(records[last])
            within = records <= cut
            keep &= within
            rejects = [r for r in rejects if r.record <= cut]
            end_position = (raw.position_after(cut) if raw.position_after is not None
                            else {**raw.start, "skip_through": cut})
        if keys is not None:
            state.remember(keys[keep])
        lost = within & inside & ~new & labeled(table)  # the copy kept may lack its label
        if lost.any():
            self.labeled_duplicates.append(table["event_id"].filter(lost).combine_chunks())
        counts = {
            "rows": int(within.sum()) + len(rejects),
            "events": int(keep.sum()),
            "quarantined": len(rejects),
            "outside_time_range": int((within & ~inside).sum()),
            "duplicates": int((within & inside & ~new).sum()),
            "labeled_duplicates": int(lost.sum()),
        }
        delivered = table if keep.all() else table.filter(pa.array(keep))
        return _Step(delivered, source, raw.stream, end_position, rejects, counts,
                     raw, None if rows is None else rows[keep])

    @contextmanager
    def _committing(self, state: CollectionState, before: Callable[[], None] = lambda: None,
                    seconds: float = 0.0) -> Iterator[Callable[[_Step], None]]:
        """Accept consumed batches, committing every `checkpoint_every` (None: once `seconds`
        have passed since the last commit), at a clean end and before a `SourceError` (a bad
        file) goes up; `before` runs before each commit. After another exception (or a
        consumer that stops early) the batches accepted since the last commit are not
        committed: they will be delivered again, never lost. A run that fails before its
        first commit leaves no folder it made (`CollectionState.held`).
        """
        pending, last = 0, time.monotonic()

        def accept(step: _Step) -> None:
            nonlocal pending, last
            self._accept(state, step)
            pending += 1
            if (pending >= self.checkpoint_every if self.checkpoint_every is not None
                    else time.monotonic() - last >= seconds):
                self._commit(state, before)
                pending, last = 0, time.monotonic()

        with state.held():
            try:
                yield accept
            except SourceError:  # a bad file: what was read before it is kept
                if pending:
                    self._commit(state, before)
                raise
            self._commit(state, before)

    def _commit(self, state: CollectionState, before: Callable[[], None]) -> None:
        before()
        self._stats["checkpoints"] = self._stats.get("checkpoints", 0) + 1
        self._stats["committed_batches"] = self._stats.get("batches", 0)
        state.commit()
        self._write_progress(state)

    def _write_progress(self, state: CollectionState) -> None:
        stats = self._stats
        state.write_progress({key: stats.get(key, 0) for key in
                              ("events", "batches", "checkpoints", "committed_batches")}
                             | {"elapsed_s": round(time.perf_counter() - self._started, 3)})

    def _accept(self, state: CollectionState, step: _Step) -> None:
        """Record a consumed batch: position, quarantine, counters, progress."""
        state.positions.setdefault(step.source, {})[step.stream] = step.position
        if step.rejects:
            self._quarantine(state, step.source, step.rejects)
        stats = self._stats
        per_source = stats.setdefault("sources", {}).setdefault(step.source, {})
        for key, value in step.counts.items():
            stats[key] = stats.get(key, 0) + value
            per_source[key] = per_source.get(key, 0) + value
        seen = self._timestamps.setdefault(step.stream, [0, 0])
        seen[:] = np.add(seen, traffic_times(step.table)).tolist()
        if step.table.num_rows:
            values, counts = np.unique(step.table["is_threat"].to_numpy(zero_copy_only=False),
                                       return_counts=True)
            for value, count in zip(values, counts):
                stats["labels"][str(int(value))] += int(count)
        for reject in step.rejects:
            reasons = stats.setdefault("quarantine_reasons", {})
            key = reject.reason.split(" = ")[0] if reject.field else reject.reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        stats["batches"] = stats.get("batches", 0) + 1
        self._write_progress(state)

    def _quarantine(self, state: CollectionState, source: str, rejects: list[Reject]) -> None:
        if state.directory is None:
            return self.quarantined.extend(rejects)
        state.append_quarantine(b"".join(orjson.dumps({"source": source, **r.to_dict()}) + b"\n"
                                         for r in rejects))
