"""Detection quality of the layer-2 GNN and the layer-3 TCN on real labeled captures.

Protocol (semi-supervised, as the detectors are meant to be used): each model is fitted on
benign flows only (Background/unknown is never benign), with the last 20% (by time) of each fit
capture held out as validation (early stopping); then every flow of the test capture is
featurized and scored. Metrics leave unknown units out. Next to each model, in the same run, on
the same units and the same training units, sklearn's IsolationForest on the same aggregated
features (and on a smaller set, see below).

| layer | unit | model | IsolationForest inputs |
|---|---|---|---|
| 2 | edge (src -> dst, 5-min window) | Layer2GNN (defaults) | "context": edge features + both ends' node features (what the GNN reconstructs); "edge": edge features |
| 3 | window (source IP, 1-min target bucket, 30 buckets of history) | Layer3TCN (defaults) | "full": history + target; "target": target bucket only |

Scores map back to flows (a flow takes its edge's / its target window's score) and are
evaluated again per flow, with each flow's own label.

Scenarios:

* iot23-20: IoT-23 Torii. Fit on the three honeypot captures plus the benign rows of 21-1;
  score 20-1 (16 C&C flows among 3,193 benign). iot23-21: the reverse (fit with 20-1's benign
  rows, score 21-1, 14 C&C flows). The ranks of the C&C units are listed (1 = top score;
  ties count against the model).
* dev-44, dev-42: the same protocol on IoT-23 captures 42-1 (Trojan) and 44-1 (Mirai), fit
  with the honeypots plus the benign rows of the other one. Only these were used to compare
  model variants (see BENCHMARKS.md); the Torii and stratosphere runs just report.
* strat: stratosphere 011 -> 008 (fit on 011's benign flows, score 008). There a flow is
  malicious exactly when it comes in from the internet, so direction leaks the label.
  strat-masked: every flow of both captures re-oriented by a keyed hash of its two addresses
  (which end is "source" no longer says who initiated or which end is local; bytes and packets
  swap with the ends; the service port stays). Nothing is tuned on (b).

For each metric: the mean over `--seeds` training seeds, and a 95% bootstrap interval of that
mean (units resampled with replacement within each class, `--bootstrap` times).

    python benchmarks/bench_layers23.py                   # 3 seeds, 1000 resamples
    python benchmarks/bench_layers23.py --seeds 1 --bootstrap 200 --scenarios iot23-20
    python benchmarks/bench_layers23.py --demo           # training time on the demo events
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from scipy.stats import rankdata
from sklearn.ensemble import IsolationForest

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared/datasets"
sys.path.insert(0, str(REPO))

from training.collection.collector import DataCollector, DataSource  # noqa: E402
from training.evaluation.metrics import roc_auc  # noqa: E402
from training.features.layer2 import Layer2GraphBuilder  # noqa: E402
from training.features.layer3 import Layer3WindowBuilder  # noqa: E402
from training.kernels.hashing import hash_array  # noqa: E402
from training.layers.layer2_batches import Layer2Data  # noqa: E402
from training.train_layer2_gnn import default_config as gnn_config  # noqa: E402
from training.train_layer2_gnn import train_layer2_gnn  # noqa: E402
from training.layers.layer3_batches import Layer3Data  # noqa: E402
from training.train_layer3_tcn import default_config as tcn_config  # noqa: E402
from training.train_layer3_tcn import train_layer3_tcn  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bootstrap_metrics import bootstrap_metrics  # noqa: E402

HONEYPOTS = [f"iot23/CTU-Honeypot-Capture-{n}-labeled.csv" for n in ("4-1", "5-1", "7-1")]
TORII = {"20": "iot23/CTU-Malware-Capture-20-1-labeled.csv",
         "21": "iot23/CTU-Malware-Capture-21-1-labeled.csv"}
DEV = {"42": "iot23/CTU-Malware-Capture-42-1-labeled.csv",  # Trojan: 6 file-download flows
       "44": "iot23/CTU-Malware-Capture-44-1-labeled.csv"}  # Mirai: 25 C&C, 1 DDoS flow
CONN = "stratosphere/{}-zeek-mixed/data/conn.log.labeled"
SCENARIOS = ("iot23-20", "iot23-21", "strat", "strat-masked", "dev-42", "dev-44")
REORIENT_KEY = 0x5EED_0F_D1EC_7104


def collect(relative: str) -> pa.Table:
    path = DATASETS / relative
    kind = "csv_file" if path.suffix == ".csv" else "zeek_logs"
    return DataCollector([DataSource(path.stem, kind, {"path": str(path)})],
                         progress=False).collect_table()


def benign(table: pa.Table) -> pa.Table:
    return table.filter(pc.equal(table["is_threat"], 0))


def time_split(tables: list[pa.Table], fraction: float = 0.8) -> tuple[pa.Table, pa.Table]:
    """Each capture cut at its own `fraction` time quantile: (early parts, late parts)."""
    early, late = [], []
    for table in tables:
        micros = table["timestamp"].cast(pa.int64()).to_numpy()
        cut = np.quantile(micros, fraction)
        early.append(table.filter(pa.array(micros < cut)))
        late.append(table.filter(pa.array(micros >= cut)))
    return pa.concat_tables(early), pa.concat_tables(late)


def reorient(table: pa.Table) -> pa.Table:
    """Each flow with its ends ordered by a keyed hash of the addresses (see the docstring)."""
    swap = pa.array(hash_array(table["source_ip"], key=REORIENT_KEY)
                    > hash_array(table["dest_ip"], key=REORIENT_KEY))
    columns = {}
    for left, right in (("source_ip", "dest_ip"), ("bytes_sent", "bytes_received"),
                        ("packets_sent", "packets_received")):
        columns[left] = pc.if_else(swap, table[right], table[left])
        columns[right] = pc.if_else(swap, table[left], table[right])
    for name, values in columns.items():
        table = table.set_column(table.column_names.index(name), name, values)
    return table


def scenario_tables(name: str) -> tuple[list[pa.Table], pa.Table]:
    """(fit captures, benign rows only; test capture, every row)."""
    if name.startswith(("iot23-", "dev-")):
        captures = TORII if name.startswith("iot23-") else DEV
        test = name.split("-")[1]
        (other,) = set(captures) - {test}
        fit = [benign(collect(path)) for path in HONEYPOTS] + [benign(collect(captures[other]))]
        return fit, collect(captures[test])
    fit, test = [benign(collect(CONN.format("011")))], collect(CONN.format("008"))
    if name == "strat-masked":
        fit, test = [reorient(t) for t in fit], reorient(test)
    return fit, test


# ---- models --------------------------------------------------------------------------------

def _quiet(config_fn, folder: str, seed: int):
    return config_fn(seed=seed, checkpoint_dir=folder, log_dir=folder, tensorboard=False,
                     save_last_state=False, num_threads=1)


def _forest(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(train)
    return -forest.score_samples(test)  # higher = more anomalous


def run_layer2(train: pa.Table, val: pa.Table, test: pa.Table, seeds: list[int]) -> dict:
    builder = Layer2GraphBuilder()
    graphs = {k: builder.featurize(t) for k, t in (("train", train), ("val", val), ("test", test))}
    labels = test["is_threat"].to_numpy()
    out = {"GNN": [], "IF context": [], "IF edge": []}
    seconds = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as folder:
            model, results = train_layer2_gnn(graphs["train"], graphs["val"],
                                              _quiet(gnn_config, folder, seed))
        seconds.append(results["train_time_s"])
        spec = results["feature_spec"]
        fit, scored = Layer2Data(graphs["train"], spec), Layer2Data(graphs["test"], spec)
        out["GNN"].append(scored.edge_scores(model))
        train_ctx, test_ctx = _context(fit)[fit.tensors["fit_mask"].numpy()], _context(scored)
        out["IF context"].append(_forest(train_ctx, test_ctx, seed))
        out["IF edge"].append(_forest(train_ctx[:, :fit.edge_dim], test_ctx[:, :fit.edge_dim], seed))
    events = scored.edge_events(np.zeros(len(scored.labels())))
    units = {"labels": scored.labels(), "flow_labels": labels[events["event_row"]],
             "flow_unit": events["edge"], "flows_left_out": test.num_rows - len(events["edge"]),
             "train_units": results["train_units"], "train_s": seconds}
    return {"units": units, "scores": {k: np.stack(v) for k, v in out.items()}}


def _context(data: Layer2Data) -> np.ndarray:
    """Per edge: its scaled features, then its source's and destination's, (edges, 18 + 2*13)."""
    t = data.tensors
    window = np.repeat(np.arange(len(data)), np.diff(data.edge_ptr))
    ends = t["edge_index"].numpy() + data.node_ptr[window]
    x = t["x"].numpy()
    return np.concatenate([t["edge_attr"].numpy(), x[ends[0]], x[ends[1]]], axis=1)


def run_layer3(train: pa.Table, val: pa.Table, test: pa.Table, seeds: list[int]) -> dict:
    builder = Layer3WindowBuilder()
    windows = {k: builder.featurize(t) for k, t in (("train", train), ("val", val), ("test", test))}
    labels = test["is_threat"].to_numpy()
    out = {"TCN": [], "IF full": [], "IF target": []}
    seconds = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as folder:
            model, results = train_layer3_tcn(windows["train"], windows["val"],
                                              _quiet(tcn_config, folder, seed))
        seconds.append(results["train_time_s"])
        spec = results["feature_spec"]
        fit, scored = Layer3Data(windows["train"], spec), Layer3Data(windows["test"], spec)
        out["TCN"].append(scored.scores(model))
        flat = lambda d, rows: np.concatenate(  # noqa: E731
            [d.history.numpy()[rows].reshape(len(rows), -1), d.target.numpy()[rows]], axis=1)
        every = np.arange(len(scored))
        out["IF full"].append(_forest(flat(fit, fit.fit_rows), flat(scored, every), seed))
        out["IF target"].append(_forest(fit.target.numpy()[fit.fit_rows], scored.target.numpy(), seed))
    events = scored.window_events(np.zeros(len(scored)))
    units = {"labels": scored.labels(), "flow_labels": labels[events["event_row"]],
             "flow_unit": events["window"], "flows_left_out": test.num_rows - len(events["window"]),
             "train_units": results["train_units"], "train_s": seconds}
    return {"units": units, "scores": {k: np.stack(v) for k, v in out.items()}}


# ---- evaluation ----------------------------------------------------------------------------

def positive_ranks(scores: np.ndarray, labels: np.ndarray) -> list[float]:
    """Rank (1 = highest) of every positive among the labeled units, median over seeds;
    tied units all take the worst rank of their tie."""
    keep = labels >= 0
    ranks = np.stack([rankdata(-s[keep], method="max") for s in scores])
    return sorted(np.median(ranks[:, labels[keep] == 1], axis=0).tolist())


def evaluate(run: dict, bootstrap: int, rng: np.random.Generator, with_ranks: bool) -> dict:
    u = run["units"]
    report = {"units": {"labeled": int((u["labels"] >= 0).sum()),
                        "positive": int((u["labels"] == 1).sum()),
                        "flows": int((u["flow_labels"] >= 0).sum()),
                        "positive_flows": int((u["flow_labels"] == 1).sum()),
                        "flows_left_out": u["flows_left_out"], "train_units": u["train_units"],
                        "train_s": [round(s, 1) for s in u["train_s"]]}, "models": {}}
    for name, scores in run["scores"].items():
        flow_scores = scores[:, u["flow_unit"]]
        entry = {"unit": bootstrap_metrics(scores, u["labels"], bootstrap, rng),
                 "flow": bootstrap_metrics(flow_scores, u["flow_labels"], bootstrap, rng)}
        if with_ranks:
            entry["unit_ranks"] = positive_ranks(scores, u["labels"])
            entry["flow_ranks"] = positive_ranks(flow_scores, u["flow_labels"])
        report["models"][name] = entry
    return report


def markdown(results: dict) -> str:
    lines = ["| scenario | layer | model | level | ROC-AUC | PR-AUC | DR @ 1% FPR |",
             "|---|---|---|---|---|---|---|"]
    for scenario, layers in results.items():
        for layer, report in layers.items():
            for model, entry in report["models"].items():
                for level in ("unit", "flow"):
                    m = entry[level]
                    cells = [f"{m[k]['mean']:.3f} [{m[k]['ci'][0]:.3f}, {m[k]['ci'][1]:.3f}]"
                             for k in ("roc_auc", "pr_auc", "dr_at_1pct_fpr")]
                    unit = {"layer2": "edge", "layer3": "window"}[layer] if level == "unit" else "flow"
                    lines.append(f"| {scenario} | {layer[-1]} | {model} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def demo_timing(seed: int = 0) -> dict:
    """Train each model with its defaults on the demo events (temporal 70/15/15 split of the
    windows); wall-clock seconds of `train_layerN_...` and the test split's ROC-AUC."""
    from training.datasets.window_splits import split_layer2, split_layer3
    from training.demo.generator import write_demo_file

    path = REPO / "demo/synthetic_events.json"
    if not path.exists():
        write_demo_file(path)
    table = DataCollector([DataSource("demo", "json_file", {"path": str(path)})],
                          progress=False).collect_table()
    out = {}
    for layer, build, split, train_fn, config_fn, data_cls in (
            ("layer2", Layer2GraphBuilder, split_layer2, train_layer2_gnn, gnn_config, Layer2Data),
            ("layer3", Layer3WindowBuilder, split_layer3, train_layer3_tcn, tcn_config, Layer3Data)):
        parts = split(build().featurize(table), "temporal")
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            model, results = train_fn(parts["train"], parts["val"], _quiet(config_fn, folder, seed))
            seconds = time.perf_counter() - start
        test = data_cls(parts["test"], results["feature_spec"])
        scores = test.edge_scores(model) if layer == "layer2" else test.scores(model)
        labels = test.labels()
        out[layer] = {"seconds": round(seconds, 1), "epochs": results["epochs_trained"],
                      "best_epoch": results["best_epoch"], "train_units": results["train_units"],
                      "test_roc_auc": roc_auc(scores[labels >= 0], labels[labels >= 0] == 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--layers", nargs="+", choices=("layer2", "layer3"),
                        default=["layer2", "layer3"])
    parser.add_argument("--out", default=str(REPO / "benchmarks/out/layers23.json"))
    parser.add_argument("--demo", action="store_true",
                        help="only time the training of each model on the demo events")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    if args.demo:
        print(json.dumps(demo_timing(), indent=1))
        return
    if not DATASETS.is_dir():
        sys.exit(f"real datasets not found at {DATASETS}")
    seeds = list(range(args.seeds))
    rng = np.random.default_rng(0)
    results: dict = {}
    for scenario in args.scenarios:
        fit, test = scenario_tables(scenario)
        train, val = time_split(fit)
        results[scenario] = {}
        for layer in args.layers:
            start = time.perf_counter()
            run = (run_layer2 if layer == "layer2" else run_layer3)(train, val, test, seeds)
            results[scenario][layer] = evaluate(run, args.bootstrap, rng,
                                                with_ranks=not scenario.startswith("strat"))
            print(f"{scenario} {layer}: {time.perf_counter() - start:.0f} s "
                  f"{results[scenario][layer]['units']}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": seeds, "bootstrap": args.bootstrap,
                               "results": results}, indent=1))
    print(markdown(results))
    for scenario, layers in results.items():
        for layer, report in layers.items():
            for model, entry in report["models"].items():
                if "unit_ranks" in entry:
                    print(f"{scenario} {layer} {model}: positive unit ranks {entry['unit_ranks']} "
                          f"of {report['units']['labeled']}; flow ranks {entry['flow_ranks']} "
                          f"of {report['units']['flows']}")


if __name__ == "__main__":
    main()
