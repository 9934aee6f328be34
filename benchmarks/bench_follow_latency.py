"""Write-to-alert latency of live scoring (`maximus-train score --follow`), at steady rates.

A writer process (`training.tests.zeek_writer`) appends Zeek conn lines at a steady rate (each
line's `ts` is the wall-clock time it was written, flushed at once) and rotates the log every
`--rotate-every` lines. The scorer runs as users run it: `python -m training.cli score --follow`
on the live conn.log, in its own process, with a default-architecture Layer1VAE (seed 0,
untrained: weights do not change the cost) whose threshold is set on a sample of the writer's
lines so that `--alert-share` of them alert (1% by default, a busy SOC's rate; 0 keeps a fixed
threshold under which about half alert, the worst case for the ECS documents).
This process watches the alerts file every 5 ms; an alert's latency is the time its line was
seen minus its event's `ts`: write, poll wait, parse, featurize, score, ECS document, append
and fsync included.

    python benchmarks/bench_follow_latency.py                          # 1k and 10k events/s
    python benchmarks/bench_follow_latency.py --rates 1000 --seconds 5 --poll-interval 0.1

Writes benchmarks/out/follow_latency.json. Layer 1 only: the fused score (issue 21) is not on
this branch, and window layers are not scored under --follow yet.
"""

from __future__ import annotations

import argparse
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
from training.detectors.vae import Layer1VAE  # noqa: E402
from training.features.layer1 import Layer1Featurizer  # noqa: E402
from training.registry.registry import ModelMetadata, ModelRegistry  # noqa: E402
from training.collection.collector import DataCollector, DataSource  # noqa: E402
from training.tests.zeek_writer import header, line  # noqa: E402

THRESHOLD = 30.6  # the seed-0 VAE scores these lines 30.1-30.8: about half alert


def threshold_for(model: Layer1VAE, share: float, root: Path) -> float:
    """The score above which `share` of the writer's lines fall (5,000 lines, written now)."""
    sample = root / "sample" / "conn.log"
    sample.parent.mkdir(parents=True)
    now = time.time()
    sample.write_text(header(now) + "".join(line(n, now + n / 1e4) for n in range(5000)))
    table = DataCollector([DataSource("s", "zeek", {"path": str(sample)})],
                          progress=False).collect_table()
    with torch.inference_mode():
        scores = model.anomaly_score(torch.from_numpy(Layer1Featurizer().featurize(table)))
    return float(np.quantile(scores.numpy(), 1.0 - share))


def register(root: Path, alert_share: float | None = None) -> float:
    """Register the seed-0 VAE; its threshold alerts on `alert_share` of the lines (None:
    THRESHOLD, about half of them). Returns the threshold."""
    torch.manual_seed(0)
    model = Layer1VAE().eval()
    threshold = THRESHOLD if alert_share is None else threshold_for(model, alert_share, root)
    weights = root / "src" / "vae.pt"
    save_model(model, weights, feature_spec=Layer1Featurizer().spec, threshold=threshold)
    ModelRegistry(root / "models").register_model(
        weights, ModelMetadata("vae", "1.0.0", "layer1", stage="production"))
    return threshold


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_rate(root: Path, rate: int, seconds: float, poll: float, rotate_every: int) -> dict:
    """One scorer, one writer at `rate` events/s for `seconds`; the alert latencies."""
    logs, alerts = root / f"logs-{rate}", root / f"alerts-{rate}.jsonl"
    logs.mkdir()
    (logs / "conn.log").write_text(header(time.time()))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    state = root / f"scores-{rate}.jsonl.state" / "state.json"
    scorer = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "score", "--model", "vae", "--registry-dir",
         str(root / "models"), "--input", f"zeek:{logs / 'conn.log'}", "--output",
         str(root / f"scores-{rate}.jsonl"), "--alerts", str(alerts), "--follow",
         "--poll-interval", str(poll)], env=env, stdout=subprocess.PIPE, text=True)
    while not state.exists():
        time.sleep(0.05)
    events = int(rate * seconds)
    cpu_before = os.times()
    writer = subprocess.Popen([sys.executable, "-m", "training.tests.zeek_writer", str(logs),
                               "--events", str(events), "--rate", str(rate), "--rotate-every",
                               str(rotate_every)], env=env, stdout=subprocess.DEVNULL)
    latencies: list[float] = []
    offset, pending = 0, b""
    deadline = time.monotonic() + seconds + 120
    scores, caught_up, scored, scores_at = root / f"scores-{rate}.jsonl", None, 0, 0
    while time.monotonic() < deadline:
        with open(alerts, "rb") if alerts.exists() else open(os.devnull, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        now = time.time()
        offset += len(data)
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        for raw in lines:
            stamp = json.loads(raw)["@timestamp"]
            latencies.append(now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
        # Scores are appended before the alerts of the same poll: once every event has its
        # score line, the last alerts follow within that poll.
        if caught_up is None and writer.poll() is not None and scores.exists():
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
    return {"rate": rate, "events": events, "scored": len(units),
            "scored_distinct": len(set(units)), "alerts": len(latencies), "poll_seconds": poll,
            "p50_s": percentile(latencies, 0.50), "p95_s": percentile(latencies, 0.95),
            "p99_s": percentile(latencies, 0.99), "max_s": max(latencies),
            "mean_s": statistics.fmean(latencies),
            "children_cpu_s": (cpu_after.children_user + cpu_after.children_system)
            - (cpu_before.children_user + cpu_before.children_system),
            "scorer_said": out.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--poll-interval", type=float, default=0.25)
    parser.add_argument("--rotate-every", type=int, default=20000)
    parser.add_argument("--alert-share", type=float, default=0.01,
                        help="share of events that alert (threshold set on a sample); 0 keeps "
                             "the fixed threshold under which about half alert")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    report: dict = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        report["threshold"] = register(root, args.alert_share or None)
        report["alert_share_asked"] = args.alert_share
        for rate in args.rates:
            result = run_rate(root, rate, args.seconds, args.poll_interval, args.rotate_every)
            report["runs"].append(result)
            print(f"{rate:>6,} events/s for {args.seconds:g} s (poll {args.poll_interval:g} s): "
                  f"{result['scored']:,} scored ({result['scored_distinct']:,} distinct), "
                  f"{result['alerts']:,} alerts; write-to-alert p50 {result['p50_s']:.3f} s, "
                  f"p95 {result['p95_s']:.3f} s, p99 {result['p99_s']:.3f} s, max "
                  f"{result['max_s']:.3f} s; scorer+writer CPU {result['children_cpu_s']:.1f} s",
                  flush=True)
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before'][0]:.2f}, after {report['load_after'][0]:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "follow_latency.json" if args.alert_share else "follow_latency_most_alert.json"
    (args.out / name).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
