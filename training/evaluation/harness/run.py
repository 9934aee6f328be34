"""One harness run: every capture, every layer, every method, every seed, measured together.

For each capture and each layer its events have, `run_layer` trains and scores every method of
`methods` (baselines first) for each seed, on the same units; `measure` then resamples the
units once for all methods (1,000 stratified resamples by default) and reports, per level:

* unit: the layer's own units (event, edge, window) with their labels;
* flow: every scored flow, with the largest score of the units it belongs to (its own label);
* each subset of the capture (NSL-KDD's difficulty < 21), at the flow level.

Per method and level: ROC-AUC, PR-AUC (average precision) and the detection rate at 1% false
positives, each the mean over seeds with a 95% bootstrap interval of that mean; per candidate,
the paired 95% interval of (candidate - best baseline), the best baseline being the one with
the highest mean on that metric and level. Unknown labels are left out of every figure.

Methods whose fit does not depend on the seed (ECOD and kNN below their `max_rows`, port
rarity) are fitted once and their scores used for every seed. Nothing here looks at test
labels before scoring: thresholds and early stopping use the benign validation units only.
Each capture's notes (`notes`: fields that separate its labels, parts smaller than the pipeline
accepts) are logged before its layers train and kept in its results.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from training.evaluation.calibration import Calibration
from training.evaluation.bootstrap import METRICS, bootstrap_draws, interval, paired_interval
from training.evaluation.harness.captures import DATASETS, capture_names, load_capture
from training.evaluation.harness.methods import BASELINES, CANDIDATES, Method, fit_and_score, identity
from training.evaluation.harness.fused import fused_flows
from training.evaluation.harness.notes import capture_notes, unit_notes
from training.evaluation.harness.units import LayerUnits, layer_units

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HarnessConfig:
    """What one run covers.

    Args:
        captures: capture names (`captures.CAPTURES`); default all of them.
        layers: layers to run where a capture has them; default all.
        seeds: training seeds.
        epochs: the most epochs of every trained network (the pipeline's default, 20).
        bootstrap: resamples of the units.
        datasets: the folder of the real captures.
        methods: what is compared (baselines and candidates).
    """

    captures: Sequence[str] = field(default_factory=capture_names)
    layers: Sequence[str] = ("layer1", "layer2", "layer3")
    seeds: Sequence[int] = (0, 1, 2)
    epochs: int = 20
    bootstrap: int = 1000
    datasets: Path = DATASETS
    methods: Sequence[Method] = (*BASELINES, *CANDIDATES)


def run_layer(units: LayerUnits, methods: Sequence[Method], seeds: Sequence[int], epochs: int,
              log: Callable[[str], None] = logger.info) -> dict[str, dict[str, Any]]:
    """Scores of every method on `units.test`, per seed.

    Returns:
        method name -> {"baseline", "identity", "same_as" (the baseline a candidate is,
        or None), "scores": (seeds, units), "runs": [per seed: seconds, epochs, ...]}.
    """
    out: dict[str, dict[str, Any]] = {}
    baseline_of: dict[str, str] = {}
    for method in sorted(methods, key=lambda m: not m.baseline):
        ident = identity(units, method)
        entry = {"baseline": method.baseline, "identity": ident, "same_as": None}
        if not method.baseline and ident in baseline_of:
            same = out[baseline_of[ident]]
            out[method.name] = {**entry, "same_as": baseline_of[ident],
                                "scores": same["scores"], "runs": same["runs"],
                                **({"tails": same["tails"]} if "tails" in same else {})}
            continue
        if method.baseline:
            baseline_of.setdefault(ident, method.name)
        scores, runs = [], []
        for seed in seeds:
            if runs and runs[0].get("fixed"):
                scores.append(scores[0])
                runs.append({"seconds": 0.0, "reused": True})
                continue
            s, info = fit_and_score(units, method, seed, epochs)
            calibration = info.pop("calibration", None)
            if calibration is not None:  # each unit's tail probability, for the fused score
                info["tail"] = Calibration.from_dict(calibration).tail_probability(s)
            info["fixed"] = not info.get("randomized", False) and (
                info.get("max_rows") is None or info.get("train_units", 0) <= info["max_rows"])
            scores.append(s)
            runs.append(info)
        tails = [r.pop("tail", None) for r in runs]
        if tails and tails[0] is not None:
            entry["tails"] = np.stack([t if t is not None else tails[0] for t in tails])
        out[method.name] = {**entry, "scores": np.stack(scores), "runs": runs}
        log(f"{units.capture.name} {units.layer.name} {method.name}: "
            f"{sum(r['seconds'] for r in runs):.1f} s")
    return out


def _rng(*names: str) -> np.random.Generator:
    """A generator fixed by names, whatever ran before it."""
    return np.random.default_rng([zlib.crc32("/".join(names).encode())])


def positive_ranks(scores: np.ndarray, labels: np.ndarray) -> list[float]:
    """Rank (1 = highest) of each threat among the labeled units, median over seeds; a tie
    counts against the method (all tied units take its worst rank)."""
    keep = labels >= 0
    ranks = np.stack([rankdata(-s[keep], method="max") for s in np.atleast_2d(scores)])
    return sorted(np.median(ranks[:, labels[keep] == 1], axis=0).tolist())


def measure(runs: dict[str, dict[str, Any]], scores: dict[str, np.ndarray], labels: np.ndarray,
            resamples: int, rng: np.random.Generator) -> dict[str, Any] | None:
    """Figures of every method on one level (see the module docstring); None when the labels
    lack a class."""
    known = labels[labels >= 0]
    if not (known == 1).any() or not (known == 0).any():
        return None
    point, draws = bootstrap_draws(scores, labels, resamples, rng)
    baselines = [name for name, run in runs.items() if run["baseline"]]
    best = {m: max(baselines, key=lambda b: point[b][m]["mean"]) for m in METRICS}
    figures: dict[str, Any] = {}
    for name, run in runs.items():
        entry = {m: {**point[name][m], "ci": interval(draws[name][m])} for m in METRICS}
        if not run["baseline"] and run["same_as"] is None:
            entry["delta"] = {m: {"vs": best[m],
                                  "mean": point[name][m]["mean"] - point[best[m]][m]["mean"],
                                  "ci": paired_interval(draws, name, best[m], m)}
                              for m in METRICS}
        if (labels == 1).sum() <= 30:
            entry["positive_ranks"] = positive_ranks(scores[name], labels)
        figures[name] = entry
    return {"labeled": int((labels >= 0).sum()), "positive": int((labels == 1).sum()),
            "best_baseline": best, "methods": figures}


def measure_layer(units: LayerUnits, runs: dict[str, dict[str, Any]], resamples: int
                  ) -> dict[str, Any]:
    """Unit, flow and subset figures of one layer of one capture."""
    name = f"{units.capture.name}/{units.layer.name}"
    unit_scores = {m: r["scores"] for m, r in runs.items()}
    levels = {"unit": measure(runs, unit_scores, units.labels, resamples, _rng(name, "unit"))}
    same_rows = (units.n_units == len(units.flow_labels) == len(units.pair_unit)
                 and np.array_equal(units.pair_unit, units.pair_flow))
    flow_scores = {m: units.flow_scores(s) for m, s in unit_scores.items()}
    levels["flow"] = (levels["unit"] if same_rows else
                      measure(runs, flow_scores, units.flow_labels, resamples, _rng(name, "flow")))
    for subset, mask in units.capture.subsets.items():
        levels[subset] = measure(runs, {m: s[:, mask] for m, s in flow_scores.items()},
                                 units.flow_labels[mask], resamples, _rng(name, subset))
    return levels


def run_capture(name: str, config: HarnessConfig,
                log: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """Every layer of capture `name`: its units, every method's runs and the figures."""
    capture = load_capture(name, config.datasets)
    entry = {"role": capture.role, "description": capture.description,
             "rows": {"train": capture.train.num_rows, "val": capture.val.num_rows,
                      "test": capture.test.num_rows}, "layers": {}}
    entry["notes"] = capture_notes(capture)
    for note in entry["notes"]:
        log(f"{name}: note: {note}")
    measured: dict[str, tuple[LayerUnits, dict[str, Any]]] = {}
    for layer in (lay for lay in capture.layers if lay in config.layers):
        started = time.perf_counter()
        units = layer_units(capture, layer)
        for note in unit_notes(units):
            entry["notes"].append(note)
            log(f"{name}: note: {note}")
        runs = run_layer(units, config.methods, config.seeds, config.epochs, log)
        measured[layer] = (units, runs)
        entry["layers"][layer] = {
            "units": {"test": units.n_units, "flows": len(units.flow_labels),
                      "covered_flows": units.covered_flows},
            "methods": {m: {k: r[k] for k in ("baseline", "identity", "same_as", "runs")}
                        for m, r in runs.items()},
            "levels": measure_layer(units, runs, config.bootstrap),
            "seconds": time.perf_counter() - started}
        log(f"{name} {layer}: {entry['layers'][layer]['seconds']:.0f} s")
    if measured:
        methods, scores, labels = fused_flows(measured)
        entry["fused"] = {"methods": methods, "flow": measure(
            methods, scores, labels, config.bootstrap, _rng(name, "fused"))}
    return entry


def _capture_in_worker(name: str, config: HarnessConfig) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # as the parent: the figures do not depend on the process
    return run_capture(name, config, log=lambda line: print(f"[worker {os.getpid()}] {line}",
                                                            file=sys.stderr, flush=True))


def run_harness(config: HarnessConfig = HarnessConfig(),
                log: Callable[[str], None] = logger.info, jobs: int = 1) -> dict[str, Any]:
    """Run every capture of `config` (see the module docstring); JSON-able results.

    `jobs` > 1 runs that many captures at once in worker processes (each trains with one
    thread; the figures are the same as in one process: every training is seeded, every
    resampling generator is fixed by the capture's and the level's names).
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    children_started = _children_cpu()
    results: dict[str, Any] = {
        "seeds": list(config.seeds), "epochs": config.epochs, "bootstrap": config.bootstrap,
        "jobs": jobs, "load_before": list(os.getloadavg()), "captures": {}}
    if jobs <= 1:
        for name in config.captures:
            results["captures"][name] = run_capture(name, config, log)
    else:
        context = multiprocessing.get_context("spawn")  # no state forked from this process
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {name: pool.submit(_capture_in_worker, name, config)
                       for name in config.captures}
            for name, future in futures.items():
                results["captures"][name] = future.result()
                log(f"{name} done")
    results["seconds"] = time.perf_counter() - started
    # This process's CPU time (all threads) and that of its finished worker processes.
    results["cpu_seconds"] = (time.process_time() - cpu_started
                              + _children_cpu() - children_started)
    results["load_after"] = list(os.getloadavg())
    return results


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
