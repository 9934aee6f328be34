"""Splitting and validating a 1M x 128 layer-1 dataset: time per step.

Input: the layer-1 vectors of the 9,048 real Zeek conn flows of
../shared/datasets/stratosphere/011-zeek-mixed/data/conn.log.labeled (their labels: malicious,
benign, background = unknown), repeated to --rows rows: copy k is moved k days later and its
hosts get their own names ("<host>#k"), so TEMPORAL and GROUP have the shape of a long capture.

Timed (median of --repeats runs after a warm-up):
  * `create_splits` with STRATIFIED, TEMPORAL and GROUP;
  * `DataValidator(all rows, labels, reference_features=train).validate(check_drift=True)`:
    every check, drift of the whole dataset against the training split;
  * the target: STRATIFIED split + that validation;
  * once: `save_splits` (three .npz files), and a straightforward baseline of the same work
    in the same run: scikit-learn `train_test_split` twice (stratified), whole-matrix numpy
    checks in float64, and scipy's `wasserstein_distance` and `ks_2samp` on every row. The
    scipy part is timed on --baseline-features features (16) and scaled to all of them, to
    keep the run short on a shared machine (its cost is the same for every feature).

    python benchmarks/bench_datasets.py                 # 1M rows, 3 repeats
    python benchmarks/bench_datasets.py --rows 200000 --repeats 1 --no-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE_LOG = REPO.parent / "shared/datasets/stratosphere/011-zeek-mixed/data/conn.log.labeled"
sys.path.insert(0, str(REPO))

from training.collection.collector import DataCollector, DataSource  # noqa: E402
from training.datasets.builder import DatasetBuilder, SplitStrategy  # noqa: E402
from training.datasets.validator import DataValidator  # noqa: E402
from training.data_preprocessor import DataPreprocessor, LayerType  # noqa: E402

DAY = np.timedelta64(86_400_000_000, "us")


def make_dataset(rows: int) -> dict[str, np.ndarray]:
    """The real layer-1 arrays repeated to `rows` rows (see the module docstring)."""
    collector = DataCollector([DataSource("bench", "zeek_logs", {"path": str(SOURCE_LOG)})],
                              progress=False)
    real = DataPreprocessor().featurize(collector.collect_table(), LayerType.LAYER1_SENSORY).arrays
    index = np.arange(rows) % len(real["labels"])
    copy = np.arange(rows) // len(real["labels"])
    tag = np.char.add("#", copy.astype(str))
    return {"features": real["features"][index], "labels": real["labels"][index],
            "sample_ids": np.char.add(real["sample_ids"][index], tag),
            "timestamps": real["timestamps"][index] + copy * DAY,
            "entity": np.char.add(real["entity"][index], tag),
            "attack_type": real["attack_type"][index]}


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds of `repeats` calls after one warm-up call, and the last result."""
    result = fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def baseline(features: np.ndarray, labels: np.ndarray, drift_features: int) -> dict[str, float]:
    """The same work done the straightforward way (timed once; drift on `drift_features`
    features, scaled to all)."""
    from scipy.stats import ks_2samp, wasserstein_distance
    from sklearn.model_selection import train_test_split

    start = time.perf_counter()
    rows = np.arange(len(labels))
    train, rest = train_test_split(rows, train_size=0.7, stratify=labels, random_state=42)
    val, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=42)
    parts = [(features[r], labels[r]) for r in (train, val, test)]
    split_s = time.perf_counter() - start
    start = time.perf_counter()
    x = features.astype(np.float64)
    np.isnan(x).sum(axis=0), np.isinf(x).sum(axis=0)
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        (np.abs((x - mean) / std) > 3).sum(axis=0)
    (np.nanmax(x, axis=0) == np.nanmin(x, axis=0)).sum()
    np.unique(labels, return_counts=True)
    checks_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = parts[0][0]
    for j in range(drift_features):
        wasserstein_distance(reference[:, j], features[:, j])
        ks_2samp(reference[:, j], features[:, j])
    drift_s = (time.perf_counter() - start) * features.shape[1] / drift_features
    return {"split_s": split_s, "checks_s": checks_s, "drift_s": drift_s,
            "validate_s": checks_s + drift_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--baseline-features", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    if not SOURCE_LOG.exists():
        sys.exit(f"needs {SOURCE_LOG} (../shared/datasets)")
    data = make_dataset(args.rows)
    builder = DatasetBuilder(data["features"], data["labels"], data["sample_ids"],
                             timestamps=data["timestamps"],  # GROUP uses the entity column
                             columns={"attack_type": data["attack_type"], "entity": data["entity"]})
    report: dict = {"rows": args.rows, "features": int(data["features"].shape[1]),
                    "load_average": os.getloadavg(), "steps": {}}
    steps = report["steps"]
    for strategy in (SplitStrategy.STRATIFIED, SplitStrategy.TEMPORAL, SplitStrategy.GROUP):
        seconds, splits = timed(lambda s=strategy: builder.create_splits(s), args.repeats)
        steps[f"split_{strategy.value}_s"] = seconds
        print(f"create_splits({strategy.name}): {seconds:.2f} s "
              f"({', '.join(f'{k} {len(v):,}' for k, v in splits.items())})", flush=True)
    splits = builder.create_splits(SplitStrategy.STRATIFIED)
    validator = DataValidator(data["features"], data["labels"],
                              reference_features=splits["train"].features)
    seconds, result = timed(lambda: validator.validate(check_drift=True), args.repeats)
    steps["validate_with_drift_s"] = seconds
    print(f"validate(check_drift=True): {seconds:.2f} s; issues: {result.issue_names()}; "
          f"drifted features: {len(result.statistics['drift']['drifted_features'])}", flush=True)
    target = steps["split_stratified_s"] + seconds
    steps["target_split_plus_validate_s"] = target
    print(f"STRATIFIED split + validation with drift: {target:.2f} s (target <= 60 s)", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        builder.output_dir = Path(folder)
        start = time.perf_counter()
        builder.save_splits(splits, "layer1")
        steps["save_splits_s"] = time.perf_counter() - start
    print(f"save_splits (3 files, once): {steps['save_splits_s']:.2f} s", flush=True)
    if not args.no_baseline:
        base = baseline(data["features"], data["labels"], args.baseline_features)
        report["baseline"] = base
        total = base["split_s"] + base["validate_s"]
        print(f"baseline (once): split {base['split_s']:.2f} s + checks {base['checks_s']:.2f} s"
              f" + drift {base['drift_s']:.2f} s (scaled from {args.baseline_features} features)"
              f" = {total:.2f} s; ours is {total / target:.1f}x faster", flush=True)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {report['peak_rss_mb']:,.0f} MB; load average {report['load_average']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "datasets.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
