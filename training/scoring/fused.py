"""Scoring new events with the fused detector: every layer's model, one score per event.

    summary = score_fused(ModelRegistry(), sources, "fused.parquet")   # score --model fused

The fused detector is registered by a pipeline run as `fusion.json` in the registry folder
(`training.pipeline.fusion`): the layer model versions it combines, its rule
(`training.evaluation.fusion`) and the calibration of its score. Scoring loads exactly those
versions (verified as any registered model), featurizes the events for each, turns each
layer's unit scores into tail probabilities by that model's calibration, gives each event the
smallest over its units, and combines them.

One output row per event, the columns of `training.scoring.batch` (`unit` is the event id,
`score` the fused score, `is_alert` score >= the fused threshold, `event_ids` the event itself,
`layer` "fused", `percentile` among the fused validation scores, the event's context) and one
`tail_<layer>` column per layer: the event's tail probability there (null where no unit of the
layer covers it). A fused alert's `reasons` are those of the layer unit that drove it: the unit
with the smallest tail probability among the event's (the one min-p takes), each field named
with its layer ("layer2: bytes_sent", the contributions summing to that unit's score in its
layer). Each layer explains its units once, for its own alerts and the fused alerts it drives
together, and at most `alerts.MAX_EXPLAINED` of them in a batch, counted once over both and
picked as for a layer's alerts alone (`AlertRows.most`: each incident's top units first, then
the highest scores in the layer, its smallest tail probabilities, the evidence min-p takes).

Live scoring (`score --follow --model fused`) scores each micro-batch as it is read, before the
windows of the window layers (2, 3) have closed: `FusedDetector(..., per_event=True)` counts
those layers as giving no evidence yet (p = 1, their `tail_` columns null) but keeps them in
the rule's count of layers. So the live fused score of an event is never above the one a batch
run gives it once its windows are known (min-p: the Bonferroni factor stays; Fisher: a p of 1
adds nothing to the sum but its degrees of freedom; min-p+fisher: both): a live fused alert is
also a batch one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from training.artifacts.atomic import atomic_write, read_regular
from training.artifacts.file_set import FileSet
from training.collection.collector import DataSource
from training.errors import CheckpointError, NotFoundError, NotSupportedError, SchemaError
from training.evaluation.alert_rate import reference_shortfall
from training.evaluation.calibration import Calibration
from training.evaluation.fusion import FUSED_NAME, Fusion, event_tail_units, fused_scores
from training.features.encoding import text_array
from training.layers.base import TIME
from training.layers.reasons import Reason, reasons_column
from training.layers.registry import layer_for_spec
from training.registry.registry import ModelRegistry
from training.collection.collector import DataCollector
from training.scoring.alerts import MAX_EXPLAINED, OUTPUT_SCHEMA, AlertRows, unit_rows
from training.scoring.batch import (
    ScoringSummary, TrafficOnly, _Output, _tables, _threshold, _torch_threads, count_dropped,
    output_files, require_registry,
)
from training.sources.read_files import refuse_replacing_inputs, source_files
from training.scoring.output_format import is_jsonl
from training.scoring.tables import incidents_path, write_incidents

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
                            f"pipeline run that trains the layers registers one{_skipped(path)}")
    try:
        document = json.loads(read_regular(path).decode("utf-8"))
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:  # not UTF-8, or not JSON
        raise SchemaError(f"{path}: not a fused detector's JSON ({exc}); a pipeline run that "
                          "trains the layers writes it") from None
    return Fusion.from_dict(document, str(path))


def _skipped(fusion_file: Path) -> str:
    """Why the pipeline run of the registry's workdir (WORKDIR/models) fused nothing, as its
    summary (`pipeline.json`) says; empty where there is no such summary or reason."""
    try:
        summary = json.loads((fusion_file.parent.parent / "pipeline.json").read_text("utf-8"))
        why = (summary.get("fusion") or {}).get("skipped")
    except (OSError, ValueError, AttributeError):
        return ""
    return f"; the last run in {fusion_file.parent.parent} skipped it: {why}" if why else ""


def not_in_production(registry: ModelRegistry, model_name: str, version: str, stage: str
                      ) -> str:
    """Why the fused detector's `model_name` `version` (in `stage`) is not the production
    version, from the registry's log, and what to do about it: the fusion keeps the versions
    its pipeline run trained; only another pipeline run fuses newer ones."""
    fused = (f"the fused detector combines {model_name} {version}, which is in stage {stage}, "
             "not production: ")
    left = [t for t in registry.history(model_name) if t.version == version
            and t.event == "stage" and t.from_stage == "production"]
    if not left:  # never promoted
        return fused + ("the gate of the pipeline run that trained it did not promote it (the "
                        "fusion combines every layer that run trained)")
    try:
        now = registry.get_metadata(model_name, stage="production").version
    except NotFoundError:
        now = None
    why = left[-1].reason.split(": ")[0]  # "replaced by 1.1.0", "rolled back to 1.0.0", ...
    return (fused + f"it left production at {left[-1].at[:19]} ({why}; actor "
            f"{left[-1].actor})" + (f" and {now} is the production version" if now else "")
            + f"; {FUSION_FILE} keeps the versions the pipeline run that wrote it trained "
            "(retrain and promote do not change it): re-run the pipeline on this workdir to "
            "train and fuse new ones"
            + (f", or score --model {model_name} to use {now} alone" if now else ""))


class FusedDetector:
    """The registry's fused detector, loaded: the fusion and its layers' verified models.

    Args:
        registry: where the fusion and its models are registered.
        per_event: score window layers as giving no evidence yet (live scoring; see the
            module docstring).
        max_explained: the most units of a layer that get reasons in a batch, its own alerts
            and the units driving fused alerts together (`AlertRows`).

    Raises:
        NotFoundError: no fused detector, or a model it names is gone; CheckpointError: a
        model has no calibration (saved before calibrations: it cannot be fused);
        NotSupportedError: per_event, and the fusion has no per-event layer.
    """

    def __init__(self, registry: ModelRegistry, *, per_event: bool = False,
                 max_explained: int = MAX_EXPLAINED) -> None:
        self.fusion = load_fusion(registry.registry_dir)
        self.per_event = per_event
        self.parts, self.explainers = [], []
        for entry in self.fusion.models:
            loaded = registry.load_model(entry["model_name"], entry["version"])
            where = f"{entry['model_name']} {entry['version']}"
            if loaded.calibration is None:
                raise CheckpointError(f"{where} has no calibration, so its scores have no tail "
                                      "probability to fuse; retrain it")
            layer = layer_for_spec(loaded.feature_spec, where)
            self.parts.append((layer, loaded))
            # Each layer's own rows: its units at its model's threshold, and the reasons of
            # the units that drive fused alerts (`score_with_units`).
            self.explainers.append(AlertRows(layer, loaded.model, _threshold(loaded, where),
                                             loaded.calibration, max_explained=max_explained))
            stage = registry.get_metadata(entry["model_name"], entry["version"]).stage
            if stage != "production":  # the pipeline fuses every layer it trained
                logger.warning("%s", not_in_production(registry, entry["model_name"],
                                                       entry["version"], stage))
        if per_event and not any(layer.streams for layer, _ in self.parts):
            raise NotSupportedError(f"the fused detector of {registry.registry_dir} combines "
                                    "window layers only: nothing to score per event")
        self.version = " + ".join(f"{m['model_name']} {m['version']}" for m in self.fusion.models)
        self.schema = pa.schema([*OUTPUT_SCHEMA, *(pa.field(f"tail_{layer.name}", pa.float64())
                                                   for layer, _ in self.parts)])

    @property
    def threshold(self) -> float:
        return self.fusion.threshold

    @property
    def calibration(self) -> Calibration:
        return self.fusion.calibration

    def score(self, events: pa.Table) -> tuple[pa.RecordBatch, np.ndarray]:
        """The rows of `events` (one per event, `schema`) and their fused scores."""
        batch, scores, _ = self.score_with_units(events, with_units=False)
        return batch, scores

    def score_with_units(self, events: pa.Table, *, with_units: bool = True
                         ) -> tuple[pa.RecordBatch, np.ndarray, list[pa.RecordBatch]]:
        """As `score`, and (`with_units`) each layer's own units of `events` as its
        `score` rows would be (each at its model's threshold, with reasons): the units that
        incidents group, each once (a fused row repeats its edge's or window's evidence in
        every one of its events)."""
        ids = np.asarray(events["event_id"].cast(pa.string()).to_pylist(), dtype=object)
        columns, drivers, known, scored = [], [], [], []
        for layer, loaded in self.parts:
            if self.per_event and not layer.streams:  # its windows are still open
                columns.append(np.ones(len(ids)))
                drivers.append(np.full(len(ids), -1))
                known.append(False)
                continue
            units = layer.featurize(events)
            scores = layer.score(loaded.model, units)
            p, driver = event_tail_units(ids, layer.unit_columns(units)["event_ids"],
                                         loaded.calibration.tail_probability(scores))
            columns.append(p)
            drivers.append(driver)
            known.append(True)
            scored.append((len(known) - 1, units, scores))
        tails = np.column_stack(columns)  # (events, layers)
        scores = fused_scores(tails, self.fusion.rule)
        drivers = np.column_stack(drivers)  # (events, layers): the unit giving each its p
        reasons: list = [None] * len(ids)
        layer_rows = []
        for i, units, layer_scores in scored:  # each layer explains its units once
            rows = self.explainers[i]
            driven = self._driven(i, tails, drivers, scores)
            alerts = (np.flatnonzero(layer_scores >= rows.threshold) if with_units
                      else np.zeros(0, np.int64))
            # One cap over both sets, picked as for its alerts alone: a unit's score in its
            # layer orders its own alerts and, by its tail probability, the fused ones too.
            # The layer's own rows: made now when returned, else only if `most` needs them.
            own = rows.unexplained(units, layer_scores, events) if with_units else None

            def batch() -> pa.RecordBatch:
                return own if own is not None else rows.unexplained(units, layer_scores, events)

            kept = rows.most(np.union1d(alerts, driven[:, 1]), layer_scores, batch,
                             "alerts and units driving fused alerts")
            explained = rows.explain(units, kept, events)
            named = {u: labeled(self.parts[i][0].name, r) for u, r in explained.items()}
            for event, unit in driven.tolist():
                reasons[event] = named.get(unit)
            if with_units:
                layer_rows.append(rows.with_reasons(own, layer_scores, explained))
        id_array = text_array(ids)
        one_each = pa.array(np.arange(len(ids) + 1, dtype=np.int32))
        unit = {"unit": id_array, "time": events["timestamp"].combine_chunks().cast(TIME),
                "event_ids": pa.ListArray.from_arrays(one_each, id_array)}
        rows = unit_rows(unit, scores, events, layer=FUSED_NAME, threshold=self.threshold,
                         calibration=self.calibration, reasons=reasons_column(reasons))
        tail_arrays = [pa.array(tails[:, i], mask=np.isnan(tails[:, i])) if ok
                       else pa.nulls(len(ids), pa.float64()) for i, ok in enumerate(known)]
        return pa.RecordBatch.from_arrays([*rows.columns, *tail_arrays],
                                          schema=self.schema), scores, layer_rows

    def _driven(self, layer: int, tails: np.ndarray, drivers: np.ndarray, scores: np.ndarray
                ) -> np.ndarray:
        """The fused alerts that layer `layer` drives, as (event row, unit row) pairs: those
        whose smallest tail probability is its (the first layer's on a tie).

        Shapes:
            tails, drivers: (events, layers); scores: (events,) -> (pairs, 2).
        """
        alert = scores >= self.threshold
        # min-p takes the smallest p; under Fisher it is the strongest evidence of the sum.
        driver = np.argmin(np.where(np.isnan(tails), np.inf, tails), axis=1)
        events = np.flatnonzero(alert & (driver == layer) & (drivers[:, layer] >= 0))
        return np.column_stack([events, drivers[events, layer]]).astype(np.int64)


def labeled(layer: str, reasons: list[Reason]) -> list[Reason]:
    """A layer unit's reasons as a fused alert carries them: each field named with the layer
    it comes from ("layer2: bytes_sent"); the contributions sum to that unit's score in its
    layer, not to the fused score."""
    return [Reason(f"{layer}: {r.field}", r.contribution, r.observed, r.typical)
            for r in reasons]


def thin_calibration(detector: FusedDetector) -> str | None:
    """Why a member's threshold, or the fusion's, rests on too few validation units, each
    named (`reference_shortfall`); None when none does."""
    thin = [(f"{loaded.metadata.model_name} {loaded.metadata.version}",
             reference_shortfall(loaded.calibration, layer.unit))
            for layer, loaded in detector.parts]
    thin.append(("the fused threshold",
                 reference_shortfall(detector.fusion.calibration, "event")))
    return "; ".join(f"{where}: {why}" for where, why in thin if why) or None


def score_fused(registry: ModelRegistry, events: Sequence[DataSource] | pa.Table,
                output: str | Path, *, top_k: int = 10, num_threads: int | None = 1
                ) -> ScoringSummary:
    """Score `events` with the registry's fused detector; one row per event to `output`, and
    beside it, as `score_events` writes them, the incidents and alerts page of its layers'
    own units (each event, edge and window once, at its model's threshold).

    Raises:
        As `FusedDetector`.
    """
    require_registry(registry)
    is_jsonl(output)  # an output suffix of neither format, before any work
    if isinstance(events, DataSource):  # one source: a list of one
        events = [events]
    if not isinstance(events, pa.Table):  # an output that is an input would replace it
        refuse_replacing_inputs(output, output_files(Path(output)), source_files(events),
                                "output")
    started = time.perf_counter()
    detector = FusedDetector(registry)
    collector = None if isinstance(events, pa.Table) else DataCollector(events)  # one or more
    traffic = TrafficOnly()
    table = traffic(next(_tables(events, collector, streaming=False)))
    with _torch_threads(num_threads):
        batch, _, layer_rows = detector.score_with_units(table)
    output = Path(output)
    with FileSet(output_files(output)) as staging:  # published together, or not at all
        staged = staging / output.name
        with atomic_write(staged) as handle:
            out = _Output(handle, staged, top_k, detector.schema)
            try:
                out.write(batch)
            finally:  # a Parquet writer left open complains with a traceback when collected
                top = out.close()
        incidents, _ = write_incidents(
            staged, [pa.Table.from_batches([rows]) for rows in layer_rows])
        fusion = detector.fusion
        summary = ScoringSummary(FUSED_NAME, detector.version, FUSED_NAME, fusion.threshold,
                                 table.num_rows, out.units, out.alerts,
                                 time.perf_counter() - started, str(output), top,
                                 fusion.calibration.rule, fusion.calibration.expected_alert_rate,
                                 incidents=incidents, incidents_output=str(incidents_path(output)),
                                 sensor_records=traffic.left_out,
                                 thin_calibration=thin_calibration(detector))
        count_dropped(summary, collector, staged)
    logger.info("fused %s: %d events, %d alerts", detector.version, table.num_rows, out.alerts)
    return summary
