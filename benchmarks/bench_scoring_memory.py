"""Peak memory and time of a batch `score` to a file, two trees compared.

A batch score streams the events, writes every scored unit to the output file, then builds the
incidents and the alerts page from that file: the part whose memory grew with the input when it
read the whole file back. Input: bench_scoring.py's tiled Zeek TSV log of --rows events (the
real rows of ../shared/datasets/stratosphere/008-zeek-mixed/data/conn.log.labeled repeated).
The model: the layer-1 VAE of `maximus-train pipeline --benign-only` on the real log
(bench_fused_scoring.py's run under benchmarks/out/fused_run, made once), at its default
threshold (about 0.1% of benign units alert); with --best-f1, bench_scoring.py's briefly
trained model at its best-F1 threshold (about 75% of the tiled events alert), made once under
benchmarks/out/scoring_model/.

Each run is a fresh process (`score_events(registry, "layer1_vae", [source], out)`, one torch
thread) that prints its own peak RSS; the trees run alternating, --repeats times each, and the
medians are compared. `--base TREE` is the baseline tree (e.g. a `git archive` of an older
commit); without it only this tree runs. The last run of each tree keeps its incidents file and
alerts page, and they are compared byte for byte.

    python benchmarks/bench_scoring_memory.py --rows 1000000 --format parquet --base /tmp/old
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_fused_scoring import fused_registry, medians, ratios  # noqa: E402
from bench_scoring import OUT, production_model, zeek_log  # noqa: E402

CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from training.collection.collector import DataSource
from training.registry.registry import ModelRegistry
from training.scoring.batch import score_events
started = time.perf_counter()
summary = score_events(ModelRegistry(sys.argv[2]), "layer1_vae",
                       [DataSource("zeek", "zeek_logs", {"path": sys.argv[3]})], sys.argv[4])
print(json.dumps({"seconds": time.perf_counter() - started, "alerts": summary.alerts,
                  "units": summary.units, "incidents": summary.incidents,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def best_f1_registry() -> Path:
    """bench_scoring.py's production layer-1 model's registry (made once)."""
    folder = OUT / "scoring_model"
    if not (folder / "models").exists():
        production_model(folder)
    return folder / "models"


def run(tree: Path, registry: Path, log: Path, output: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(registry), str(log),
                          str(output)], check=True, capture_output=True, text=True,
                         cwd=output.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def digests(output: Path) -> dict[str, str]:
    """sha256 of the incidents file and alerts page JSON written beside `output`."""
    files = (output.with_name(f"{output.stem}.incidents{output.suffix}"),
             output.with_name(f"{output.stem}.alerts.json"))
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--base", type=Path, help="the baseline tree (default: none)")
    parser.add_argument("--best-f1", action="store_true",
                        help="bench_scoring.py's model at its best-F1 threshold")
    args = parser.parse_args()
    registry = best_f1_registry() if args.best_f1 else fused_registry()
    log = zeek_log(args.rows)
    trees = {"this tree": REPO, **({"base": args.base.resolve()} if args.base else {})}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {}
        for i, name in enumerate(trees):
            (Path(tmp) / str(i)).mkdir()
            outputs[name] = Path(tmp) / str(i) / f"scores.{args.format}"
        for _ in range(args.repeats):
            for name, tree in trees.items():
                runs[name].append(run(tree, registry, log, outputs[name]))
                print(name, runs[name][-1], flush=True)
        written = {name: digests(output) for name, output in outputs.items()}
    found = medians(runs)
    for name, median in found.items():
        print(f"{name}: {args.rows:,} events to {args.format}, {median['seconds']:.1f} s, "
              f"peak {median['peak_mb']:,.0f} MB (medians of {args.repeats}); {written[name]}")
    if "base" in found:
        print(f"{ratios(found)}; incidents and page "
              f"{'identical' if written['this tree'] == written['base'] else 'DIFFER'}")
    print(json.dumps({"rows": args.rows, "format": args.format, "best_f1": args.best_f1,
                      "runs": runs}))


if __name__ == "__main__":
    main()
