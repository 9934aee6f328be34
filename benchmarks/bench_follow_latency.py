"""Write-to-alert latency of live scoring (`maximus-train score --follow`), at steady rates.

A writer process (`training.tests.zeek_writer`) appends Zeek conn lines at a steady rate (each
line's `ts` is the wall-clock time it was written, flushed at once) and rotates the log every
`--rotate-every` lines. The scorer runs as users run it: `python -m training.cli score --follow`
on the live conn.log, in its own process, with a default-architecture Layer1VAE (seed 0,
untrained: weights do not change the cost) calibrated on a sample of the writer's lines so that
`--alert-share` of them alert (1% by default, a busy SOC's rate; 0: half of them, the worst
case for the ECS documents and their reasons), or with `--model fused`: the fused detector of
that VAE (`fusion.json`, min-p, its own calibration at the same share). Window layers in a
fusion cost nothing per micro-batch under --follow (their windows count as open:
`training.scoring.fused`), so the fused run measures what a live fused score costs.
This process watches the alerts file every 5 ms; an alert's latency is the time its line was
seen minus its event's `ts`: write, poll wait, parse, featurize, score, ECS document, append
and fsync included.

Window layers (`--models gnn tcn`): an untrained layer-2 GNN and layer-3 TCN (seed 0, default
architecture) with windows (layer 2) or buckets (layer 3; history 30) of `--window-seconds`,
calibrated the same way on the sample. Their units are scored when event time passes the
window's end by `--window-grace` (`training.scoring.follow_windows`); the writer stamps lines
with wall-clock time, so a window closes at its end plus the grace, and an alert's latency is
"from window close": per window, the time its first unit's line was seen in the scores file
minus (the window's end + grace); all of a window's units leave in one batch. What it measures
is the scoring of a whole window at once (its events featurized, its units scored and
explained), which grows with the events in a window: rate x window length.

    python benchmarks/bench_follow_latency.py              # layer 1 and fused, 1k and 10k events/s
    python benchmarks/bench_follow_latency.py --models fused --rates 1000 --seconds 5
    python benchmarks/bench_follow_latency.py --models gnn tcn --window-seconds 5 --seconds 20
    python benchmarks/bench_follow_latency.py --models vae --rates 10000 --checkpoint-intervals 0 2

Writes benchmarks/out/follow_latency.json (follow_latency_windows.json for window models
only).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.artifacts.model_files import save_model  # noqa: E402
from training.detectors.gnn import Layer2GNN  # noqa: E402
from training.detectors.tcn import Layer3TCN  # noqa: E402
from training.detectors.vae import Layer1VAE  # noqa: E402
from training.features.layer2 import Layer2GraphBuilder  # noqa: E402
from training.features.layer3 import Layer3WindowBuilder  # noqa: E402
from training.layers.layer2_batches import Layer2Data, fit_layer2_scaling  # noqa: E402
from training.layers.layer3_batches import Layer3Data, fit_layer3_scaling  # noqa: E402
from training.features.layer1 import Layer1Featurizer  # noqa: E402
from training.evaluation.calibration import Calibration  # noqa: E402
from training.evaluation.fusion import Fusion, fused_scores  # noqa: E402
from training.registry.registry import ModelMetadata, ModelRegistry  # noqa: E402
from training.scoring.fused import save_fusion  # noqa: E402
from training.collection.collector import DataCollector, DataSource  # noqa: E402
from training.tests.zeek_writer import header, line  # noqa: E402

def sample(root: Path, events: int = 5000, rate: float = 1e4):
    """`events` of the writer's lines at `rate` per second from now, collected."""
    path = root / f"sample-{events}-{rate:g}" / "conn.log"
    path.parent.mkdir(parents=True)
    now = time.time()
    path.write_text(header(now) + "".join(line(n, now + n / rate) for n in range(events)))
    return DataCollector([DataSource("s", "zeek", {"path": str(path)})],
                         progress=False).collect_table()


def sample_scores(model: Layer1VAE, root: Path) -> np.ndarray:
    """The model's scores of 5,000 of the writer's lines, written now."""
    table = sample(root)
    with torch.inference_mode():
        scores = model.anomaly_score(torch.from_numpy(Layer1Featurizer().featurize(table)))
    return scores.numpy().astype(np.float64)


def register(root: Path, alert_share: float) -> dict[str, float]:
    """Register the seed-0 VAE as "vae" and its fusion as "fused", each calibrated on a sample
    of the writer's lines so that `alert_share` of them alert. Returns their thresholds."""
    torch.manual_seed(0)
    model = Layer1VAE().eval()
    scores = sample_scores(model, root)
    rule = f"quantile:{1.0 - alert_share}"
    calibration = Calibration.fit(scores, rule=rule)
    weights = root / "src" / "vae.pt"
    save_model(model, weights, feature_spec=Layer1Featurizer().spec,
               threshold=calibration.threshold, extra={"calibration": calibration.to_dict()})
    registry = ModelRegistry(root / "models")
    registry.register_model(weights, ModelMetadata("vae", "1.0.0", "layer1", stage="production"))
    fused = fused_scores(calibration.tail_probability(scores)[:, None])  # (events,)
    fusion = Fusion("min-p", ({"layer": "layer1", "model_name": "vae", "version": "1.0.0"},),
                    Calibration.fit(fused, rule=rule))
    save_fusion(fusion, registry.registry_dir)
    return {"vae": calibration.threshold, "fused": fusion.threshold}


def register_windows(root: Path, alert_share: float, window_seconds: float,
                     rate: int, windows: int = 4) -> dict[str, float]:
    """Register an untrained layer-2 GNN as "gnn-RATE" and layer-3 TCN as "tcn-RATE" (seed
    0) with windows of `window_seconds`, their scaling and calibration fitted on `windows` windows
    of the writer's lines at `rate` (a window's aggregates grow with the rate). Returns their
    thresholds."""
    table = sample(root, int(windows * window_seconds * rate), rate)
    registry = ModelRegistry(root / "models")
    thresholds = {}
    torch.manual_seed(0)
    for name, layer in (("gnn", "layer2"), ("tcn", "layer3")):
        if layer == "layer2":
            units = Layer2GraphBuilder(window_seconds=window_seconds).featurize(table)
            spec = fit_layer2_scaling(units, benign_only=False)
            data = Layer2Data(units, spec)
            model = Layer2GNN(node_dim=data.node_dim, edge_dim=data.edge_dim).eval()
            scores = data.edge_scores(model)
        else:
            units = Layer3WindowBuilder(bucket_seconds=window_seconds).featurize(table)
            spec = fit_layer3_scaling(units, benign_only=False)
            data = Layer3Data(units, spec)
            model = Layer3TCN(input_dim=data.input_dim).eval()
            scores = data.scores(model)
        calibration = Calibration.fit(scores.astype(np.float64),
                                      rule=f"quantile:{1.0 - alert_share}")
        weights = root / "src" / f"{name}-{rate}.pt"
        save_model(model, weights, feature_spec=spec, threshold=calibration.threshold,
                   extra={"calibration": calibration.to_dict()})
        registry.register_model(weights, ModelMetadata(f"{name}-{rate}", "1.0.0", layer,
                                                       stage="production"))
        thresholds[f"{name}-{rate}"] = calibration.threshold
    return thresholds


WINDOW_MODELS = ("gnn", "tcn")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_rate(root: Path, model: str, rate: int, seconds: float, poll: float,
             rotate_every: int, repeat: int = 0, grace: float = 0.0,
             window_seconds: float = 0.0, checkpoint: float = 2.0) -> dict:
    """One scorer of `model`, one writer at `rate` events/s for `seconds`; the latencies
    (window models: of each window, from its close to its first scored unit)."""
    windowed = model in WINDOW_MODELS
    run = f"{model}-{rate}-{repeat}-{checkpoint:g}"
    logs, alerts = root / f"logs-{run}", root / f"alerts-{run}.jsonl"
    logs.mkdir()
    (logs / "conn.log").write_text(header(time.time()))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    state = root / f"scores-{run}.jsonl.state" / "state.json"
    scorer = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "score", "--model",
         f"{model}-{rate}" if windowed else model, "--registry-dir",
         str(root / "models"), "--input", f"zeek:{logs / 'conn.log'}", "--output",
         str(root / f"scores-{run}.jsonl"), "--alerts", str(alerts), "--follow",
         "--poll-interval", str(poll), "--window-grace", str(grace),
         "--checkpoint-interval", str(checkpoint)], env=env,
        stdout=subprocess.PIPE, text=True)
    while not state.exists():
        time.sleep(0.05)
    events = int(rate * seconds)
    cpu_before = os.times()
    writer = subprocess.Popen([sys.executable, "-m", "training.tests.zeek_writer", str(logs),
                               "--events", str(events), "--rate", str(rate), "--rotate-every",
                               str(rotate_every)], env=env, stdout=subprocess.DEVNULL)
    latencies: list[float] = []
    closed: dict[str, float] = {}  # window start -> when its first unit was seen
    offset, pending = 0, b""
    deadline = time.monotonic() + seconds + 120
    scores, caught_up, scored, scores_at = root / f"scores-{run}.jsonl", None, 0, 0
    # Window models: every unit of a window leaves at once, so each window counts once: the
    # scores file (every unit, alerting or not) tells when it left.
    watched = scores if windowed else alerts
    while time.monotonic() < deadline:
        with open(watched, "rb") if watched.exists() else open(os.devnull, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        now = time.time()
        offset += len(data)
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        for raw in lines:
            doc = json.loads(raw)
            if windowed:
                closed.setdefault(doc["time"], now)
                continue
            since = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
            latencies.append(now - since.timestamp())
        # Scores are appended before the alerts of the same poll: once every event has its
        # score line, the last alerts follow within that poll.
        if windowed:  # the last windows stay open: done once the scores have gone quiet
            if caught_up is None and writer.poll() is not None:
                caught_up = time.monotonic()
            if caught_up is not None and data:
                caught_up = time.monotonic()
            if caught_up is not None and time.monotonic() - caught_up > 3.0 + grace:
                break
        elif caught_up is None and writer.poll() is not None and scores.exists():
            with open(scores, "rb") as handle:  # only what was added: this loop shares the CPU
                handle.seek(scores_at)
                more = handle.read()
            scores_at += len(more)
            scored += more.count(b"\n")
            if scored >= events:
                caught_up = time.monotonic()
        if caught_up is not None and time.monotonic() - caught_up > 1.0 and not data:
            break
        time.sleep(0.005)
    scorer.terminate()
    out, _ = scorer.communicate(timeout=60)
    cpu_after = os.times()
    units = [json.loads(x)["unit"] for x in scores.read_bytes().splitlines()]
    for start, seen in closed.items():
        since = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
        latencies.append(seen - (since + window_seconds + grace))
    alerted = alerts.read_bytes().count(b"\n") if alerts.exists() else 0
    return {"model": model, "rate": rate, "events": events, "scored": len(units),
            "scored_distinct": len(set(units)), "alerts": alerted, "windows": len(closed),
            "poll_seconds": poll, "checkpoint_seconds": checkpoint,
            "p50_s": percentile(latencies, 0.50), "p95_s": percentile(latencies, 0.95),
            "p99_s": percentile(latencies, 0.99), "max_s": max(latencies),
            "mean_s": statistics.fmean(latencies),
            "children_cpu_s": (cpu_after.children_user + cpu_after.children_system)
            - (cpu_before.children_user + cpu_before.children_system),
            "scorer_said": out.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=("vae", "fused", *WINDOW_MODELS),
                        default=["vae", "fused"],
                        help="vae: the layer-1 model; fused: its fused detector; gnn, tcn: "
                             "the window layers (latency from window close)")
    parser.add_argument("--window-seconds", type=float, default=5.0,
                        help="window (layer 2) and bucket (layer 3) length of gnn and tcn")
    parser.add_argument("--sample-windows", type=int, default=4,
                        help="windows of the writer's lines gnn and tcn are calibrated on")
    parser.add_argument("--window-grace", type=float, default=1.0,
                        help="seconds a window waits past its end (score --window-grace)")
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each model and rate, interleaved; medians reported")
    parser.add_argument("--poll-interval", type=float, default=0.25)
    parser.add_argument("--checkpoint-intervals", type=float, nargs="+", default=[2.0],
                        help="score --checkpoint-interval of each run (several: compared, "
                             "interleaved)")
    parser.add_argument("--rotate-every", type=int, default=20000)
    parser.add_argument("--alert-share", type=float, default=0.01,
                        help="share of events that alert (calibrated on a sample); 0: half")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    report: dict = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        report["thresholds"] = register(root, args.alert_share or 0.5)
        for rate in args.rates if set(args.models) & set(WINDOW_MODELS) else ():
            report["thresholds"].update(register_windows(
                root, args.alert_share or 0.5, args.window_seconds, rate, args.sample_windows))
            report["window_seconds"], report["window_grace"] = (args.window_seconds,
                                                                args.window_grace)
        report["alert_share_asked"] = args.alert_share
        for repeat in range(args.repeats):  # interleaved: the load changes as they go
            for model, rate, checkpoint in itertools.product(args.models, args.rates,
                                                             args.checkpoint_intervals):
                result = run_rate(root, model, rate, args.seconds, args.poll_interval,
                                  args.rotate_every, repeat, args.window_grace,
                                  args.window_seconds, checkpoint)
                result["load_after_run"] = os.getloadavg()[0]
                report["runs"].append(result)
                print(f"{model:>5} {rate:>6,} events/s for {args.seconds:g} s (poll "
                      f"{args.poll_interval:g} s, checkpoint {checkpoint:g} s): "
                      f"{result['scored']:,} scored "
                      f"({result['scored_distinct']:,} distinct), {result['alerts']:,} "
                      f"alerts; {'window close' if model in WINDOW_MODELS else 'write'}"
                      f"-to-alert p50 {result['p50_s']:.3f} s, p95 "
                      f"{result['p95_s']:.3f} s, p99 {result['p99_s']:.3f} s, max "
                      f"{result['max_s']:.3f} s; scorer+writer CPU "
                      f"{result['children_cpu_s']:.1f} s; load "
                      f"{result['load_after_run']:.2f}"
                      + (f"; {result['windows']} windows" if model in WINDOW_MODELS else ""),
                      flush=True)
    report["medians"] = []
    for model, rate, checkpoint in itertools.product(args.models, args.rates,
                                                     args.checkpoint_intervals):
        runs = [r for r in report["runs"] if (r["model"], r["rate"], r[
            "checkpoint_seconds"]) == (model, rate, checkpoint)]
        median = {key: statistics.median(r[key] for r in runs)
                  for key in ("p50_s", "p95_s", "p99_s", "children_cpu_s")}
        report["medians"].append({"model": model, "rate": rate, "repeats": len(runs),
                                  "checkpoint_seconds": checkpoint, **median})
        print(f"median of {len(runs)}: {model:>5} {rate:>6,} events/s, checkpoint "
              f"{checkpoint:g} s: p50 "
              f"{median['p50_s']:.3f} s, p95 {median['p95_s']:.3f} s, p99 "
              f"{median['p99_s']:.3f} s; CPU {median['children_cpu_s']:.1f} s")
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before'][0]:.2f}, after {report['load_after'][0]:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "follow_latency.json" if args.alert_share else "follow_latency_most_alert.json"
    if set(args.models) <= set(WINDOW_MODELS):
        name = name.replace(".json", "_windows.json")
    (args.out / name).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
