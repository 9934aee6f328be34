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
the bucket start), `score` (float32, higher = more anomalous), `is_alert` (bool) and
`event_ids` (list of the ids of the events behind the unit). The file is Parquet, or JSON Lines
when its name ends in .jsonl or .json; it is written atomically.

Layer 1 streams: each batch the collector yields is featurized, scored and written before the
next, so memory stays flat on inputs of any size. Layers 2 and 3 build windows across the
whole input, so they collect it first.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from training.data_collection import DataCollector, DataSource
from training.detectors.base import Detector
from training.errors import CheckpointError, ConfigError, SchemaError
from training.features.encoding import FeatureSpec, as_array
from training.features.layer1 import Layer1Featurizer
from training.fileio import atomic_write
from training.model_registry import ModelRegistry, RegisteredModel

logger = logging.getLogger(__name__)

TIME = pa.timestamp("us", tz="UTC")
OUTPUT_SCHEMA = pa.schema([("unit", pa.string()), ("time", TIME), ("score", pa.float32()),
                           ("is_alert", pa.bool_()), ("event_ids", pa.list_(pa.string()))])
SCORE_BATCH = 4096  # rows per model call: small enough to stay in cache (faster than 64k)


@dataclass
class ScoringSummary:
    """What a scoring run did; `top_alerts` holds the highest-scoring alerts, best first."""

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

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_second": round(self.events_per_second, 1)}


@torch.inference_mode()
def model_scores(model: Detector, batches: Iterator[Any] | Sequence[Any]) -> np.ndarray:
    """`model.anomaly_score` over `batches`, concatenated (float32)."""
    model.eval()
    parts = [model.anomaly_score(batch).float().cpu().numpy() for batch in batches]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _rows(x: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    return (x[i:i + size] for i in range(0, len(x), size))


def _single_ids(ids: pa.Array) -> pa.ListArray:
    """Each id as a one-element list (zero-copy offsets)."""
    offsets = pa.array(np.arange(len(ids) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, ids.cast(pa.string()))


def _micros(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values).astype("datetime64[us]").astype(np.int64)).cast(TIME)


# -- one scorer per layer: (model, spec, events) -> scores and the output columns but is_alert --

Scored = tuple[np.ndarray, dict[str, pa.Array]]
Scorer = Callable[[Detector, FeatureSpec, pa.Table], Scored]


def _layer1(featurizer: Layer1Featurizer) -> Scorer:
    def score(model: Detector, spec: FeatureSpec, table: pa.Table) -> Scored:
        features = torch.from_numpy(featurizer.transform(table))  # (events, 128)
        ids = as_array(table["event_id"])
        times = as_array(table["timestamp"]).cast(pa.int64()).cast(TIME)
        return model_scores(model, _rows(features, SCORE_BATCH)), \
            {"unit": ids.cast(pa.string()), "time": times, "event_ids": _single_ids(ids)}
    return score


def _layer2(model: Detector, spec: FeatureSpec, table: pa.Table) -> Scored:
    from training.features.layer2 import Layer2GraphBuilder
    from training.layer2_data import Layer2Data
    from training.standardizer import data_spec

    graphs = Layer2GraphBuilder.from_spec(data_spec(spec)).build(table)
    scores = model_scores(model, Layer2Data(graphs, spec).batches(64))  # per edge, in order
    a = graphs.arrays
    window = np.searchsorted(a["edge_ptr"], np.arange(len(scores)), side="right") - 1
    base, start = a["node_ptr"][window], a["window_start"][window]
    names = graphs._strings("entity")
    units = np.char.add(np.char.add(np.char.add(names[base + a["edge_index"][0]], "->"),
                                    names[base + a["edge_index"][1]]),
                        np.char.add("@", start.astype("datetime64[us]").astype(str)))
    events = pa.ListArray.from_arrays(pa.array(a["event_ptr"].astype(np.int32)),
                                      graphs.event_id.cast(pa.string()))
    return scores, {"unit": pa.array(units), "time": _micros(start), "event_ids": events}


def _layer3(model: Detector, spec: FeatureSpec, table: pa.Table) -> Scored:
    from training.features.layer3 import Layer3WindowBuilder
    from training.layer3_data import Layer3Data
    from training.standardizer import data_spec

    windows = Layer3WindowBuilder.from_spec(data_spec(spec)).build(table)
    data = Layer3Data(windows, spec)
    scores = model_scores(model, ((x, y) for x, y, _ in data.batches(1024)))
    entity = windows.entity.cast(pa.string()).to_numpy(zero_copy_only=False).astype(str)
    units = np.char.add(np.char.add(entity, "@"), windows.time.astype("datetime64[us]").astype(str))
    events = pa.ListArray.from_arrays(pa.array(windows.event_ptr.astype(np.int32)),
                                      windows.event_id.cast(pa.string()))
    return scores, {"unit": pa.array(units), "time": _micros(windows.time), "event_ids": events}


def _scorer(spec: FeatureSpec) -> Scorer:
    """The scorer for a model's spec; refuses a spec the featurizer cannot reproduce."""
    if spec.layer == "layer1":
        return _layer1(Layer1Featurizer.from_spec(spec))  # SchemaError on any mismatch
    if spec.layer in ("layer2", "layer3"):
        return _layer2 if spec.layer == "layer2" else _layer3
    raise SchemaError(f"the model's FeatureSpec is for {spec.layer!r}; scoring knows layer1, "
                      "layer2 and layer3")


# -- the run ---------------------------------------------------------------------------------


class _Output:
    """Scored units to a Parquet or JSON Lines file (atomic), with counts and the top alerts."""

    def __init__(self, handle: Any, path: Path, top_k: int) -> None:
        self.jsonl = path.suffix.lower() in (".jsonl", ".json")
        self.handle = handle
        self.writer = None if self.jsonl else pq.ParquetWriter(handle, OUTPUT_SCHEMA)
        self.units = self.alerts = 0
        self.top_k = top_k
        self.top: list[tuple[float, int, dict]] = []  # min-heap of (score, order, row)

    def write(self, batch: pa.RecordBatch) -> None:
        alert = batch.column("is_alert").to_numpy(zero_copy_only=False)
        if self.jsonl:
            self.handle.write(b"".join(orjson.dumps(row) + b"\n" for row in batch.to_pylist()))
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
            row["time"] = row["time"].isoformat() if row["time"] is not None else None
            item = (row["score"], -(first + at), row)
            if len(self.top) < self.top_k:
                heapq.heappush(self.top, item)
            elif item[:2] > self.top[0][:2]:
                heapq.heapreplace(self.top, item)

    def close(self) -> list[dict]:
        if self.writer is not None:
            self.writer.close()
        return [row for _, _, row in sorted(self.top, key=lambda t: t[:2], reverse=True)]


def score_events(registry: ModelRegistry, model_name: str,
                 events: Sequence[DataSource] | pa.Table, output: str | Path, *,
                 version: str | None = None, stage: str | None = None, alias: str | None = None,
                 top_k: int = 10, num_threads: int | None = 1) -> ScoringSummary:
    """Score `events` with a registered model and write one row per unit to `output`.

    Args:
        registry: where the model is registered.
        model_name: the model; pick the version with one of `version`, `stage`, `alias`
            (default: the production version).
        events: sources to collect (deduplicated, bad records quarantined in memory), or a
            canonical event table.
        output: the result file (.parquet, or .jsonl/.json for JSON Lines).
        top_k: how many of the highest-scoring alerts the summary lists.
        num_threads: torch threads for the model while scoring (None: leave torch's setting).
            One is the default: the collector's reader thread needs the other core, and
            OpenMP threads that wait for a busy core slow these small matrix products down
            by an order of magnitude (see BENCHMARKS.md).

    Raises:
        NotFoundError: no such model or version; CheckpointError: files fail verification or
        the model has no threshold; SchemaError: no FeatureSpec, or one the featurizer cannot
        reproduce.
    """
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0, got {top_k}")
    if num_threads is not None and num_threads < 1:
        raise ConfigError(f"num_threads must be >= 1 or None, got {num_threads}")
    if version is None and stage is None and alias is None:
        stage = "production"
    started = time.perf_counter()
    loaded = registry.get_model(model_name, version, stage, alias=alias)
    spec, threshold = _check_model(loaded)
    scorer = _scorer(spec)
    output = Path(output)
    n_events = 0
    with _torch_threads(num_threads), atomic_write(output) as handle:
        out = _Output(handle, output, top_k)
        for table in _tables(events, streaming=spec.layer == "layer1"):
            n_events += table.num_rows
            scores, columns = scorer(loaded.model, spec, table)
            out.write(pa.RecordBatch.from_arrays(
                [columns["unit"], columns["time"], pa.array(scores, pa.float32()),
                 pa.array(scores >= threshold), columns["event_ids"]], schema=OUTPUT_SCHEMA))
        top = out.close()
    summary = ScoringSummary(model_name, loaded.metadata.version, spec.layer, threshold, n_events,
                             out.units, out.alerts, time.perf_counter() - started, str(output), top)
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


def _check_model(loaded: RegisteredModel) -> tuple[FeatureSpec, float]:
    spec, threshold = loaded.feature_spec, loaded.threshold
    where = f"{loaded.metadata.model_name} {loaded.metadata.version}"
    if spec is None:
        raise SchemaError(f"{where} has no FeatureSpec, so its input transform cannot be "
                          "reproduced; register a model saved with feature_spec=")
    if threshold is None:
        raise CheckpointError(f"{where} has no anomaly threshold; register a model whose "
                              "sidecar has one (calibrated on validation data)")
    return spec, float(threshold)


def _tables(events: Sequence[DataSource] | pa.Table, streaming: bool) -> Iterator[pa.Table]:
    if isinstance(events, pa.Table):
        yield events
        return
    collector = DataCollector(list(events), progress=False)
    if streaming:
        yield from collector.batches()
    else:
        yield collector.collect_table()
    if collector.quarantined:
        logger.warning("%d records were quarantined (unparseable); see the collector's reasons",
                       len(collector.quarantined))
