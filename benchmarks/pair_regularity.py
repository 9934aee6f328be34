"""How regular each communicating pair's timing is, benign against threat: would a beacon feature help?

    python benchmarks/pair_regularity.py                      # demo, IoT-23 42-1 and 44-1
    python benchmarks/pair_regularity.py --captures demo

A beacon calls home at a steady interval, so a "regularity" feature (how alike a source ->
destination pair's successive inter-arrival gaps are) is the usual idea for catching C&C that
no single event gives away. Before adding one to a layer, this measures it on the harness's
development captures only (every row of the capture, fit and test parts; evaluation captures
are never run here). Per pair with at least `--min-events` events: the share of successive gap
pairs within 35% of each other (|log(gap_i / gap_i-1)| < log 1.35; gaps of a second or less,
bursts, are left out) and the gaps' coefficient of variation. Printed per label (0 benign, 1
threat, over the pair's events) and per attack type: the pairs' count and the 10th / 50th /
90th percentiles.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.evaluation.harness.captures import DATASETS, capture_names, load_capture  # noqa: E402

CLOSE = np.log(1.35)  # successive gaps this alike count as regular
BURST_S = 1.0


def pair_stats(table: pa.Table, min_events: int) -> list[tuple[int, str, float, float]]:
    """(label, attack types, regular share, gap CV) of each pair with enough spaced events."""
    seconds = table["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e6
    threat = np.asarray(table["is_threat"].to_pylist(), dtype=object)
    attacks = table["attack_type"].to_pylist()
    pairs: dict[tuple, list[int]] = defaultdict(list)
    for i, pair in enumerate(zip(table["source_ip"].to_pylist(), table["dest_ip"].to_pylist())):
        if None not in pair:
            pairs[pair].append(i)
    stats = []
    for rows in pairs.values():
        rows = np.asarray(rows)[np.argsort(seconds[rows], kind="stable")]
        gaps = np.diff(seconds[rows])
        gaps = gaps[gaps > BURST_S]
        if len(rows) < min_events or len(gaps) < 3:
            continue
        regular = float(np.mean(np.abs(np.log(gaps[1:] / gaps[:-1])) < CLOSE))
        known = [bool(t) for t in threat[rows] if t is not None]
        label = int(any(known)) if known else -1
        kinds = "|".join(sorted({attacks[i] for i in rows if attacks[i]})) or "-"
        stats.append((label, kinds, regular, float(gaps.std() / gaps.mean())))
    return stats


def report(name: str, stats: list[tuple[int, str, float, float]]) -> None:
    print(f"\n{name}: {len(stats)} pairs")
    print("| pairs | n | regular share p10 / p50 / p90 | gap CV p10 / p50 / p90 |")
    print("|---|---:|---|---|")
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for label, kinds, regular, cv in stats:
        groups[{0: "benign", 1: "threat", -1: "unlabeled"}[label]].append((regular, cv))
        if label == 1:
            groups[f"threat: {kinds}"].append((regular, cv))
    for group, values in sorted(groups.items()):
        regular, cv = (np.percentile(np.asarray(v), [10, 50, 90]) for v in zip(*values))
        print(f"| {group} | {len(values)} | {' / '.join(f'{x:.2f}' for x in regular)} | "
              f"{' / '.join(f'{x:.2f}' for x in cv)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", nargs="+", default=capture_names("development"),
                        choices=capture_names("development"))
    parser.add_argument("--min-events", type=int, default=6)
    parser.add_argument("--datasets", default=str(DATASETS))
    args = parser.parse_args()
    for name in args.captures:
        capture = load_capture(name, args.datasets)
        report(name, pair_stats(pa.concat_tables([capture.train, capture.val, capture.test]),
                                args.min_events))


if __name__ == "__main__":
    main()
