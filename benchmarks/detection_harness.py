"""The detection harness: every layer's candidates next to fixed baselines, in one run.

It replaces bench_detection.py (layer 1) and bench_layers23.py (layers 2 and 3), which measured
with different protocols. One protocol here, for every layer, on the same units (see
`training.evaluation.harness`: the captures and their development/evaluation roles, the
candidates and the baselines, the levels and the paired intervals):

    python benchmarks/detection_harness.py                       # everything, two processes
    python benchmarks/detection_harness.py --captures iot23-44 --seeds 0 --bootstrap 200
    python benchmarks/detection_harness.py --captures ../my/zeek-labeled --seeds 0 --jobs 1

A capture named by its path is one of your own (`training.evaluation.harness.own`: its first
half by time, benign rows, fits; its second half is scored): its tables are printed and its JSON
written only to an --out you give, never into BENCHMARKS.md.

A run of every named capture and layer writes the full results to --out (JSON; default
benchmarks/out/detection_harness.json) and its tables between the harness markers of
--benchmarks (BENCHMARKS.md), unless --no-write. A run of some of them prints its tables and
writes its JSON only to an --out you give: written there, they would replace every other
capture's (trial W). Run from the repository root (the real captures are read from
../shared/datasets unless --datasets says otherwise).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.artifacts.atomic import atomic_write  # noqa: E402
from training.evaluation.harness import HarnessConfig, capture_names, run_harness  # noqa: E402
from training.evaluation.harness.own import is_own  # noqa: E402
from training.evaluation.harness.tables import markdown, write_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captures", nargs="+", default=capture_names(), metavar="NAME|PATH",
                        help=f"captures to run: {', '.join(capture_names())}, or the path of "
                             "a labeled capture of your own (default: every named one)")
    parser.add_argument("--layers", nargs="+", choices=("layer1", "layer2", "layer3"),
                        default=["layer1", "layer2", "layer3"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2,
                        help="captures run at once, each in its own process (the machine's "
                             "cores: one training thread each)")
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, help="the results' JSON (default: "
                        "benchmarks/out/detection_harness.json; none for a capture of your own)")
    parser.add_argument("--benchmarks", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true",
                        help="print the tables; write neither the JSON nor BENCHMARKS.md")
    parser.add_argument("--tables-from", type=Path, metavar="JSON",
                        help="run nothing: write the tables of a saved run's JSON")
    args = parser.parse_args(argv)
    if args.tables_from:
        tables = markdown(json.loads(args.tables_from.read_text()))
        print(tables)
        if not args.no_write:
            write_section(args.benchmarks, tables)
        return 0
    own = [name for name in args.captures if name not in capture_names()]
    unknown = [name for name in own if not is_own(name)]
    if unknown:
        parser.error(f"unknown capture(s) {', '.join(unknown)}; known: "
                     f"{', '.join(capture_names())}, or the path of a capture of your own")
    # Only a run of everything is the product's benchmark: a part would replace the whole.
    whole = set(args.captures) == set(capture_names()) and len(set(args.layers)) == 3
    if args.out is None and whole:
        args.out = REPO / "benchmarks/out/detection_harness.json"
    if not args.datasets.is_dir() and len(own) < len(args.captures):
        print(f"error: the real captures are not at {args.datasets} (--datasets)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)  # small models: one thread is faster on a shared machine
    config = HarnessConfig(captures=args.captures, layers=args.layers, seeds=args.seeds,
                           epochs=args.epochs, bootstrap=args.bootstrap, datasets=args.datasets)
    start = time.perf_counter()
    results = run_harness(config, log=lambda line: print(
        f"[{time.perf_counter() - start:6.0f} s] {line}", file=sys.stderr, flush=True),
        jobs=args.jobs)
    tables = markdown(results)
    print(tables)
    if args.no_write:
        return 0
    if args.out:
        with atomic_write(args.out) as handle:
            handle.write(json.dumps(results, indent=1).encode())
        print(f"wrote {args.out}", file=sys.stderr)
    if whole:
        write_section(args.benchmarks, tables)
        print(f"wrote the tables in {args.benchmarks}", file=sys.stderr)
    else:
        print(f"the tables of {', '.join(args.captures)} ({', '.join(args.layers)}) are not "
              f"written into {args.benchmarks}: only a run of every capture and layer is",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
