"""Detection quality of the layer-1 VAE next to IsolationForest, semi-supervised, on real data.

Both detectors see the same layer-1 vectors (`DataPreprocessor`, the data-free default
transform), are fitted on the same benign rows, and score the same held-back rows; the metrics
come from `training.evaluation.score_metrics.evaluate_scores` (rows with unknown labels left out).
Each protocol runs with seeds 0, 1, 2 (the split where there is one, the VAE's initial weights
and batch order, the forest's trees); the table gives mean ± standard deviation over the seeds.

Protocols:

* `nsl_kdd`: ../shared/datasets/nsl_kdd/KDDTrain+_20Percent.txt (25,192 rows, no timestamps),
  collected as CSV with the README's field map. Per seed, a random 70/30 split of the rows;
  fit on the normal rows of the 70% part, score the whole 30% part.
* `torii_20` and `torii_21` (the IoT-23 protocol of the GNN/TCN issue): fit on the honeypot
  captures 4-1, 5-1, 7-1 (all benign) plus the benign rows of Torii capture 21-1, score all of
  20-1 (16 C&C flows among 3,193 benign); and the reverse (fit with 20-1's benign rows, score
  21-1, 14 C&C flows). With so few positives the ranks of the C&C flows are reported too.

The VAE: `train_layer1_vae` with its default architecture, batch 64, learning rate 1e-3, at most
--epochs epochs with early stopping (patience 5) on the validation loss of 15% of the fitting
rows, held out from its training. IsolationForest: scikit-learn, 200 trees, fitted on the same
training rows (without the validation part). Nothing is tuned on the scored rows.

    python benchmarks/bench_detection.py                   # all protocols, 3 seeds
    python benchmarks/bench_detection.py --protocols torii_20 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"
sys.path.insert(0, str(REPO))

from sklearn.ensemble import IsolationForest  # noqa: E402

from training.collection.collector import DataCollector, DataSource  # noqa: E402
from training.evaluation.score_metrics import evaluate_scores  # noqa: E402
from training.data_preprocessor import DataPreprocessor, LayerType  # noqa: E402
from training.train_layer1_vae import default_config, train_layer1_vae  # noqa: E402
from training.tests.test_real_datasets import NSL_KDD_COLUMNS, NSL_KDD_FIELDS  # noqa: E402

HONEYPOTS = [f"iot23/CTU-Honeypot-Capture-{k}-labeled.csv" for k in ("4-1", "5-1", "7-1")]
TORII = {"20": "iot23/CTU-Malware-Capture-20-1-labeled.csv",
         "21": "iot23/CTU-Malware-Capture-21-1-labeled.csv"}
METRICS = ("roc_auc", "pr_auc_threat", "pr_auc_benign", "detection_at_fpr_0.01")


def layer1(path: str, **source_args) -> dict[str, np.ndarray]:
    """Layer-1 features, labels and attack types of one real file."""
    params = {"path": str(DATA / path), **source_args.pop("connection_params", {})}
    table = DataCollector([DataSource(Path(path).stem, "csv_file", params, **source_args)],
                          progress=False).collect_table()
    arrays = DataPreprocessor().featurize(table, LayerType.LAYER1_SENSORY).arrays
    return {k: arrays[k] for k in ("features", "labels", "attack_type")}


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def take(data: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in data.items()}


def protocols(names: list[str]) -> dict:
    """name -> function(seed) -> (fit rows, scored rows)."""
    out = {}
    if "nsl_kdd" in names:
        kdd = layer1("nsl_kdd/KDDTrain+_20Percent.txt", field_map=NSL_KDD_FIELDS,
                     connection_params={"has_header": False, "column_names": NSL_KDD_COLUMNS})

        def nsl_kdd(seed: int):
            order = np.random.default_rng(seed).permutation(len(kdd["labels"]))
            cut = int(0.7 * len(order))
            train, test = take(kdd, order[:cut]), take(kdd, order[cut:])
            return take(train, np.flatnonzero(train["labels"] == 0)), test

        out["nsl_kdd"] = nsl_kdd
    if any(n.startswith("torii") for n in names):
        honeypots = concat([layer1(p) for p in HONEYPOTS])
        captures = {k: layer1(p) for k, p in TORII.items()}
        for scored, other in (("20", "21"), ("21", "20")):
            def torii(seed: int, scored=scored, other=other):
                benign = take(captures[other], np.flatnonzero(captures[other]["labels"] == 0))
                return concat([honeypots, benign]), captures[scored]

            if f"torii_{scored}" in names:
                out[f"torii_{scored}"] = torii
    return out


def figures(scores: np.ndarray, test: dict[str, np.ndarray]) -> dict:
    m = evaluate_scores(scores, test["labels"], test["attack_type"])
    known = test["labels"] >= 0
    s, y = scores[known], test["labels"][known] == 1
    ranks = sorted(int((s > v).sum()) + 1 for v in s[y])  # 1 = the highest score; ties share
    return {"roc_auc": m.roc_auc, "pr_auc_threat": m.pr_auc,
            "pr_auc_benign": m.per_class_metrics["benign"]["pr_auc"],
            "detection_at_fpr_0.01": m.detection_at_fpr["0.01"]["detection_rate"],
            "detection_at_fpr_0.001": m.detection_at_fpr["0.001"]["detection_rate"],
            "n_benign": m.per_class_metrics["benign"]["support"],
            "n_threat": m.per_class_metrics["threat"]["support"],
            "threat_ranks": ranks if len(ranks) <= 50 else None}


def run(fit: dict[str, np.ndarray], test: dict[str, np.ndarray], seed: int, epochs: int,
        workdir: Path) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(fit["labels"]))
    n_val = int(0.15 * len(order))
    val, train = order[:n_val], order[n_val:]
    x = fit["features"]
    config = default_config(num_epochs=epochs, batch_size=64, seed=seed, num_threads=1,
                            early_stopping_patience=5, checkpoint_dir=str(workdir),
                            log_dir=str(workdir), tensorboard=False, save_last_state=False)
    start = time.perf_counter()
    model, results = train_layer1_vae(x[train], np.zeros(len(train), np.int8), x[val],
                                      np.zeros(len(val), np.int8), config)
    vae_fit_s = time.perf_counter() - start
    with torch.inference_mode():
        vae_scores = model.eval().anomaly_score(torch.from_numpy(test["features"])).numpy()
    start = time.perf_counter()
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(x[train])
    forest_scores = -forest.score_samples(test["features"])  # higher = more anomalous
    forest_fit_s = time.perf_counter() - start
    return {
        "Layer1VAE": {**figures(vae_scores, test), "fit_s": vae_fit_s,
                      "epochs": results["epochs_trained"], "best_epoch": results["best_epoch"]},
        "IsolationForest": {**figures(forest_scores, test), "fit_s": forest_fit_s},
    }


def summary(runs: list[dict]) -> dict:
    """mean, sd (ddof=1) and per-seed values of each metric."""
    out = {}
    for key in METRICS:
        values = np.array([r[key] for r in runs], dtype=float)
        sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[key] = {"mean": float(values.mean()), "sd": sd, "values": values.tolist()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocols", nargs="+", default=["nsl_kdd", "torii_20", "torii_21"],
                        choices=["nsl_kdd", "torii_20", "torii_21"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")
    logging.basicConfig(level=logging.WARNING)
    report: dict = {"seeds": args.seeds, "epochs": args.epochs, "load_before": os.getloadavg(),
                    "protocols": {}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in protocols(args.protocols).items():
            per_model: dict[str, list] = {"Layer1VAE": [], "IsolationForest": []}
            for seed in args.seeds:
                fit, test = make(seed)
                result = run(fit, test, seed, args.epochs, Path(tmp))
                for model, figures_ in result.items():
                    per_model[model].append({"seed": seed, "fit_rows": len(fit["labels"]),
                                             **figures_})
                    print(f"{name} seed {seed} {model:15s} " + "  ".join(
                        f"{k} {figures_[k]:.4f}" for k in METRICS)
                        + f"  fit {figures_['fit_s']:.1f} s", flush=True)
            report["protocols"][name] = {m: {"runs": r, "summary": summary(r)}
                                         for m, r in per_model.items()}
            for model, r in per_model.items():
                s = summary(r)
                rows.append(f"| {name} | {model} | " + " | ".join(
                    f"{s[k]['mean']:.3f} ± {s[k]['sd']:.3f}" for k in METRICS) + " |")
    report["load_after"] = os.getloadavg()
    print("\n| protocol | model | ROC-AUC | PR-AUC threat | PR-AUC benign | detection at FPR 1% |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
