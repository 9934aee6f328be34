"""`maximus-train evaluate`: a saved model of any layer on a split file or on events."""

from __future__ import annotations

import argparse

from training.cli.options import sources_from_flags


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.artifacts.model_files import load_model
    from training.collection.collector import DataCollector
    from training.collection.schema import labels_from_alerts
    from training.errors import ConfigError, SchemaError
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
