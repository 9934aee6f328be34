"""Scoring latency and throughput, model only, on the device the inputs live on.

What is timed is one call of a scoring function on a tensor already on the device (no
featurization, no host-to-device copy), inside `torch.inference_mode()`, after warm-up calls;
on CUDA each call is followed by a synchronize so the time covers the kernels. Single-event
latency is the distribution of per-call times for batches of one (p50/p95/p99); throughput is
the batch size over the median call time, at each batch size. The figures hold for the torch
intra-op thread count they report (`num_threads`, by default torch's current setting).

Featurization is timed separately by `featurization_cost`, on raw events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from training.errors import ConfigError

logger = logging.getLogger(__name__)

BATCH_SIZES = (64, 1024, 8192)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _repeat_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first `n` rows of `x` tiled as needed (timing only needs realistic values)."""
    reps = -(-n // len(x))
    return x.repeat(reps, *([1] * (x.dim() - 1)))[:n] if reps > 1 else x[:n]


def _call_times(fn: Callable[[], Any], device: torch.device, calls: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and process CPU seconds of each of `calls` calls of `fn`."""
    wall, cpu = np.empty(calls), np.empty(calls)
    for i in range(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall[i] = time.perf_counter() - start
        cpu[i] = time.process_time() - start_cpu
    return wall, cpu


def measure_latency(score: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, *,
                    batch_sizes: Sequence[int] = BATCH_SIZES, single_calls: int = 2000,
                    warmup: int = 100, min_seconds: float = 0.3,
                    num_threads: int | None = None) -> dict[str, Any]:
    """Model-only latency of `score` on `inputs`' device.

    Args:
        score: the scoring function, e.g. `model.anomaly_score` (batch in, one value per row).
        inputs: real input rows, shape (n, ...), on the model's device; tiled for batches
            larger than n.
        batch_sizes: batch sizes for throughput.
        single_calls: timed calls with one event.
        warmup: untimed calls before each measurement.
        min_seconds: each batch size is called until this much time is measured (at least 3
            calls, after one untimed call).
        num_threads: torch intra-op threads during the measurement (restored after), or None for
            the current setting.

    Returns:
        {"device", "num_threads", "single_event_us": {"p50", "p95", "p99", "mean"},
        "single_event_cpu_us": {"p50", "p95"}, "batch": [{"batch_size", "median_ms",
        "events_per_sec", "events_per_cpu_sec"}], "best_events_per_sec", "best_batch_size"}.
        The CPU figures count the process's CPU time (all its threads) instead of the wall
        clock: on a busy host they show the model's own cost, which the wall clock mixes with
        waiting for a core.
    """
    if len(inputs) < 1:
        raise ConfigError("inputs must hold at least one row to time")
    if single_calls < 1 or warmup < 0 or any(b < 1 for b in batch_sizes):
        raise ConfigError(f"single_calls and batch_sizes must be >= 1 and warmup >= 0, got "
                          f"{single_calls}, {list(batch_sizes)}, {warmup}")
    if num_threads is not None and num_threads < 1:
        raise ConfigError(f"num_threads must be >= 1, got {num_threads}")
    device = inputs.device
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        with torch.inference_mode():
            rows = [inputs[i:i + 1] for i in range(min(len(inputs), 256))]
            state = {"i": 0}

            def one() -> None:
                score(rows[state["i"] % len(rows)])
                state["i"] += 1

            _call_times(one, device, warmup)
            single, single_cpu = (t * 1e6 for t in _call_times(one, device, single_calls))
            batches = []
            for size in batch_sizes:
                batch = _repeat_rows(inputs, size)
                _call_times(lambda: score(batch), device, 1 if warmup else 0)
                first = _call_times(lambda: score(batch), device, 1)[0][0]
                calls = max(3, int(min_seconds / max(first, 1e-9)))
                wall, cpu = (float(np.median(t))
                             for t in _call_times(lambda: score(batch), device, calls))
                batches.append({"batch_size": size, "median_ms": wall * 1e3,
                                "events_per_sec": size / wall,
                                "events_per_cpu_sec": size / max(cpu, 1e-9)})
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    best = max(batches, key=lambda b: b["events_per_sec"]) if batches else None
    return {
        "device": str(device), "num_threads": threads,
        "single_event_us": {"p50": float(np.percentile(single, 50)),
                            "p95": float(np.percentile(single, 95)),
                            "p99": float(np.percentile(single, 99)),
                            "mean": float(single.mean())},
        "single_event_cpu_us": {"p50": float(np.percentile(single_cpu, 50)),
                                "p95": float(np.percentile(single_cpu, 95))},
        "batch": batches,
        "best_events_per_sec": best["events_per_sec"] if best else None,
        "best_batch_size": best["batch_size"] if best else None,
    }


def featurization_cost(featurize: Callable[[Any], Any], events: Any, single: Callable[[int], Any],
                       *, single_calls: int = 200, repeats: int = 3) -> dict[str, float]:
    """Time featurization apart from the model.

    Args:
        featurize: turns the whole `events` batch into features.
        events: a batch of raw events (e.g. an Arrow table) with `len()`.
        single: featurizes the i-th event on its own (the per-event path).
        single_calls: timed single-event calls.
        repeats: timed runs of the whole batch (the median is reported).

    Returns:
        {"batch_events", "batch_events_per_sec", "single_event_us_p50", "single_event_us_p95"}.
    """
    n = len(events)
    featurize(events)  # warm-up: imports, caches
    seconds = float(np.median(_call_times(lambda: featurize(events), torch.device("cpu"),
                                          repeats)[0]))
    single(0)
    state = {"i": 0}

    def one() -> None:
        single(state["i"] % n)
        state["i"] += 1

    times = _call_times(one, torch.device("cpu"), single_calls)[0] * 1e6
    return {"batch_events": n, "batch_events_per_sec": n / seconds,
            "single_event_us_p50": float(np.percentile(times, 50)),
            "single_event_us_p95": float(np.percentile(times, 95))}
