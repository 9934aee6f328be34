"""Tuning speed and result: 50 layer-1 trials on the 10,000-event demo dataset, with pruning.

Data: `write_demo_file(n_events=10_000, seed=42)` (the demo generator), collected, featurized
for layer 1 and split stratified 70/15/15 with the DatasetBuilder (seed 42): 7,000 training
rows (6,300 benign ones are trained on), 1,500 validation rows.

Baseline: the default configuration (the train script's: lr 1e-3, batch 32, hidden 96,
latent 64, dropout 0.2, beta 1) trained exactly like a trial (same 30-epoch limit, early
stopping and seed) and measured on the same metric.

Tuning: `HyperparameterTuner` with the layer-1 objective, metric "loss" (the validation
negative ELBO with beta = 1, so trials with different beta compare on one scale), TPE
(multivariate, constant liar with several workers), median pruning after the warm-up epochs,
`--workers` processes on a journal file. Reported: wall time of the whole study (workers'
start included), fraction of trials pruned, epochs trained over all trials, and the best
validation loss next to the baseline's. Each repeat is a new study (seed + repeat); the
figures are medians over the repeats.

    python benchmarks/bench_tuning.py                     # 50 trials, 2 workers, 1 repeat
    python benchmarks/bench_tuning.py --trials 10 --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from training.tuning.objectives import LayerObjective  # noqa: E402
from training.tuning.tuner import HyperparameterTuner, TuningConfig  # noqa: E402

OUT = REPO / "benchmarks" / "out"


def make_splits(folder: Path, n_events: int) -> tuple[str, str]:
    """The demo dataset's layer-1 train and validation splits (see the module docstring)."""
    from training.collection.collector import DataCollector, DataSource, DataSourceType
    from training.datasets.builder import DatasetBuilder
    from training.demo.generator import write_demo_file
    from training.data_preprocessor import DataPreprocessor, LayerType

    train, val = folder / "layer1_train.npz", folder / "layer1_val.npz"
    if train.exists() and val.exists():
        return str(train), str(val)
    events = write_demo_file(folder / "events.json", n_events=n_events, seed=42)
    source = DataSource("demo", DataSourceType.JSON_FILE, {"path": str(events)})
    table = DataCollector([source], progress=False).collect_table()
    arrays = DataPreprocessor().featurize(table, LayerType.LAYER1_SENSORY)
    columns = {k: v for k, v in arrays.arrays.items()
               if k not in ("features", "labels", "sample_ids")}
    builder = DatasetBuilder(arrays.arrays["features"], arrays.arrays["labels"],
                             arrays.arrays["sample_ids"], output_dir=folder, spec=arrays.spec,
                             layer="layer1_sensory", columns=columns, random_seed=42)
    builder.save_splits(builder.create_splits("stratified"), "layer1")
    return str(train), str(val)


def cpu_seconds() -> float:
    """CPU time of this process and of its ended children (the worker processes)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def baseline(objective: LayerObjective) -> dict:
    """The default configuration, trained as a trial is."""
    study = optuna.create_study(direction=objective.direction)
    study.enqueue_trial(objective.default_params())
    start, cpu = time.perf_counter(), cpu_seconds()
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    return {"val_loss": trial.value, "epochs": len(trial.intermediate_values),
            "seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu,
            "params": trial.params}


def tune(objective: LayerObjective, args: argparse.Namespace, seed: int, folder: Path) -> dict:
    config = TuningConfig(
        study_name=f"bench_{seed}", direction=objective.direction, n_trials=args.trials,
        sampler="tpe", pruner=args.pruner, pruner_n_startup_trials=args.startup,
        pruner_n_warmup_steps=args.warmup, pruner_max_steps=args.max_epochs,
        n_workers=args.workers, seed=seed,
        output_dir=str(folder))
    start, cpu = time.perf_counter(), cpu_seconds()
    load = os.getloadavg()[0]
    result = HyperparameterTuner(config).tune(objective)
    seconds = time.perf_counter() - start
    trials = result.study.get_trials()
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu, "load_before": load,
            "load_after": os.getloadavg()[0], "trials": len(trials), "pruned": pruned,
            "pruned_fraction": pruned / len(trials),
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "epochs": sum(len(t.intermediate_values) for t in trials),
            "best_val_loss": result.best_value, "best_params": result.best_params,
            "best_trial": result.best_trial}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pruner", choices=("median", "hyperband"), default="median")
    parser.add_argument("--startup", type=int, default=5, help="trials before pruning starts")
    parser.add_argument("--warmup", type=int, default=5, help="epochs before a trial can be pruned")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    data_dir = OUT / "tuning_data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train, val = make_splits(data_dir, args.events)
    # One torch thread per trial (the objective's default), for the baseline too.
    objective = LayerObjective("layer1", train, val, metric="loss", max_epochs=args.max_epochs)
    load = os.getloadavg()[0]
    base = baseline(objective)
    runs = []
    for repeat in range(args.repeats):
        folder = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
        try:
            runs.append(tune(objective, args, args.seed + repeat, folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(json.dumps(runs[-1]), file=sys.stderr)
    median = {k: statistics.median(r[k] for r in runs)
              for k in ("seconds", "cpu_seconds", "pruned_fraction", "epochs", "best_val_loss")}
    report = {"settings": vars(args), "load_average_at_start": load,
              "load_average_at_end": os.getloadavg()[0], "cpus": os.cpu_count(),
              "baseline": base, "runs": runs, "median": median,
              "improvement": (base["val_loss"] - median["best_val_loss"]) / base["val_loss"]}
    OUT.mkdir(exist_ok=True)
    (OUT / f"tuning_{args.pruner}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
