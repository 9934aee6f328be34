"""Featurization speed: time to turn a canonical event table into each layer's features.

Input: the real Zeek conn rows of
../shared/datasets/stratosphere/011-zeek-mixed/data/conn.log.labeled (9,048 flows over 24 h,
about 1,500 source IPs), collected once, then repeated to --rows events with unique event ids.
Two layouts of the copies, because window and entity counts drive the cost:

* `days`: copy k is moved k days later (like bench_collection.py): 1M events span ~110 days,
  so many windows and buckets with the capture's own density;
* `hosts`: copy k keeps the times and gets its own addresses (copy 0 the real ones, the others
  distinct addresses of 100.64.0.0/10): 1M events in one day of a network ~110 times larger,
  so few windows and many entities per window.

Each layer has one function `bench_<layer>(table, repeats) -> dict` (median seconds over
`repeats` runs after a warm-up run); `main()` runs every one in `LAYERS` on every layout and
writes the figures to benchmarks/out/features.json.

    python benchmarks/bench_features.py                  # 1M events, both layouts
    python benchmarks/bench_features.py --rows 100000 --layout days --repeats 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[1]
SOURCE_LOG = REPO.parent / "shared/datasets/stratosphere/011-zeek-mixed/data/conn.log.labeled"
sys.path.insert(0, str(REPO))

from training.collection.collector import DataCollector, DataSource  # noqa: E402
from training.features.encoding import as_array  # noqa: E402
from training.features.layer1 import Layer1Featurizer  # noqa: E402
from training.features.layer2 import Layer2GraphBuilder  # noqa: E402
from training.features.layer3 import Layer3WindowBuilder  # noqa: E402
from training.data_preprocessor import DataPreprocessor, LayerType  # noqa: E402
from training.features.traffic import entity_codes  # noqa: E402

DAY_US = 86_400 * 1_000_000
CGNAT = 100 << 24 | 64 << 16  # 100.64.0.0/10: addresses for the copies in the hosts layout


def make_events(rows: int, layout: str) -> pa.Table:
    """The real rows repeated to `rows` events (see the module docstring for the layouts)."""
    collector = DataCollector([DataSource("bench", "zeek_logs", {"path": str(SOURCE_LOG)})],
                              progress=False)
    real = collector.collect_table()
    index = np.arange(rows) % real.num_rows
    copy = np.arange(rows) // real.num_rows
    table = real.take(pa.array(index))
    suffix = pa.array(np.char.add("#", copy.astype(str)))
    columns = {"event_id": pc.binary_join_element_wise(table["event_id"], suffix, "")}
    if layout == "days":
        micros = pc.add(table["timestamp"].cast(pa.int64()), pa.array(copy * DAY_US))
        columns["timestamp"] = micros.cast(table.schema.field("timestamp").type)
    elif layout == "hosts":
        (source, dest), names = entity_codes(as_array(table["source_ip"]), as_array(table["dest_ip"]))
        for name, codes in (("source_ip", source), ("dest_ip", dest)):
            columns[name] = pc.if_else(pa.array(copy == 0), table[name],
                                       dotted_quads(CGNAT + (copy - 1) * len(names) + codes))
    else:
        raise ValueError(f"layout must be days or hosts, got {layout!r}")
    for name, values in columns.items():
        table = table.set_column(table.column_names.index(name), name, values)
    return table


def dotted_quads(addresses: np.ndarray) -> pa.Array:
    """IPv4 addresses (integers) as text."""
    octets = [((addresses >> shift) & 255).astype(str) for shift in (24, 16, 8, 0)]
    text = octets[0]
    for octet in octets[1:]:
        text = np.char.add(np.char.add(text, "."), octet)
    return pa.array(text)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds of `repeats` calls after one warm-up call, and the last result."""
    result = fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def bench_layer1(table: pa.Table, repeats: int, loop_events: int = 2_000) -> dict:
    """Layer-1 vectors: the batch transform on the whole table, against the per-event API
    (`DataPreprocessor.preprocess_event` on each of the first `loop_events` events as dicts,
    the seed's quick-start loop) measured in the same run."""
    featurizer = Layer1Featurizer()
    build_s, _ = timed(lambda: featurizer.featurize(table), repeats)
    events = table.slice(0, loop_events).to_pylist()
    preprocessor = DataPreprocessor()
    loop_s, _ = timed(lambda: [preprocessor.preprocess_event(e, layers=[LayerType.LAYER1_SENSORY])
                               for e in events], 1)
    batch_rate, loop_rate = table.num_rows / build_s, len(events) / loop_s
    return {"build_s": build_s, "events_per_s": batch_rate, "per_event_loop_events_per_s": loop_rate,
            "ratio_to_loop": batch_rate / loop_rate}


def bench_layer2(table: pa.Table, repeats: int, layer1_mean: bool = False) -> dict:
    """Layer-2 graphs: the build (arrays), then every `Data` object made from them."""
    builder = Layer2GraphBuilder(layer1=Layer1Featurizer() if layer1_mean else None)
    build_s, graphs = timed(lambda: builder.featurize(table), repeats)
    data_s, _ = timed(lambda: list(graphs), max(1, repeats // 2))
    return {"build_s": build_s, "to_data_s": data_s, "events_per_s": table.num_rows / build_s,
            "layer1_mean": layer1_mean, **graphs.stats}


def bench_layer3(table: pa.Table, repeats: int) -> dict:
    """Layer-3 windows: (windows, 30, 11) histories, targets, labels, provenance."""
    build_s, windows = timed(lambda: Layer3WindowBuilder().featurize(table), repeats)
    return {"build_s": build_s, "events_per_s": table.num_rows / build_s,
            "x_mb": windows.X.nbytes / 1e6, **windows.stats}


LAYERS: dict[str, Callable[[pa.Table, int], dict]] = {
    "layer1": bench_layer1,
    "layer2": bench_layer2,
    "layer3": bench_layer3,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layout", choices=("days", "hosts", "both"), default="both")
    parser.add_argument("--layers", nargs="+", choices=sorted(LAYERS), default=sorted(LAYERS))
    parser.add_argument("--layer1-mean", action="store_true",
                        help="also time layer 2 with the mean layer-1 vector in node features")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    if not SOURCE_LOG.exists():
        sys.exit(f"needs {SOURCE_LOG} (../shared/datasets)")
    report: dict = {"rows": args.rows, "source": str(SOURCE_LOG.relative_to(REPO.parent)), "runs": []}
    for layout in (("days", "hosts") if args.layout == "both" else (args.layout,)):
        table = make_events(args.rows, layout)
        for layer in args.layers:
            result = {"layer": layer, "layout": layout, **LAYERS[layer](table, args.repeats)}
            report["runs"].append(result)
            extra = (f", {result['to_data_s']:.2f} s more for all Data objects"
                     if "to_data_s" in result else "")
            if "ratio_to_loop" in result:
                extra = (f", per-event loop {result['per_event_loop_events_per_s']:,.0f} events/s"
                         f" (batch/loop {result['ratio_to_loop']:.0f}x)")
            print(f"{layer} {layout:5s} {table.num_rows:,} events: {result['build_s']:.2f} s "
                  f"({result['events_per_s']:,.0f} events/s){extra}; "
                  + ", ".join(f"{k} {result[k]:,}" for k in ("graphs", "nodes", "edges", "windows",
                                                              "entities") if k in result),
                  flush=True)
            if layer == "layer2" and args.layer1_mean:
                result = {"layer": "layer2+l1", "layout": layout,
                          **bench_layer2(table, args.repeats, layer1_mean=True)}
                report["runs"].append(result)
                print(f"layer2 with mean layer-1 vectors {layout:5s}: {result['build_s']:.2f} s",
                      flush=True)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "features.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
