"""The detection harness: every layer's candidate detectors next to fixed baselines, on the
same units of real captures, with paired bootstrap intervals (see `run` and BENCHMARKS.md).

    results = run_harness(HarnessConfig(captures=["iot23-44"], seeds=[0]))
    results = run_harness(HarnessConfig(captures=["../my/zeek-labeled"], seeds=[0]))  # your own

Reusable parts: `load_capture` (a protocol's train/val/test events; of a path, `own_capture`),
`layer_units` (a layer's units of a capture with the unit-to-flow map), `fit_and_score` (any
method on those units), `measure` (figures and paired intervals) and `tables.markdown` (the
tables).
"""

from training.evaluation.harness.captures import (
    CAPTURES, Capture, capture_names, load_capture, nsl_kdd_fit_half,
)
from training.evaluation.harness.methods import BASELINES, CANDIDATES, Method, fit_and_score
from training.evaluation.harness.own import own_capture
from training.evaluation.harness.run import HarnessConfig, measure, run_harness, run_layer
from training.evaluation.harness.units import LayerUnits, layer_units

__all__ = ["BASELINES", "CANDIDATES", "CAPTURES", "Capture", "HarnessConfig", "LayerUnits",
           "Method", "capture_names", "fit_and_score", "layer_units", "load_capture", "measure",
           "nsl_kdd_fit_half", "own_capture", "run_harness", "run_layer"]
