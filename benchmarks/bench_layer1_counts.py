"""What layer 1's `l1.v4` value counts cost: featurizing events whose identity fields are set
(demo events: hosts, users, processes, command lines, domains, files), with `l1.v3` (hash
buckets) and with a fitted `l1.v4`, and fitting the counts; median of repeated runs, in one
process, with the ratio to `l1.v3`. `--distinct` makes every command line and domain unique
(a number appended, as installers write GUIDs and tracking sites random names), so that the training values pass
`MAX_VALUES` and the rarer ones go into the seen-value filter.

    python benchmarks/bench_layer1_counts.py --events 200000 --repeats 3 [--distinct]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.collection.event_dicts import events_table  # noqa: E402
from training.demo.generator import generate_demo_events  # noqa: E402
from training.features.layer1 import Layer1Featurizer  # noqa: E402
from training.features.layer1_rarity import ValueCounts  # noqa: E402


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
    parser.add_argument("--distinct", action="store_true",
                        help="every command line and domain unique (module docstring)")
    args = parser.parse_args()
    table = events_table(generate_demo_events(args.events, seed=1)["events"])
    if args.distinct:
        numbers = pc.cast(pa.array(range(table.num_rows)), pa.string())
        for name in ("command_line", "domain"):
            unique = pc.binary_join_element_wise(table[name], numbers, "-")
            table = table.set_column(table.schema.get_field_index(name), name, unique)
    train = table.slice(0, int(0.6 * table.num_rows))
    v3 = Layer1Featurizer(layout="l1.v3")
    v4 = Layer1Featurizer(layout="l1.v4").fit(train)
    base = median_seconds(lambda: v3.featurize(table), args.repeats)
    counted = median_seconds(lambda: v4.featurize(table), args.repeats)
    unfiltered = Layer1Featurizer(layout="l1.v4").fit(train)
    logging.disable(logging.WARNING)  # that the rarer values read as never seen: known here
    unfiltered.counts_ = ValueCounts.fit(train, max_seen=0)
    logging.disable(logging.NOTSET)
    bare = median_seconds(lambda: unfiltered.featurize(table), args.repeats)
    fit = median_seconds(lambda: Layer1Featurizer(layout="l1.v4").fit(train), args.repeats)
    n = table.num_rows
    filters = sum(len(kept.bits) for kept in v4.counts_.seen.values()) / 2**20
    print(f"{n:,} demo events{', command lines and domains unique' if args.distinct else ''}, "
          f"median of {args.repeats}; seen-value filters: {filters:.2f} MiB")
    print(f"  featurize l1.v3: {base:.2f} s ({n / base:,.0f} events/s)")
    print(f"  featurize l1.v4, fitted: {counted:.2f} s ({n / counted:,.0f} events/s; "
          f"{counted / base:.2f}x l1.v3)")
    if filters:
        print(f"  featurize l1.v4 without the filters: {bare:.2f} s (the filters cost "
              f"{counted / bare:.2f}x)")
    print(f"  fit the counts on {train.num_rows:,} training events: {fit:.2f} s")


if __name__ == "__main__":
    main()
