"""What layer 1's `l1.v4` value counts cost: featurizing events whose identity fields are set
(demo events: hosts, users, processes, command lines, domains, files), with `l1.v3` (hash
buckets) and with a fitted `l1.v4`, and fitting the counts; median of repeated runs, in one
process, with the ratio to `l1.v3`.

    python benchmarks/bench_layer1_counts.py --events 200000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.collection.event_dicts import events_table  # noqa: E402
from training.demo.generator import generate_demo_events  # noqa: E402
from training.features.layer1 import Layer1Featurizer  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = events_table(generate_demo_events(args.events, seed=1)["events"])
    train = table.slice(0, int(0.6 * table.num_rows))
    v3 = Layer1Featurizer(layout="l1.v3")
    v4 = Layer1Featurizer(layout="l1.v4").fit(train)
    base = median_seconds(lambda: v3.featurize(table), args.repeats)
    counted = median_seconds(lambda: v4.featurize(table), args.repeats)
    fit = median_seconds(lambda: Layer1Featurizer(layout="l1.v4").fit(train), args.repeats)
    n = table.num_rows
    print(f"{n:,} demo events, median of {args.repeats}:")
    print(f"  featurize l1.v3: {base:.2f} s ({n / base:,.0f} events/s)")
    print(f"  featurize l1.v4, fitted: {counted:.2f} s ({n / counted:,.0f} events/s; "
          f"{counted / base:.2f}x l1.v3)")
    print(f"  fit the counts on {train.num_rows:,} training events: {fit:.2f} s")


if __name__ == "__main__":
    main()
