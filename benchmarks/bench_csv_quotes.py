"""Reading CSV with quotes: the cost of records that may span lines (RFC 4180).

Three files of --rows rows (time, two addresses, a port, a message), written once: `plain` (no
quote), `quoted` (every field quoted, as Python's csv.QUOTE_ALL writes) and `inch` (a stray
`"` inside an unquoted field on every line: `27" screen`). Timed: the CSV source's read of the
whole file (`create_source(...).read`), median of --repeats. Run it on two trees, alternating,
to compare commits (`MAXIMUS_TREE` is the tree whose `training` is imported; default this one):

    python benchmarks/bench_csv_quotes.py
    MAXIMUS_TREE=/path/to/old/tree python benchmarks/bench_csv_quotes.py
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("MAXIMUS_TREE", str(Path(__file__).resolve().parents[1])))

from training.sources import DataSource, create_source  # noqa: E402
from training.sources.base import START  # noqa: E402


def write_files(folder: Path, rows: int) -> dict[str, Path]:
    paths = {name: folder / f"{name}.csv" for name in ("plain", "quoted", "inch")}
    header = ["ts", "src_ip", "dst_ip", "dst_port", "message"]
    with open(paths["plain"], "w", newline="") as plain, \
            open(paths["quoted"], "w", newline="") as quoted, \
            open(paths["inch"], "w", newline="") as inch:
        writers = (csv.writer(plain), csv.writer(quoted, quoting=csv.QUOTE_ALL))
        for writer in writers:
            writer.writerow(header)
        inch.write(",".join(header) + "\n")
        for n in range(rows):
            row = [1_765_000_000 + n, f"10.0.{n % 7}.{n % 250}", "93.184.216.34", 443,
                   f"logon of user{n % 97} from workstation {n % 13}"]
            for writer in writers:
                writer.writerow(row)
            inch.write(",".join(map(str, row[:4])) + f",bought a 27\" screen {n}\n")
    return paths


def read_seconds(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    source = create_source(DataSource("t", "csv_file", {"path": str(path)}))
    rows = sum(batch.table.num_rows for batch in source.read(str(path), START))
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.rows)
        for name, path in paths.items():
            runs = [read_seconds(path) for _ in range(args.repeats)]
            print(f"{name:>6}: {runs[0][1]:,} rows, median {statistics.median(s for s, _ in runs):.3f} s "
                  f"of {args.repeats} reads", flush=True)


if __name__ == "__main__":
    main()
