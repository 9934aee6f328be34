"""Where each demo scenario ranks among a pipeline run's incidents, per pipeline seed, and the
layer-1 and fused test figures beside them: the run `training/tests/test_run_alerts.py` makes
(10,000 demo events of generator seed 42, every layer benign-only, 20 epochs, thresholds at
the 99th percentile), with its `seed` changed and, for a comparison, another layer-1 layout.

    python benchmarks/pipeline_scenario_ranks.py --seeds 42 0 1 2 --layout l1.v3

A scenario's rank is its best incident among its attacker windows
(`training.demo.scenario_ranks`); "-": no incident there. About 30 s a seed on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.demo.generator import write_demo_file  # noqa: E402
from training.demo.scenario_ranks import best_incident_ranks  # noqa: E402
from training.features import layer1  # noqa: E402
from training.pipeline.config import config_from_dict  # noqa: E402
from training.pipeline.run import run_pipeline  # noqa: E402
from training.scoring.tables import read_incidents  # noqa: E402


def one_run(seed: int, folder: Path) -> str:
    demo = write_demo_file(folder / "demo.json", n_events=10_000, seed=42)
    result = run_pipeline(config_from_dict({
        "workdir": str(folder / "work"), "seed": seed,
        "sources": [{"type": "json_file", "path": str(demo)}],
        "train": {"epochs": 20, "benign_only": True, "threshold": "quantile:0.99"}}))
    report = Path(result.report).parent
    ranks = best_incident_ranks(read_incidents(report / result.alerts["incidents_file"]),
                                pq.read_table(Path(result.workdir) / "events.parquet"))
    layer_1 = next(o for o in result.layers if o.layer == "layer1").metrics
    fused = result.fusion.get("test", {}).get("fused", {})
    shown = ", ".join(f"{s} {'-' if r is None else r}" for s, r in ranks.items())
    return (f"seed {seed}: {shown}; layer 1 ROC-AUC {layer_1['roc_auc']:.3f} PR-AUC "
            f"{layer_1['pr_auc']:.3f}; fused ROC-AUC {fused['roc_auc']:.3f} PR-AUC "
            f"{fused['pr_auc']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1, 2])
    parser.add_argument("--layout", choices=sorted(layer1.LAYOUTS), default=layer1.VERSION,
                        help="layer 1's default layout for these runs")
    args = parser.parse_args()
    init = layer1.Layer1Featurizer.__init__
    names = init.__code__.co_varnames[1:init.__code__.co_argcount]
    defaults = dict(zip(names[-len(init.__defaults__):], init.__defaults__))
    defaults["layout"] = args.layout  # the default featurizer's layout, for this process only
    init.__defaults__ = tuple(defaults.values())
    print(f"layout {args.layout}")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="maximus-ranks-") as folder:
            print(one_run(seed, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
