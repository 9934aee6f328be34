"""Collection throughput: our collector next to a raw pyarrow read of the same file.

Inputs are made by repeating the real Zeek conn rows of
../shared/datasets/stratosphere/008-zeek-mixed/data/conn.log.labeled (23 columns: the Zeek conn
fields plus label and detailedlabel), with each repetition's uid made unique and its ts moved a
day later, so every row is a distinct event. The same rows are written as Zeek TSV, CSV (the
IoT-23 layout), JSON Lines (Zeek JSON) and Parquet.

For each format the script times, in the same run and alternating, (a) the plain pyarrow read a
user would write (`pyarrow.csv.read_csv`, `pyarrow.json.read_json`, `pyarrow.parquet.read_table`)
and (b) `DataCollector.collect_table()` with its defaults (canonical mapping, labels, Community
IDs, content or source ids, dedup, quarantine checks). It reports medians over --repeats runs
and the ratio of our events/s to pyarrow's rows/s.

    python benchmarks/bench_collection.py                 # 1M rows per format
    python benchmarks/bench_collection.py --memory        # + 5M-event streaming peak memory
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SOURCE_LOG = REPO.parent / "shared/datasets/stratosphere/008-zeek-mixed/data/conn.log.labeled"
sys.path.insert(0, str(REPO))

from training.collection.collector import DataCollector, DataSource  # noqa: E402


def zeek_header(path: Path) -> tuple[list[str], list[str]]:
    lines = [l for l in path.read_text().splitlines() if l.startswith("#")]
    header = [l for l in lines if not l.startswith("#close")]
    fields = next(l for l in lines if l.startswith("#fields")).split("\t")[1:]
    return header, fields


def tiled_rows(rows: int) -> tuple[pa.Table, list[str], list[str]]:
    """The real rows as text, repeated to `rows`, with unique uids and shifted times."""
    header, fields = zeek_header(SOURCE_LOG)
    raw = pcsv.read_csv(
        SOURCE_LOG,
        read_options=pcsv.ReadOptions(skip_rows=len(header), column_names=fields),
        parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False, invalid_row_handler=lambda r: "skip"),
        convert_options=pcsv.ConvertOptions(column_types={f: pa.string() for f in fields},
                                            null_values=[], strings_can_be_null=False),
    )
    raw = raw.filter(pc.invert(pc.starts_with(raw["ts"], "#")))
    n = raw.num_rows
    index = np.arange(rows) % n
    repeat = (np.arange(rows) // n).astype(np.int64)
    table = raw.take(pa.array(index))
    uid = pc.binary_join_element_wise(table["uid"], pa.array(repeat.astype(str)), "x")
    ts = pc.add(pc.cast(table["ts"], pa.float64()), pa.array(repeat * 86400.0))
    ts_text = pc.cast(ts, pa.string())
    table = table.set_column(table.column_names.index("uid"), "uid", uid)
    table = table.set_column(table.column_names.index("ts"), "ts", ts_text)
    return table, header, fields


def write_inputs(folder: Path, rows: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"conn_{rows}.{ext}" for k, ext in
             (("zeek_tsv", "log"), ("csv", "csv"), ("jsonl", "jsonl"), ("parquet", "parquet"))}
    if all(p.exists() for p in paths.values()):
        return paths
    table, header, fields = tiled_rows(rows)
    tsv = pcsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    with open(paths["zeek_tsv"], "wb") as out:
        out.write(("\n".join(header) + "\n").encode())
        pcsv.write_csv(table, out, tsv)
    # CSV and JSON: Zeek's "-" (unset) becomes an empty cell / a missing key.
    unset = {f: pc.if_else(pc.equal(table[f], "-"), None, table[f]) for f in fields}
    csv_table = pa.table(unset)
    pcsv.write_csv(csv_table, paths["csv"], pcsv.WriteOptions(quoting_style="needed"))
    typed = DataCollector([DataSource("t", "zeek_logs", {"path": str(paths["zeek_tsv"])})],
                          progress=False, deduplicate=False)
    from training.sources import create_source

    reader = create_source(typed.sources[0])
    batches = [b.table for b in reader.read(str(paths["zeek_tsv"]), {"offset": 0, "line": 1, "record": 0})]
    zeek_typed = pa.concat_tables(batches)
    pq.write_table(zeek_typed, paths["parquet"])
    with open(paths["jsonl"], "wb") as out:
        for batch in zeek_typed.to_batches(65_536):
            for row in batch.to_pylist():
                out.write(orjson.dumps({k: v for k, v in row.items() if v is not None},
                                       option=orjson.OPT_APPEND_NEWLINE))
    return paths


def baseline(kind: str, path: Path, fields: list[str], header_lines: int) -> int:
    if kind == "zeek_tsv":
        table = pcsv.read_csv(path, read_options=pcsv.ReadOptions(skip_rows=header_lines, column_names=fields),
                              parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
                              convert_options=pcsv.ConvertOptions(null_values=["-"], strings_can_be_null=True))
    elif kind == "csv":
        table = pcsv.read_csv(path)
    elif kind == "jsonl":
        table = pjson.read_json(path)
    else:
        table = pq.read_table(path)
    return table.num_rows


SOURCE_TYPES = {"zeek_tsv": "zeek_logs", "csv": "csv_file", "jsonl": "json_file", "parquet": "parquet_file"}


def ours(kind: str, path: Path) -> int:
    collector = DataCollector([DataSource("bench", SOURCE_TYPES[kind], {"path": str(path)})], progress=False)
    table = collector.collect_table()
    if collector.get_stats()["quarantined"]:
        raise RuntimeError(f"{path}: unexpected quarantined rows")
    return table.num_rows


def timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - start, n


def throughput(paths: dict[str, Path], repeats: int) -> list[dict]:
    header, fields = zeek_header(SOURCE_LOG)
    results = []
    for kind, path in paths.items():
        baseline(kind, path, fields, len(header))  # warm the page cache and the allocator
        ours(kind, path)
        base_times, our_times = [], []
        for _ in range(repeats):
            seconds, n_base = timed(baseline, kind, path, fields, len(header))
            base_times.append(seconds)
            seconds, n_ours = timed(ours, kind, path)
            our_times.append(seconds)
        if n_base != n_ours:
            raise RuntimeError(f"{kind}: pyarrow read {n_base} rows, collector {n_ours}")
        base, mine = statistics.median(base_times), statistics.median(our_times)
        results.append({"format": kind, "rows": n_ours, "bytes": path.stat().st_size,
                        "pyarrow_rows_per_s": n_base / base, "ours_events_per_s": n_ours / mine,
                        "ratio": base / mine, "pyarrow_s": base, "ours_s": mine})
        print(f"{kind:9s} {n_ours:>9,} rows  pyarrow {n_base / base:>12,.0f} rows/s   "
              f"ours {n_ours / mine:>12,.0f} events/s   ratio {base / mine:.2f}", flush=True)
    return results


STREAM_CHILD = """
import resource, sys, time
from training.data_collection import DataCollector, DataSource
source, target = sys.argv[1], sys.argv[2]
collector = DataCollector([DataSource("big", "json_file", {"path": source})], progress=False)
start = time.perf_counter()
collector.save_to_file(collector.collect(), target)
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(collector.get_stats()["events"], seconds, peak_mb)
"""


def streaming_memory(folder: Path, events: int) -> dict:
    """Peak RSS of collect() -> save_to_file over a JSONL file of `events` events."""
    paths = write_inputs(folder, 1_000_000)
    big = folder / f"stream_{events}.jsonl"
    if not big.exists():
        lines = paths["jsonl"].read_bytes().splitlines(keepends=True)
        with open(big, "wb") as out:
            for k in range(events // len(lines)):
                for line in lines:  # unique uid per copy keeps every event distinct
                    out.write(line.replace(b'"uid":"', b'"uid":"r%d' % k, 1))
    target = folder / "stream_out.jsonl"
    result = subprocess.run([sys.executable, "-c", STREAM_CHILD, str(big), str(target)],
                            capture_output=True, text=True, cwd=REPO, check=True)
    n, seconds, peak = result.stdout.split()
    target.unlink()
    report = {"events": int(n), "input_bytes": big.stat().st_size, "seconds": float(seconds),
              "peak_rss_mb": float(peak)}
    print(f"streaming {int(n):,} JSONL events through collect() -> save_to_file: "
          f"{float(seconds):.1f} s, peak RSS {float(peak):,.0f} MB", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--memory", action="store_true", help="also run the 5M-event streaming check")
    parser.add_argument("--memory-events", type=int, default=5_000_000)
    args = parser.parse_args()
    if not SOURCE_LOG.exists():
        sys.exit(f"needs {SOURCE_LOG} (../shared/datasets)")
    paths = write_inputs(args.out, args.rows)
    report = {"throughput": throughput(paths, args.repeats)}
    if args.memory:
        report["streaming"] = streaming_memory(args.out, args.memory_events)
    report["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (args.out / "collection.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
