"""`collect` of an archive of many small logs: a part and a checkpoint per file against one
per few seconds.

A Zeek archive holds a file per log type and hour (`conn.00:00:00-01:00:00.log.gz`, ...): a
month is thousands of small files. The input: the real rows of
../shared/datasets/stratosphere/008-zeek-mixed/data/conn.log.labeled cut into --files Zeek TSV
files of --rows-per-file rows (uids made unique, each file an hour later), in one folder.
Timed, alternating, in the same run (median of --repeats): `DataCollector.collect_to()` with
`checkpoint_every=1` (a part and a synced checkpoint per batch: the default before) and with
the default (a part and a checkpoint every `CHECKPOINT_SECONDS`).

    python benchmarks/bench_collect_many_files.py                  # 3,000 files of 10 rows
    python benchmarks/bench_collect_many_files.py --files 500 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_collection import SOURCE_LOG, zeek_header  # noqa: E402

from training.collection.collector import DataCollector, DataSource  # noqa: E402


def write_archive(folder: Path, files: int, rows_per_file: int) -> None:
    """`files` Zeek conn logs of `rows_per_file` real rows each, uids unique, an hour apart."""
    header_lines, fields = zeek_header(SOURCE_LOG)
    header = "\n".join(header_lines) + "\n"
    lines = [x for x in SOURCE_LOG.read_text().splitlines() if x and not x.startswith("#")]
    uid, ts = fields.index("uid"), fields.index("ts")
    n = 0
    for f in range(files):
        rows = []
        for _ in range(rows_per_file):
            values = lines[n % len(lines)].split("\t")
            values[uid] = f"C{n:012d}"
            values[ts] = f"{1_765_000_000 + f * 3600 + n % 3600}.000000"
            rows.append("\t".join(values))
            n += 1
        (folder / f"conn.{f:05d}.log").write_text(header + "\n".join(rows) + "\n")


def collect(logs: Path, out: Path, **how) -> tuple[float, dict, int]:
    started = time.perf_counter()
    collector = DataCollector([DataSource("zeek", "zeek", {"path": str(logs)})],
                              output_dir=out, progress=False, **how)
    events = collector.collect_to()
    return (time.perf_counter() - started, collector.get_stats(),
            sum(1 for _ in events.iterdir()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--rows-per-file", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    runs: dict[str, list] = {"per batch": [], "default": []}
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        write_archive(logs, args.files, args.rows_per_file)
        for repeat in range(args.repeats):
            for name, how in (("per batch", {"checkpoint_every": 1}), ("default", {})):
                seconds, stats, parts = collect(logs, Path(tmp) / f"{name}-{repeat}", **how)
                runs[name].append({"seconds": seconds, "events": stats["events"],
                                   "checkpoints": stats["checkpoints"], "parts": parts})
                print(f"{name:>9}: {stats['events']:,} events from {args.files:,} files in "
                      f"{seconds:.1f} s, {stats['checkpoints']:,} checkpoints, {parts:,} parts",
                      flush=True)
    medians = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    print(f"median of {args.repeats}: per batch {medians['per batch']:.1f} s, default "
          f"{medians['default']:.1f} s, ratio {medians['default'] / medians['per batch']:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "collect_many_files.json").write_text(json.dumps(
        {"files": args.files, "rows_per_file": args.rows_per_file, "runs": runs,
         "medians_s": medians}, indent=2))


if __name__ == "__main__":
    main()
