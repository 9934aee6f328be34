"""`maximus-train retrain | score`: the commands that use registered models (`registry` is in
`training.cli.registry`), thin over the public API.

    maximus-train retrain --layer layer1 --model-name layer1_vae      # for cron / systemd
    maximus-train retrain --workdir maximus-run                       # a pipeline's splits, registry
    maximus-train score --model layer1_vae --input zeek:/var/log/zeek/conn.log --output s.parquet

`retrain` exits 0 when no trigger fires (nothing done) and when a run completes, deployed or
not; 1 when the run failed (e.g. data validation). Results are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from training.cli.options import layer_name, registry_dir, registry_options
from training.paths import splits_dir

Option = Callable[..., None]


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def cmd_retrain(args: argparse.Namespace) -> int:
    from training.layers.registry import get_layer
    from training.retraining.continuous import (
        RETRAINING_CHANGES, ContinuousTrainingPipeline, RetrainingConfig,
    )

    layer = get_layer(args.layer)()
    training = None
    if args.epochs is not None:
        training = layer.default_config(**RETRAINING_CHANGES, num_epochs=args.epochs)
    config = RetrainingConfig(
        retrain_frequency_days=args.retrain_frequency_days, min_new_samples=args.min_new_samples,
        drift_threshold=args.drift_threshold, improvement_threshold=args.improvement_threshold,
        comparison_metric=args.comparison_metric, min_accuracy_threshold=args.min_accuracy,
        exclude_alerted=args.exclude_alerted, registry_dir=str(registry_dir(args)),
        training_config=training)
    splits = splits_dir() if args.workdir is None else args.workdir / "splits"
    result = ContinuousTrainingPipeline(config).run_retraining(
        layer.name, args.model_name or layer.model_name, None,
        args.train_data or splits / f"{layer.name}_train.npz",
        args.val_data or splits / f"{layer.name}_val.npz",
        args.test_data or splits / f"{layer.name}_test.npz", force=args.force)
    _print_json(result)
    return 0 if result["success"] else 1


def cmd_score(args: argparse.Namespace) -> int:
    from training.cli.options import parse_source
    from training.scoring.alerts import alert_context
    from training.registry.registry import ModelRegistry
    from training.scoring.batch import score_events

    sources = [parse_source(spec, i, None) for i, spec in enumerate(args.input)]
    registry = ModelRegistry(registry_dir(args), create=False)  # reads only
    summary = score_events(registry, args.model, sources, args.output,
                           version=args.version, stage=args.stage, alias=args.alias,
                           top_k=args.top)
    print(f"scored {summary.events:,} events ({summary.units:,} {summary.layer} units) with "
          f"{summary.model_name} {summary.version} in {summary.seconds:.2f} s "
          f"({summary.events_per_second:,.0f} events/s)")
    rule = f"; {summary.threshold_rule}" if summary.threshold_rule else ""
    print(f"alerts: {summary.alerts:,} (score >= {summary.threshold:.6g}{rule}); written to "
          f"{summary.output}")
    for rank, alert in enumerate(summary.top_alerts, 1):
        events = ", ".join(alert["event_ids"][:3]) + (" ..." if len(alert["event_ids"]) > 3 else "")
        print(f"  {rank:>2}. {alert['score']:.6g}  {alert['unit']}  {alert['time']}  [{events}]"
              f"{alert_context(alert)}")
    if summary.incidents_output:
        print(f"incidents: {summary.incidents:,}; written to {summary.incidents_output}")
    return 0


def add_model_commands(commands: argparse._SubParsersAction, option: Option) -> None:
    """Add the retrain and score commands (`option` adds --a-b and --a_b)."""
    retrain = commands.add_parser(
        "retrain", help="retrain when a trigger fires; deploy past the gate",
        description="One continuous-training run (see training.retraining.continuous): retrain "
                    "when the production model is older than --retrain-frequency-days, when "
                    "there are --min-new-samples new rows or when they drifted; promote the new "
                    "model only past the gate. Does nothing and exits 0 when no trigger fires, "
                    "so a scheduler can call it; prints the result as JSON.")
    option(retrain, "--layer", type=layer_name, default="layer1",
           help="the layer to retrain: layer1, layer2 or layer3")
    option(retrain, "--model-name",
           help="registered model name (default the layer's: layer1_vae, layer2_gnn, layer3_tcn)")
    for split in ("train", "val", "test"):
        option(retrain, f"--{split}-data", type=Path,
               help=f"split file (default: WORKDIR/splits/<layer>_{split}.npz with --workdir, "
                    f"else $MAXIMUS_DATA_ROOT/data/splits/<layer>_{split}.npz)")
    registry_options(retrain, option)
    option(retrain, "--retrain-frequency-days", type=float, default=7.0,
           help="retrain when the production model is older than this")
    option(retrain, "--min-new-samples", type=int, default=1000,
           help="retrain when at least this many training rows are new to the production "
                "model")
    option(retrain, "--drift-threshold", type=float, default=0.1,
           help="per-feature drift distance above which a feature drifts (retrain when half "
                "of them do)")
    option(retrain, "--improvement-threshold", type=float, default=0.02,
           help="relative improvement on the comparison metric needed to deploy")
    option(retrain, "--comparison-metric", default="auto",
           help="auto (pr_auc with labeled test rows, else val_loss) or a metric name")
    option(retrain, "--min-accuracy", type=float, default=0.85,
           help="floor of a higher-is-better comparison metric")
    option(retrain, "--exclude-alerted", action="store_true",
           help="also leave out the rows the production model alerts on")
    option(retrain, "--force", action="store_true", help="retrain even if no trigger fires")
    option(retrain, "--epochs", type=int,
           help="epochs at most (default the layer's; early stopping applies)")
    retrain.set_defaults(run=cmd_retrain)

    score = commands.add_parser(
        "score", help="score events with a registered model",
        description="Collect --input, featurize with the model's FeatureSpec, score, apply its "
                    "threshold; write unit, time, score, is_alert and event_ids to --output "
                    "(.parquet, or .jsonl) and print the alert count and the top alerts. The "
                    "registry must exist; nothing is written to it.")
    option(score, "--model", required=True, help="registered model name, e.g. layer1_vae")
    which = score.add_mutually_exclusive_group()
    option(which, "--stage", choices=("none", "staging", "production", "archived"),
           help="the latest version in this stage (default: production)")
    option(which, "--version", help="the version to use (default: the production one)")
    option(which, "--alias", help="the version an alias names, e.g. challenger (default: the "
                                  "production one)")
    option(score, "--input", action="append", required=True, metavar="[NAME=]TYPE:PATH",
           help="events, as collect --source: zeek:conn.log, json:events.jsonl, ...; repeatable")
    option(score, "--output", type=Path, required=True, help="result file (.parquet or .jsonl)")
    option(score, "--top", type=int, default=10, help="top alerts to print")
    registry_options(score, option)
    score.set_defaults(run=cmd_score)
