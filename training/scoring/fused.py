"""Scoring new events with the fused detector: every layer's model, one score per event.

    summary = score_fused(ModelRegistry(), sources, "fused.parquet")   # score --model fused

The fused detector is registered by a pipeline run as `fusion.json` in the registry folder
(`training.pipeline.fusion`): the layer model versions it combines, its rule
(`training.evaluation.fusion`) and the calibration of its score. Scoring loads exactly those
versions (verified as any registered model), featurizes the events for each, turns each
layer's unit scores into tail probabilities by that model's calibration, gives each event the
smallest over its units, and combines them.

One output row per event, the columns of `training.scoring.batch` (`unit` is the event id,
`score` the fused score, `is_alert` score >= the fused threshold, `event_ids` the event itself)
and one `tail_<layer>` column per layer: the event's tail probability there (null where no
unit of the layer covers it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from training.artifacts.atomic import atomic_write
from training.collection.collector import DataSource
from training.errors import CheckpointError, NotFoundError
from training.evaluation.fusion import FUSED_NAME, Fusion, event_tail_probabilities, fused_scores
from training.layers.base import TIME
from training.layers.registry import layer_for_spec
from training.registry.registry import ModelRegistry
from training.collection.collector import DataCollector
from training.scoring.batch import (OUTPUT_SCHEMA, ScoringSummary, _Output, _tables,
                                    _torch_threads, count_dropped)

logger = logging.getLogger(__name__)

FUSION_FILE = "fusion.json"  # in the registry folder


def save_fusion(fusion: Fusion, registry_dir: str | Path) -> Path:
    """Write `fusion` as the registry's fused detector (atomically); returns the file."""
    path = Path(registry_dir) / FUSION_FILE
    with atomic_write(path) as handle:
        handle.write(json.dumps(fusion.to_dict(), indent=2).encode("utf-8"))
    return path


def load_fusion(registry_dir: str | Path) -> Fusion:
    """The fused detector registered in `registry_dir`.

    Raises:
        NotFoundError: none is registered there; SchemaError: the file is not a fusion.
    """
    path = Path(registry_dir) / FUSION_FILE
    if not path.exists():
        raise NotFoundError(f"no fused detector in {registry_dir} (no {FUSION_FILE}); a "
                            "pipeline run that trains the layers registers one")
    return Fusion.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))


def score_fused(registry: ModelRegistry, events: Sequence[DataSource] | pa.Table,
                output: str | Path, *, top_k: int = 10, num_threads: int | None = 1
                ) -> ScoringSummary:
    """Score `events` with the registry's fused detector; one row per event to `output`.

    Raises:
        NotFoundError: no fused detector, or a model it names is gone; CheckpointError: a
        model has no calibration (saved before calibrations: it cannot be fused).
    """
    started = time.perf_counter()
    fusion = load_fusion(registry.registry_dir)
    parts = []
    for entry in fusion.models:
        loaded = registry.load_model(entry["model_name"], entry["version"])
        where = f"{entry['model_name']} {entry['version']}"
        if loaded.calibration is None:
            raise CheckpointError(f"{where} has no calibration, so its scores have no tail "
                                  "probability to fuse; retrain it")
        parts.append((layer_for_spec(loaded.feature_spec, where), loaded))
    collector = None if isinstance(events, pa.Table) else DataCollector(list(events))
    table = next(_tables(events, collector, streaming=False))
    ids = np.asarray(table["event_id"].cast(pa.string()).to_pylist(), dtype=object)
    with _torch_threads(num_threads):
        columns = []
        for layer, loaded in parts:
            units = layer.featurize(table)
            p = loaded.calibration.tail_probability(layer.score(loaded.model, units))
            columns.append(event_tail_probabilities(
                ids, layer.unit_columns(units)["event_ids"], p))
    tails = np.column_stack(columns)  # (events, layers)
    scores = fused_scores(tails, fusion.rule)
    # The first columns of a layer's output (unit is the event), then each layer's tail
    # probability.
    schema = pa.schema([*(OUTPUT_SCHEMA.field(i) for i in range(5)),
                        *(pa.field(f"tail_{layer.name}", pa.float64()) for layer, _ in parts)])
    one_each = pa.array(np.arange(len(ids) + 1, dtype=np.int32))
    id_array = pa.array(ids, pa.string())
    batch = pa.RecordBatch.from_arrays(
        [id_array, table["timestamp"].combine_chunks().cast(TIME),
         pa.array(scores, pa.float32()), pa.array(scores >= fusion.threshold),
         pa.ListArray.from_arrays(one_each, id_array),
         *(pa.array(tails[:, i], mask=np.isnan(tails[:, i])) for i in range(len(parts)))],
        schema=schema)
    output = Path(output)
    with atomic_write(output) as handle:
        out = _Output(handle, output, top_k, schema)
        try:
            out.write(batch)
        finally:  # a Parquet writer left open complains with a traceback when collected
            top = out.close()
    for row in top:
        row["percentile"] = float(fusion.calibration.percentile(row["score"]))
    versions = " + ".join(f"{m['model_name']} {m['version']}" for m in fusion.models)
    summary = ScoringSummary(FUSED_NAME, versions, FUSED_NAME, fusion.threshold, len(ids),
                             out.units, out.alerts, time.perf_counter() - started,
                             str(output), top, fusion.calibration.rule,
                             fusion.calibration.expected_alert_rate)
    count_dropped(summary, collector)
    logger.info("fused %s: %d events, %d alerts", versions, len(ids), out.alerts)
    return summary
