"""`maximus-train evaluate`: a saved model of any layer on a split file or on events."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from training.cli.data_files import layer_of_file
from training.cli.options import sources_from_flags
from training.errors import ConfigError, SchemaError

if TYPE_CHECKING:
    from training.layers.base import Layer


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.artifacts.model_files import load_model
    from training.collection.collector import DataCollector
    from training.collection.schema import labels_from_alerts
    from training.evaluation.evaluator import save_report
    from training.evaluation.report_text import format_report
    from training.evaluation.units import evaluate_units
    from training.layers.registry import layer_for_spec

    if (args.data is None) == (not args.source):
        raise ConfigError("evaluate needs --data FILE (a split or features file) or --source "
                          "TYPE:PATH (events to featurize), not both")
    loaded = load_model(args.model)
    layer = layer_for_spec(loaded.feature_spec, str(args.model))
    circular = None
    if args.data is not None:
        _require_same_layer(args.data, layer, args.model)
        units, what = layer.load_units(args.data), str(args.data)
    else:
        events = DataCollector(sources_from_flags(args, args.source), checkpoint_enabled=False,
                               progress=False).collect_table(max_events=args.max_events)
        if not events.num_rows:
            raise SchemaError(f"--source {' '.join(args.source)} gave no event; check the "
                              "paths and the source types")
        units, what = layer.featurize(events), " ".join(args.source)
        circular = layer.circular(labels_from_alerts(events))
        if not len(layer.labels(units)):
            raise SchemaError(f"{what}: its {events.num_rows:,} events give no {layer.unit} "
                              f"for {layer.name}; it needs events with timestamps and "
                              "addresses")
    metrics = evaluate_units(layer, loaded.model, units, loaded.threshold,
                             latency=not args.no_latency, calibration=loaded.calibration,
                             unlabeled_ok=True, circular=circular)
    print(format_report(metrics), end="")
    if args.report is not None:
        paths = save_report(metrics, args.report, f"{layer.model_name}: {what}")
        print(f"report: {paths['html']}")
    return 0


def _require_same_layer(data: Path, layer: Layer, model: Path) -> None:
    """Refuse --data of another layer than --model's, naming a model that takes it: the
    model beside --model of the data's layer when there is one (a pipeline's checkpoints)."""
    other = layer_of_file(data)
    if other.name == layer.name:
        return
    beside = Path(model).with_name(f"{other.model_name}_best.pt")
    hint = beside if beside.exists() else f"e.g. WORKDIR/checkpoints/{beside.name}"
    raise ConfigError(f"--data {data} holds {other.name} {other.unit}s, but --model {model} is "
                      f"a {layer.name} model; evaluate it with a {other.name} model (--model "
                      f"{hint})")
