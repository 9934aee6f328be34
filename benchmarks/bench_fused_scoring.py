"""Scoring a large input with the fused detector: time and peak memory, two trees compared.

`score_fused` holds the whole input: it featurizes every event for each of the three layers,
scores them, explains the alerts and the units driving fused alerts (up to 1,000 of each layer),
gives every unit its events' context, and groups the incidents. Input: the real rows of
../shared/datasets/stratosphere/008-zeek-mixed/data/conn.log.labeled repeated to --rows events
(bench_scoring.py's tiled Zeek TSV log). The fused detector: `maximus-train pipeline` on the
real log (2 epochs, benign rows, the three fields that equal its label dropped), made once
under benchmarks/out/.

Each run is a fresh process (`score_fused(registry, [source], out.parquet)`, one torch
thread) that prints its own peak RSS; the trees run alternating, --repeats times each, and the
medians are compared. `--base TREE` is the baseline tree (e.g. a `git archive` of an older
commit); without it only this tree runs.

    python benchmarks/bench_fused_scoring.py --rows 300000 --repeats 3 --base /tmp/oldtree
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_scoring import SOURCE_LOG, zeek_log  # noqa: E402

OUT = REPO / "benchmarks" / "out"
CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from training.collection.collector import DataSource
from training.registry.registry import ModelRegistry
from training.scoring.fused import score_fused
started = time.perf_counter()
summary = score_fused(ModelRegistry(sys.argv[2]),
                      [DataSource("zeek", "zeek_logs", {"path": sys.argv[3]})], sys.argv[4])
print(json.dumps({"seconds": time.perf_counter() - started, "alerts": summary.alerts,
                  "units": summary.units,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def fused_registry() -> Path:
    """The pipeline's registry with a fused detector (made once)."""
    work = OUT / "fused_run"
    if not (work / "models" / "fusion.json").exists():
        subprocess.run([sys.executable, "-m", "training.cli", "-q", "pipeline", "--source",
                        f"zeek:{SOURCE_LOG}", "--workdir", str(work), "--epochs", "2",
                        "--benign-only", "--drop-field", "direction,local_orig,local_resp"],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return work / "models"


def run(tree: Path, registry: Path, log: Path, folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(registry), str(log),
                          str(folder / "fused.parquet")], check=True, capture_output=True,
                         text=True, cwd=folder)
    return json.loads(out.stdout.strip().splitlines()[-1])


def medians(runs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Each tree's median time and peak memory over its runs."""
    return {name: {key: statistics.median(r[key] for r in rs) for key in ("seconds", "peak_mb")}
            for name, rs in runs.items()}


def ratios(found: dict[str, dict[str, float]]) -> str:
    """This tree's medians over the base's, as one line."""
    ours, base = found["this tree"], found["base"]
    return (f"this tree / base: time {ours['seconds'] / base['seconds']:.2f}, "
            f"peak memory {ours['peak_mb'] / base['peak_mb']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", type=Path, help="the baseline tree (default: none)")
    args = parser.parse_args()
    registry, log = fused_registry(), zeek_log(args.rows)
    trees = {"this tree": REPO, **({"base": args.base.resolve()} if args.base else {})}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, tree in trees.items():
                runs[name].append(run(tree, registry, log, Path(tmp)))
                print(name, runs[name][-1], flush=True)
    found = medians(runs)
    for name, median in found.items():
        print(f"{name}: {args.rows:,} events, {median['seconds']:.1f} s, "
              f"peak {median['peak_mb']:,.0f} MB (medians of {args.repeats})")
    if "base" in found:
        print(ratios(found))


if __name__ == "__main__":
    main()
