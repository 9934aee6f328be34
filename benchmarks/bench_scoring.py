"""Scoring throughput: 1M Zeek conn events scored end to end with a production layer-1 model.

Input: the real rows of ../shared/datasets/stratosphere/008-zeek-mixed/data/conn.log.labeled
repeated to --rows events as a Zeek TSV log (unique uids, each repetition a day later; the
same file as bench_collection.py). The model: a Layer1VAE with the default architecture (128 ->
96 -> 96 -> 64), trained briefly with `train_layer1_vae` on the benign rows of the real log,
its threshold calibrated on validation rows, registered and promoted to production in a
temporary registry.

Timed, alternating, in the same run (median of --repeats):

* `collect`: `DataCollector(...).collect_table()` of the log, the baseline: reading the events
  is the floor of any end-to-end scoring;
* `score`: `score_events(registry, "layer1_vae", sources, out.parquet)`: collect, featurize
  with the model's FeatureSpec, score, threshold, write Parquet (unit, time, score, is_alert,
  event_ids) and the summary.

Then, once, where the time goes: the stages of the same work run one after the other on the
whole table (collect, featurize, model scores, threshold + write).

    python benchmarks/bench_scoring.py                    # 1M events, 3 repeats
    python benchmarks/bench_scoring.py --rows 100000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_collection import SOURCE_LOG, tiled_rows  # noqa: E402

from training.collection.collector import DataCollector, DataSource  # noqa: E402
from training.detectors.base import model_scores, row_batches  # noqa: E402
from training.features.layer1 import Layer1Featurizer  # noqa: E402
from training.train_layer1_vae import default_config, train_layer1_vae  # noqa: E402
from training.registry.registry import ModelMetadata, ModelRegistry  # noqa: E402
from training.layers.registry import layer_for_spec  # noqa: E402
from training.scoring.alerts import AlertRows  # noqa: E402
from training.scoring.batch import score_events  # noqa: E402

OUT = REPO / "benchmarks" / "out"


def zeek_log(rows: int) -> Path:
    """The tiled Zeek TSV log (written once, reused)."""
    path = OUT / f"conn_{rows}.log"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    table, header, _ = tiled_rows(rows)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(("\n".join(header) + "\n").encode())
        pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=False, delimiter="\t",
                                                     quoting_style="none"))
    tmp.replace(path)
    return path


def sources(path: Path) -> list[DataSource]:
    return [DataSource("zeek", "zeek_logs", {"path": str(path)})]


def production_model(folder: Path) -> ModelRegistry:
    """A briefly trained Layer1VAE, registered as production in `folder`."""
    table = DataCollector(sources(SOURCE_LOG), progress=False).collect_table()
    featurizer = Layer1Featurizer()
    features = featurizer.featurize(table)
    labels = table["is_threat"].to_numpy(zero_copy_only=False).astype(np.int8)
    rng = np.random.default_rng(0)
    val = rng.random(len(features)) < 0.3
    config = default_config(num_epochs=5, batch_size=256, checkpoint_dir=str(folder / "ckpt"),
                            log_dir=str(folder / "logs"), tensorboard=False)
    _, results = train_layer1_vae(features[~val], labels[~val], features[val], labels[val],
                                  config, feature_spec=featurizer.spec)
    registry = ModelRegistry(folder / "models")
    registry.register_model(results["checkpoint"], ModelMetadata(
        "layer1_vae", "1.0.0", "layer1", stage="production",
        metrics={"val_loss": float(results["best_val_loss"])}))
    return registry


def stages(registry: ModelRegistry, path: Path, out: Path) -> dict[str, float]:
    """Seconds of each stage, run one after the other on the whole input."""
    loaded = registry.get_model("layer1_vae", stage="production")
    times = {}
    torch.set_num_threads(1)  # as score_events does
    t = time.perf_counter()
    table = DataCollector(sources(path), progress=False).collect_table()
    times["collect"] = time.perf_counter() - t
    t = time.perf_counter()
    layer = layer_for_spec(loaded.feature_spec, "the benchmark's model")
    units = layer.featurize(table)
    times["featurize"] = time.perf_counter() - t
    t = time.perf_counter()
    x = torch.from_numpy(units.features)
    scores = model_scores(loaded.model, row_batches(x))
    times["model"] = time.perf_counter() - t
    t = time.perf_counter()
    # The alert rows as score_events writes them: context, percentile, reasons of alerts.
    rows = AlertRows(layer, loaded.model, float(loaded.threshold), loaded.calibration)
    pq.write_table(pa.Table.from_batches([rows.rows(units, scores, table)]), out)
    times["threshold_write"] = time.perf_counter() - t
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = zeek_log(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = production_model(work)
        runs: dict[str, list[float]] = {"collect": [], "score": []}
        summary = None
        for _ in range(args.repeats):
            t = time.perf_counter()
            n = DataCollector(sources(path), progress=False).collect_table().num_rows
            runs["collect"].append(time.perf_counter() - t)
            summary = score_events(registry, "layer1_vae", sources(path), work / "scores.parquet")
            runs["score"].append(summary.seconds)
            assert summary.events == n == args.rows, (summary.events, n)
        breakdown = stages(registry, path, work / "stages.parquet")
    seconds = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "rows": args.rows, "repeats": args.repeats, "torch_threads": 1,
        "collect_events_per_s": args.rows / seconds["collect"],
        "score_events_per_s": args.rows / seconds["score"],
        "ratio_score_to_collect": seconds["collect"] / seconds["score"],
        "seconds": seconds, "runs": runs, "stages_s": breakdown,
        "alerts": summary.alerts, "threshold": summary.threshold,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scoring.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
