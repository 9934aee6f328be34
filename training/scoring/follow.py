"""Live scoring: follow growing logs, score in micro-batches, append alerts as ECS documents.

    summary = follow_events(ModelRegistry(), "layer1_vae",
                            [DataSource("zeek", "zeek", {"path": "/opt/zeek/logs/current"})],
                            FollowOutputs(alerts="alerts.jsonl", state="score-state"))

Each poll (every `poll_seconds`) reads the whole lines appended to the followed files since the
last one (`training.scoring.tail`: rotation handled), scores them with the registered model or,
for `model_name` "fused", the registry's fused detector (`training.scoring.fused`), appends one
row per unit to `scores` (optional; the rows of a batch scoring run, by the same code: context,
percentile, reasons), one ECS document per alert to `alerts` (`training.scoring.ecs`) and one
per incident that gained alerts to `incidents` (optional; `training.scoring.live_incidents`),
indexes the alerts into Elasticsearch when asked (`training.scoring.es_bulk`; refused ones go
to `refused.jsonl` in the state folder with the reason), and checkpoints
(`training.scoring.follow_state`) every `checkpoint_seconds`, when it stops, and after a poll
that finished a rotated file (the state holds every open incident: rewritten at each poll, it
cost more than the scoring). A run killed at any point resumes from its last checkpoint, what
it appended since cut off and scored again: every event is scored once, every alert written
once (a reader that took a line before the cut gets it again; Elasticsearch keeps one
document per id). The scoring guard judges the latest units
after every poll and warns once per excursion (`training.scoring.rolling_guard`); it never
stops the scorer.

A per-event layer's alert (layer 1, the fused score) leaves with the poll that read its event,
so write-to-alert latency is about `poll_seconds` plus the batch's scoring time. A window
layer's units (layer-2 edges, layer-3 entity windows) are scored when their window closes:
the events read have moved event time `window_grace` seconds past its end
(`training.scoring.follow_windows`, which also holds the open windows' events in the state
folder and quarantines events that arrive after their window closed). As batch `score`, an
event whose id was seen before is dropped and counted ("duplicates"; `deduplicate` False keeps
it): here, seen among the last 100,000 kept events (`training.scoring.follow_dedup`, kept in
the state folder with the read positions). The fused detector scores each event as it is
read, with the window layers counted as giving no evidence yet
(`training.scoring.fused`). `once` scores what is there and returns (for cron: it stops at
the first poll that reaches the ends of the files, so a busy log cannot keep it running;
windows still open stay held for the next run); otherwise the loop runs until `stop` is set
(the command line sets it on SIGTERM and SIGINT): the batch in hand is finished first.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import torch

from training.errors import CheckpointError, ConfigError, NotSupportedError
from training.evaluation.alert_rate import DEFAULT_FACTOR, validate_bounds
from training.evaluation.fusion import FUSED_NAME
from training.layers.registry import layer_for_spec
from training.registry.registry import ModelRegistry
from training.scoring.alerts import AlertRows
from training.scoring.batch import TrafficOnly
from training.scoring.ecs import AlertRule, event_alerts, unit_alerts
from training.scoring.es_bulk import BulkIndexer
from training.scoring.follow_dedup import RecentIds
from training.scoring.follow_state import AppendOnly, FollowState
from training.scoring.follow_switch import take_over
from training.scoring.follow_windows import DEFAULT_GRACE, WindowScorer, check_grace
from training.scoring.follow_model import ProductionWatch, warn_thin
from training.scoring.fused import FusedDetector
from training.scoring.jsonl_rows import jsonl_lines
from training.scoring.live_incidents import LiveIncidents
from training.scoring.rolling_guard import DEFAULT_WINDOW, RollingGuard
from training.scoring.tail import Tail
from training.sources.config import DataSource

logger = logging.getLogger(__name__)

QUARANTINE_FILE, REFUSED_FILE = "quarantine.jsonl", "refused.jsonl"
CHECKPOINT_SECONDS = 2.0


@dataclass(frozen=True)
class FollowOutputs:
    """Where a following scorer writes.

    Attributes:
        alerts: ECS alert documents, JSON Lines (appended).
        state: the state folder (positions, committed sizes, lock; quarantined records and
            alerts Elasticsearch refused).
        incidents: incident updates, ECS documents as JSON Lines (appended;
            `training.scoring.live_incidents`); None writes none.
        scores: every scored unit (the rows of a batch run), JSON Lines; None: none.
        elasticsearch: connection_params of the index alerts also go to; None: none.
    """

    alerts: str | Path
    state: str | Path
    scores: str | Path | None = None
    elasticsearch: dict[str, Any] | None = None
    incidents: str | Path | None = None


@dataclass
class FollowSummary:
    """Counts of a following run, over its whole history (resumed runs included), and the
    alert-rate excursions of this run (`RollingGuard`) and the files it lost: removed
    before they were read to their end, with the bytes known to be left in them (`Tail`)."""

    model_name: str
    version: str
    polls: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    excursions: int = 0
    held: int = 0  # events of windows still open (window layers)
    lost_files: int = 0
    lost_bytes: int = 0
    unfinished: dict[str, int] = field(default_factory=dict)  # file -> bytes of a line in progress
    empty_inputs: list[str] = field(default_factory=list)  # files that gave no record yet

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def follow_events(registry: ModelRegistry, model_name: str, sources: list[DataSource],
                  outputs: FollowOutputs, *, version: str | None = None,
                  stage: str | None = None, alias: str | None = None, once: bool = False,
                  poll_seconds: float = 0.25, stop: threading.Event | None = None,
                  alert_factor: float = DEFAULT_FACTOR, max_alert_rate: float | None = None,
                  guard_window: int = DEFAULT_WINDOW,
                  window_grace: float = DEFAULT_GRACE,
                  deduplicate: bool = True, switch_model: bool = False,
                  checkpoint_seconds: float = CHECKPOINT_SECONDS) -> FollowSummary:
    """Follow `sources` and score what they append (see the module docstring).

    Args:
        model_name: a registered model (pick its version with one of `version`, `stage`,
            `alias`; default the production one), or "fused": the registry's fused detector.
        alert_factor, max_alert_rate, guard_window: the rolling guard's bound and window
            (`RollingGuard`).
        window_grace: seconds of event time a window of a window layer waits past its end
            for late events (`training.scoring.follow_windows`).
        deduplicate: drop an event whose id is among the last 100,000 kept ones' (False
            keeps every one).
        switch_model: a state made by another model goes on with this one from its read
            positions, its totals and open incidents started again (`follow_switch`).
        checkpoint_seconds: the least time between checkpoints while it runs (0: after
            every poll).

    Raises:
        ConfigError: poll_seconds <= 0, an output that is not .jsonl/.json, a version asked of
            the fused detector, a guard setting out of range, a negative window_grace, or an
            input file that is one of its outputs (outputs inside a followed folder are
            left out of what it reads).
        NotFoundError, CheckpointError, SchemaError: as `score_events` and `score_fused`;
            CheckpointError also when the state folder was made by another model
            (`FollowState.check_model`) and `switch_model` is False.
    """
    if not poll_seconds > 0 or not checkpoint_seconds >= 0:
        raise ConfigError(f"poll_seconds must be > 0 and checkpoint_seconds >= 0, got "
                          f"{poll_seconds} and {checkpoint_seconds}")
    for path in (outputs.alerts, outputs.scores, outputs.incidents):
        if path is not None and Path(path).suffix.lower() not in (".jsonl", ".json"):
            raise ConfigError(f"--follow appends JSON Lines: the output {path} must end in "
                              ".jsonl or .json")
    validate_bounds(alert_factor, max_alert_rate)  # before loading anything
    check_grace(window_grace)
    stop = threading.Event() if stop is None else stop  # never set: until killed
    scorer, rule, sha256 = _scorer(registry, model_name, version, stage, alias)
    warn_thin(scorer, rule, model_name)
    watch = ProductionWatch(registry, model_name, rule.version, model_name != FUSED_NAME and
                            version is None and alias is None and stage in (None, "production"))
    model = {"name": model_name, "version": rule.version, "sha256": sha256}
    guard = RollingGuard(None if rule.calibration is None else
                         rule.calibration.expected_alert_rate, window=guard_window,
                         factor=alert_factor, max_alert_rate=max_alert_rate)
    sink = BulkIndexer(outputs.elasticsearch) if outputs.elasticsearch else None
    state = FollowState(outputs.state)
    files: list[AppendOnly] = []
    windows: WindowScorer | None = None
    dedup: RecentIds | None = None
    try:
        # Before an output is opened: the new model's, from here on.
        switch = take_over(state, model, scorer.layer.data_spec.fingerprint if isinstance(
            scorer, AlertRows) and scorer.layer.window_seconds else None) if switch_model else None
        state.check_model(model)  # before an output is opened (and cut back)
        own = [p for p in (outputs.alerts, outputs.scores, outputs.incidents, state.folder)
               if p is not None]
        tail = Tail(sources, state.positions, own=own)  # refuses bad inputs: no output yet
        out = _Files(alerts=state.output(Path(outputs.alerts)),
                     scores=state.output(Path(outputs.scores)) if outputs.scores else None,
                     incidents=(state.output(Path(outputs.incidents)) if outputs.incidents
                                else None),
                     quarantine=state.output(state.folder / QUARANTINE_FILE, private=True),
                     refused=state.output(state.folder / REFUSED_FILE, private=True))
        files = out.opened()
        if isinstance(scorer, AlertRows) and scorer.layer.window_seconds:
            windows = WindowScorer(scorer.layer, scorer, state, window_grace)
        elif "windows" in state.saved:
            raise CheckpointError(f"{state.folder} holds the open windows of a layer-2/3 model; "
                                  f"{model_name} scores events one by one: give it another "
                                  "--state folder")
        incidents = (LiveIncidents(rule, state.saved.get("incidents")) if out.incidents
                     else None)
        dedup = RecentIds(state) if deduplicate else None
        run = _Run(scorer, rule, guard, sink, out, state.counts, incidents, windows, dedup)
        summary = FollowSummary(model_name, rule.version)
        # A first checkpoint before reading: a run that dies before its first commit leaves
        # outputs that the next run can cut back to what they held when it started.
        run.commit(state, tail, files, model)
        if switch is not None:
            switch.done()  # the state file names the new model now
        started = committed = time.perf_counter()
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # small batches: OpenMP threads waiting for a core cost more
        # The long-lived objects (torch, the model, the parsers) move out of the collector's
        # sight: each poll allocates many small objects (rows, alert documents), and full
        # collections walking everything loaded made up most of a poll's time.
        gc.freeze()
        try:
            while True:
                run.poll(tail)
                summary.polls += 1
                done = (once and not tail.behind) or stop.is_set()
                if done or tail.forgot or time.perf_counter() - committed >= checkpoint_seconds:
                    run.commit(state, tail, files, model)
                    committed = time.perf_counter()
                    watch.check()
                if done:
                    break  # --once: what the files held when it caught up is scored
                if tail.behind:
                    continue  # a backlog: no pause until it is worked off
                stop.wait(poll_seconds)
        finally:
            gc.unfreeze()  # the caller's process goes on as it was
            torch.set_num_threads(before)
        summary.counts, summary.seconds = dict(run.counts), time.perf_counter() - started
        summary.excursions, summary.held = guard.excursions, windows.held if windows else 0
        summary.lost_files, summary.lost_bytes = tail.lost_files, tail.lost_bytes
        summary.unfinished, summary.empty_inputs = tail.unfinished(), tail.without_records()
        return summary
    finally:
        for f in files:
            f.close()
        if windows is not None:
            windows.close_files()
        if dedup is not None:
            dedup.close()
        state.close()
        if sink is not None:
            sink.close()


def _scorer(registry: ModelRegistry, model_name: str, version: str | None, stage: str | None,
            alias: str | None) -> tuple[AlertRows | FusedDetector, AlertRule, str]:
    """What scores the events (`score(events)` gives their rows and scores), its rule, and
    the sha256 of its weights (of the fused detector's members' weights and its fusion)."""
    if model_name == FUSED_NAME:
        if version or stage or alias:
            raise ConfigError("--version, --stage and --alias pick a version of one model; "
                              "the fused detector scores with the versions its fusion.json names")
        fused = FusedDetector(registry, per_event=True)
        made_of = [loaded.metadata.weights_sha256 for _, loaded in fused.parts]
        sha256 = hashlib.sha256(orjson.dumps([made_of, fused.fusion.to_dict()])).hexdigest()
        return fused, AlertRule(FUSED_NAME, fused.version, FUSED_NAME, fused.threshold,
                                fused.calibration), sha256
    if version is None and stage is None and alias is None:
        stage = "production"
    loaded = registry.load_model(model_name, version, stage, alias=alias)
    where = f"{loaded.metadata.model_name} {loaded.metadata.version}"
    layer = layer_for_spec(loaded.feature_spec, where)
    if loaded.threshold is None:
        raise ConfigError(f"{where} has no anomaly threshold; register a model whose sidecar "
                          "has one")
    threshold = float(loaded.threshold)
    return (AlertRows(layer, loaded.model, threshold, loaded.calibration),
            AlertRule(model_name, loaded.metadata.version, layer.name, threshold,
                      loaded.calibration), loaded.metadata.weights_sha256)


@dataclass(frozen=True)
class _Files:
    """The outputs a following scorer appends to (`FollowOutputs`, opened)."""

    alerts: AppendOnly
    scores: AppendOnly | None
    incidents: AppendOnly | None
    quarantine: AppendOnly
    refused: AppendOnly

    def opened(self) -> list[AppendOnly]:
        return [f for f in (getattr(self, x.name) for x in fields(self)) if f is not None]


class _Run:
    """The scoring of one poll's reads, and the counters."""

    def __init__(self, scorer: AlertRows | FusedDetector, rule: AlertRule, guard: RollingGuard,
                 sink: BulkIndexer | None, out: _Files, counts: dict[str, int],
                 incidents: LiveIncidents | None, windows: WindowScorer | None = None,
                 dedup: RecentIds | None = None) -> None:
        self.scorer, self.rule, self.guard, self.sink = scorer, rule, guard, sink
        self.out, self.incidents, self.windows, self.dedup = out, incidents, windows, dedup
        self.warned_late = False  # the first poll mostly late gets a warning, once a run
        kinds = ("events", "alerts", *(("incident_updates",) if incidents else ()),
                 "quarantined", "refused", "sensor_records", *(("late",) if windows else ()),
                 *(("duplicates",) if dedup else ()))
        self.counts = {k: counts.get(k, 0) for k in kinds}
        self.traffic = TrafficOnly()  # sensor records are left out, as batch `score` does

    def commit(self, state: FollowState, tail: Tail, files: list[AppendOnly],
               model: dict[str, str]) -> None:
        """Checkpoint the read positions with the outputs, the open incidents (and the held
        windows)."""
        held = [] if self.windows is None else [self.windows.pending_file]
        held += [] if self.dedup is None else [self.dedup.file]
        state.commit(tail.state(), [*files, *held], self.counts, model,
                     incidents=None if self.incidents is None else self.incidents.saved(),
                     windows=None if self.windows is None else self.windows.saved(),
                     dedup=None if self.dedup is None else self.dedup.saved())
        if self.windows is not None:
            self.windows.committed()
        if self.dedup is not None:
            self.dedup.committed()

    def poll(self, tail: Tail) -> int:
        """Score what the files gained; returns how many records were read."""
        read = scored = 0
        docs: list[dict] = []
        polled: list[pa.RecordBatch] = []  # the rows scored, for the incidents
        for part in tail.poll():
            canonical = part.canonical
            read += canonical.table.num_rows + len(canonical.rejects)
            self._quarantine([r.to_dict() for r in canonical.rejects])
            table, lines = canonical.table, part.lines
            keep = self.traffic.kept(table)  # sensor records are left out, and counted
            self.counts["sensor_records"] += int((~keep).sum())
            if self.dedup is not None:
                new = self.dedup.new(table["event_id"].filter(pa.array(keep)))
                self.counts["duplicates"] += int((~new).sum())
                keep[keep] = new
            if not keep.all():
                table, lines = table.filter(pa.array(keep)), lines[keep]
            if not table.num_rows:
                continue
            if self.windows is not None:  # scored when their windows close, below
                rejects, late = self.windows.add(table, part, lines)
                self._quarantine(rejects)
                self.counts["late"] += late
                if late > table.num_rows // 2 and not self.warned_late:
                    logger.warning("%d of %d events read from %s came after their windows had "
                                   "closed; they are quarantined (%s) and later ones will be "
                                   "too, counted but not warned of again", late,
                                   table.num_rows, part.position.path, self.out.quarantine.path)
                    self.warned_late = True
                continue
            rows = self._score(table)
            docs += event_alerts(self.rule, table, rows)
            polled.append(rows)
            self.counts["events"] += table.num_rows
        if self.windows is not None:
            for events, rows in self.windows.close(tail.lagging):
                self._write_rows(rows)
                docs += unit_alerts(self.rule, rows, self.windows.layer.window_seconds)
                polled.append(rows)
                self.counts["events"] += events.num_rows
        scored = sum(r.num_rows for r in polled)
        updates = []
        if self.incidents is not None and polled:
            updates = self.incidents.update(pa.Table.from_batches(polled))
            self._append(self.out.incidents, updates, "incident_updates")
        self._append(self.out.alerts, docs, "alerts")
        if self.sink is not None and (docs or updates):
            refused = self.sink.index(docs + updates)
            self.out.refused.append([orjson.dumps(r.to_dict()) + b"\n" for r in refused])
            self.counts["refused"] += len(refused)
        self.guard.add(scored, len(docs))  # one verdict per poll: its warning goes to stderr
        return read

    def _append(self, out: AppendOnly, docs: list[dict], counted: str) -> None:
        out.append([orjson.dumps(d) + b"\n" for d in docs])
        self.counts[counted] += len(docs)

    def _quarantine(self, records: list[dict]) -> None:
        self.out.quarantine.append([orjson.dumps(r) + b"\n" for r in records])
        self.counts["quarantined"] += len(records)

    def _write_rows(self, rows: pa.RecordBatch) -> None:
        if self.out.scores is not None:
            self.out.scores.append(jsonl_lines(rows))  # the rows of a batch run

    def _score(self, events: pa.Table) -> pa.RecordBatch:
        with torch.inference_mode():
            rows, _ = self.scorer.score(events)
        if rows.num_rows != events.num_rows:  # per-event scores: every event, in order
            raise NotSupportedError(f"{self.rule.layer} gave {rows.num_rows} scores for "
                                    f"{events.num_rows} events; --follow needs one per event")
        self._write_rows(rows)
        return rows
