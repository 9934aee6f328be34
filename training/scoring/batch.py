"""Scoring new events with a registered model: collect, featurize, score, threshold, write.

    summary = score_events(ModelRegistry(), "layer1_vae", sources, "alerts.parquet")

The model comes from the registry (verified on load) with its own FeatureSpec, which rebuilds
the exact featurizer it was trained with; a spec that the featurizer cannot reproduce is
refused. The model's stored anomaly threshold decides `is_alert` (score >= threshold).

One output row per unit the layer scores (DESIGN.md principle 5):

| layer | unit | `unit` text |
|---|---|---|
| layer1 | an event | its event_id |
| layer2 | an edge of a window graph | `source->dest@window start` |
| layer3 | an entity's window | `entity@bucket start` |

Columns: `unit` (string), `time` (timestamp[us, UTC]: the event's time, the window start or
the bucket start), `score` (float32, higher = more anomalous), `is_alert` (bool),
`event_ids` (list of the ids of the events behind the unit), then the layer, threshold,
percentile and event context (`training.scoring.alerts` lists them). The file is Parquet, or
JSON Lines when its name ends in .jsonl or .json. It and the files beside it (`output_files`:
incidents, alerts page, quarantined records) are one set, published together once all are
written (`training.artifacts.file_set`): a run that fails or is interrupted leaves the earlier
run's set as it was, never new scores beside old incidents.

Per-event layers stream (`Layer.streams`): each batch the collector yields is featurized, scored
and written before the next, so memory stays flat on inputs of any size. Layers whose units span
many events (windows) collect the whole input first.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from training.artifacts.atomic import atomic_write
from training.artifacts.file_set import FileSet
from training.collection.collector import DataCollector, DataSource
from training.collection.no_records import inputs_without_records
from training.collection.quarantine_file import quarantine_path, write_quarantine
from training.collection.schema import sensor_records
from training.errors import CheckpointError, ConfigError
from training.evaluation.alert_rate import ScoreShift, reference_shortfall
from training.evaluation.fusion import FUSED_NAME
from training.layers.registry import layer_for_spec
from training.console.progress import progress
from training.registry.registry import ModelRegistry, RegisteredModel
from training.scoring.alerts import OUTPUT_SCHEMA, AlertRows
from training.scoring.alerts_page import alerts_page_paths
from training.scoring.jsonl_rows import jsonl_lines
from training.scoring.output_format import is_jsonl
from training.scoring.tables import incidents_path, write_incidents
from training.sources.read_files import refuse_replacing_inputs, source_files

logger = logging.getLogger(__name__)

@dataclass
class ScoringSummary:
    """What a scoring run did; `top_alerts` holds the highest-scoring alerts, best first (with
    their percentile among the model's benign validation scores when it has a calibration);
    `threshold_rule`, `expected_alert_rate` and `score_shift` come from that calibration (see
    `training.scoring.guard`); `incidents` counts the incidents written to `incidents_output`
    (`training.scoring.incidents`)."""

    model_name: str
    version: str
    layer: str
    threshold: float
    events: int
    units: int
    alerts: int
    seconds: float
    output: str
    top_alerts: list[dict[str, Any]] = field(default_factory=list)
    threshold_rule: str | None = None
    expected_alert_rate: float | None = None
    score_shift: float | None = None  # KS distance from the benign validation scores
    # Why the calibration holds too few validation units for its threshold (the guard warns).
    thin_calibration: str | None = None
    reference_scores: int | None = None  # the benign validation scores calibrated on
    # The event fields a unit needs (window layers), with how many scored events lack each.
    unit_fields: dict[str, int] = field(default_factory=dict)
    empty_inputs: list[str] = field(default_factory=list)  # inputs that gave no record
    duplicates: int = 0
    sensor_records: int = 0  # left out: about the sensor, not traffic (`SENSOR_EVENT_TYPES`)
    quarantined: int = 0
    quarantine: str | None = None
    incidents: int = 0
    incidents_output: str | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_second": round(self.events_per_second, 1)}


# -- the run ---------------------------------------------------------------------------------


class _Output:
    """Scored units to a Parquet or JSON Lines file (atomic), with counts and the top alerts."""

    def __init__(self, handle: Any, path: Path, top_k: int,
                 schema: pa.Schema = OUTPUT_SCHEMA) -> None:
        self.jsonl = is_jsonl(path)
        self.handle = handle
        self.writer = None if self.jsonl else pq.ParquetWriter(handle, schema)
        self.units = self.alerts = 0
        self.top_k = top_k
        self.top: list[tuple[float, int, dict]] = []  # min-heap of (score, order, row)

    def write(self, batch: pa.RecordBatch) -> None:
        alert = batch.column("is_alert").to_numpy(zero_copy_only=False)
        if self.jsonl:
            self.handle.write(b"".join(jsonl_lines(batch)))
        else:
            self.writer.write_batch(batch)
        self._keep_top(batch, alert, self.units)
        self.units += batch.num_rows
        self.alerts += int(alert.sum())

    def _keep_top(self, batch: pa.RecordBatch, alert: np.ndarray, first: int) -> None:
        """Keep the `top_k` best alerts so far (on equal scores, the earliest)."""
        rows = np.flatnonzero(alert)
        if not len(rows) or not self.top_k:
            return
        scores = batch.column("score").to_numpy(zero_copy_only=False)[rows]
        best = rows[np.argsort(-scores, kind="stable")[:self.top_k]]
        for at, row in zip(best.tolist(), batch.take(pa.array(best)).to_pylist()):
            for key in ("time", "first_seen", "last_seen"):  # the fused output has only time
                if row.get(key) is not None:
                    row[key] = row[key].isoformat()
            for event in row.get("top_events") or ():
                event["timestamp"] = event["timestamp"] and event["timestamp"].isoformat()
            item = (row["score"], -(first + at), row)
            if len(self.top) < self.top_k:
                heapq.heappush(self.top, item)
            elif item[:2] > self.top[0][:2]:
                heapq.heapreplace(self.top, item)

    def close(self) -> list[dict]:
        if self.writer is not None:
            self.writer.close()
        return [row for _, _, row in sorted(self.top, key=lambda t: t[:2], reverse=True)]


def require_registry(registry: object) -> None:
    """Refuse what is not a `ModelRegistry` (a folder given as text), saying how to open one."""
    if not isinstance(registry, ModelRegistry):
        raise ConfigError(f"registry must be a ModelRegistry, got {type(registry).__name__} "
                          f"{registry!r}: ModelRegistry(folder) opens the one in a folder")


def score_events(registry: ModelRegistry, model_name: str,
                 events: Sequence[DataSource] | pa.Table, output: str | Path, *,
                 version: str | None = None, stage: str | None = None, alias: str | None = None,
                 top_k: int = 10, num_threads: int | None = 1,
                 deduplicate: bool = True) -> ScoringSummary:
    """Score `events` with a registered model and write one row per unit to `output`.

    Args:
        registry: where the model is registered.
        model_name: the model; pick the version with one of `version`, `stage`, `alias`
            (default: the production version).
        events: sources to collect (or one), or a canonical event table. Records that cannot be
            collected go to `<output stem>.quarantine.jsonl` beside `output` (file, line,
            reason); duplicates (an event id seen before) are dropped and counted.
        output: the result file (.parquet, or .jsonl/.json for JSON Lines).
        top_k: how many of the highest-scoring alerts the summary lists.
        deduplicate: drop events whose id was seen before (False keeps every one).
        num_threads: torch threads for the model while scoring (None: leave torch's setting).
            One is the default: the collector's reader thread needs the other core, and
            OpenMP threads that wait for a busy core slow these small matrix products down
            by an order of magnitude (see BENCHMARKS.md).

    Raises:
        NotFoundError: no such model or version; CheckpointError: files fail verification or
        the model has no threshold; SchemaError: no FeatureSpec, or one the featurizer cannot
        reproduce; ConfigError: `output` ends in neither .parquet nor .jsonl/.json, it or a
        file beside it is a file the sources read (it would replace it), or
        `model_name` is "fused" (`training.scoring.fused.score_fused` scores with it).
    """
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0, got {top_k}")
    require_registry(registry)
    if isinstance(events, DataSource):  # one source: a list of one
        events = [events]
    is_jsonl(output)  # an output suffix of neither format, before any work
    if not isinstance(events, pa.Table):  # an output that is an input would replace it
        refuse_replacing_inputs(output, output_files(Path(output)), source_files(events),
                                "output")
    if num_threads is not None and num_threads < 1:
        raise ConfigError(f"num_threads must be >= 1 or None, got {num_threads}")
    if version is None and stage is None and alias is None:
        stage = "production"
    if model_name == FUSED_NAME and FUSED_NAME not in registry.list_models():
        raise ConfigError(f"'{FUSED_NAME}' is the registry's fused detector, not a registered "
                          "model: score with it by training.scoring.fused.score_fused(registry, "
                          "events, output)")
    started = time.perf_counter()
    loaded = registry.load_model(model_name, version, stage, alias=alias)
    where = f"{loaded.metadata.model_name} {loaded.metadata.version}"
    layer = layer_for_spec(loaded.feature_spec, where)  # SchemaError if it cannot be reproduced
    threshold = _threshold(loaded, where)
    output = Path(output)
    n_events = 0
    calibration = loaded.calibration  # None for models saved before calibrations
    shift = None if calibration is None else ScoreShift(calibration)
    # Streaming, the scoring progress counts the events; otherwise collecting them shows its own.
    collector = None if isinstance(events, pa.Table) else DataCollector(
        list(events), deduplicate=deduplicate, progress=False if layer.streams else None)
    with FileSet(output_files(output)) as staging:  # published together, or not at all
        staged = staging / output.name
        with _torch_threads(num_threads), atomic_write(staged) as handle, \
                progress(f"scoring with {where}", unit="events") as bar:
            out = _Output(handle, staged, top_k)
            rows = AlertRows(layer, loaded.model, threshold, calibration)
            traffic = TrafficOnly()
            # Events a unit cannot be built from: why a window layer built none, if so.
            lacking = dict.fromkeys(getattr(layer.featurizer, "unit_fields", ()), 0)
            try:
                for table in map(traffic, _tables(events, collector, streaming=layer.streams)):
                    if not table.num_rows:  # a stream's batch can be empty (all filtered out)
                        continue
                    n_events += table.num_rows
                    for name in lacking:
                        lacking[name] += (table[name].null_count if name in table.column_names
                                          else table.num_rows)
                    batch, scores = rows.score(table)
                    if shift is not None:
                        shift.add(scores)
                    out.write(batch)
                    bar.update(table.num_rows, alerts=out.alerts)
            finally:  # a Parquet writer left open complains with a traceback when collected
                top = out.close()
        incidents, _ = write_incidents(staged)
        summary = ScoringSummary(model_name, loaded.metadata.version, layer.name, threshold,
                                 n_events, out.units, out.alerts, time.perf_counter() - started,
                                 str(output), top, loaded.threshold_rule,
                                 None if calibration is None else calibration.expected_alert_rate,
                                 None if shift is None else shift.distance(),
                                 incidents=incidents,
                                 incidents_output=str(incidents_path(output)),
                                 sensor_records=traffic.left_out,
                                 thin_calibration=None if calibration is None else
                                 reference_shortfall(calibration, layer.unit),
                                 reference_scores=None if calibration is None else
                                 calibration.n_scores, unit_fields=lacking)
        count_dropped(summary, collector, staged)
    logger.info("scored %d events (%d units, %d alerts) in %.2f s", n_events, out.units,
                out.alerts, summary.seconds)
    return summary


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `n` for the block, then restored."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _threshold(loaded: RegisteredModel, where: str) -> float:
    if loaded.threshold is None:
        raise CheckpointError(f"{where} has no anomaly threshold; register a model whose "
                              "sidecar has one (calibrated on validation data)")
    return float(loaded.threshold)


def output_files(output: Path) -> list[Path]:
    """The files a batch score of `output` writes, one set (`FileSet`): the scored units, and
    beside them their incidents, alerts page and quarantined records (those only when there
    are some: a set without them removes an earlier run's)."""
    return [output, incidents_path(output), *alerts_page_paths(output), quarantine_path(output)]


def count_dropped(summary: ScoringSummary, collector: DataCollector | None,
                  staged: Path) -> None:
    """Put the duplicates the collector dropped, the records it quarantined and the inputs
    that gave no record into `summary`; the quarantined records go to a file beside the output
    (file, line and reason of each), written beside `staged`, the output's name in its
    `FileSet`'s staging folder."""
    if collector is None:
        return
    summary.empty_inputs = inputs_without_records(collector)
    summary.duplicates = collector.get_stats()["duplicates"]
    summary.quarantined = len(collector.quarantined)
    if collector.quarantined:
        write_quarantine(quarantine_path(staged), collector.quarantined)
        summary.quarantine = str(quarantine_path(Path(summary.output)))


class TrafficOnly:
    """Tables without their sensor records (`SENSOR_EVENT_TYPES`: counters, capture loss),
    which no model learnt from; `left_out` counts them."""

    def __init__(self) -> None:
        self.left_out = 0

    def __call__(self, table: pa.Table) -> pa.Table:
        traffic = self.kept(table)
        return table if traffic.all() else table.filter(pa.array(traffic))

    def kept(self, table: pa.Table) -> np.ndarray:
        """Mask of the rows of `table` that are traffic (the others are counted)."""
        sensor = sensor_records(table["event_type"])
        self.left_out += int(sensor.sum())
        return ~sensor


def _tables(events: Sequence[DataSource] | pa.Table, collector: DataCollector | None,
            streaming: bool) -> Iterator[pa.Table]:
    if collector is None:
        yield events
    elif streaming:
        yield from collector.batches()
    else:
        yield collector.collect_table()
