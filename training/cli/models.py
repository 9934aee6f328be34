"""`maximus-train registry | retrain | score`: the model commands, thin over the public API.

    maximus-train registry list
    maximus-train registry promote --model layer1_vae --version 1.2.0 --reason "beats 1.1.0"
    maximus-train registry rollback --model layer1_vae
    maximus-train retrain --layer layer1 --model-name layer1_vae      # for cron / systemd
    maximus-train score --model layer1_vae --input zeek:/var/log/zeek/conn.log --output s.parquet

`retrain` exits 0 when no trigger fires (nothing done) and when a run completes, deployed or
not; 1 when the run failed (e.g. data validation). Results are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from training.cli.options import layer_name
from training.paths import models_dir, splits_dir

Option = Callable[..., None]


def _registry(args: argparse.Namespace):
    from training.registry.registry import ModelRegistry

    return ModelRegistry(args.registry_dir)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


NEEDS = {"show": ("model",), "register": ("model", "model_path"), "promote": ("model", "version"),
         "alias": ("model", "alias", "version"), "rollback": ("model",)}


def cmd_registry(args: argparse.Namespace) -> int:
    from training.errors import ConfigError

    action = args.action
    missing = [f"--{name.replace('_', '-')}" for name in NEEDS.get(action, ())
               if getattr(args, name) is None]
    if missing:
        raise ConfigError(f"registry {action} needs {' and '.join(missing)}")
    registry = _registry(args)
    if action == "list":
        registry.print_registry()
    elif action == "show":
        _print_json(registry.get_metadata(args.model, args.version, args.stage,
                                          alias=args.alias).to_dict())
    elif action == "history":
        _print_json([asdict(t) for t in registry.history(args.model)])
    elif action == "register":
        from training.registry.registry import ModelMetadata

        metadata = ModelMetadata(args.model, args.version or registry.next_version(args.model),
                                 args.layer, description=args.reason or "",
                                 metrics=json.loads(args.metrics or "{}"))
        _print_json(registry.register_model(args.model_path, metadata,
                                            reason=args.reason or "registered").to_dict())
    elif action == "promote":
        changed = registry.transition_stage(args.model, args.version, args.stage or "production",
                                            reason=args.reason or "")
        print(f"{args.model} {args.version}: {'now' if changed else 'already'} "
              f"{args.stage or 'production'}")
    elif action == "alias":
        registry.set_alias(args.model, args.alias, args.version, reason=args.reason or "")
        print(f"{args.model} {args.alias} -> {args.version}")
    elif action == "rollback":
        print(f"{args.model}: production is now {registry.rollback(args.model, reason=args.reason or '')}")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from training.layers.base import get_layer
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
        exclude_alerted=args.exclude_alerted, registry_dir=str(args.registry_dir),
        training_config=training)
    splits = splits_dir()
    result = ContinuousTrainingPipeline(config).run_retraining(
        layer.name, args.model_name or layer.model_name, None,
        args.train_data or splits / f"{layer.name}_train.npz",
        args.val_data or splits / f"{layer.name}_val.npz",
        args.test_data or splits / f"{layer.name}_test.npz", force=args.force)
    _print_json(result)
    return 0 if result["success"] else 1


def cmd_score(args: argparse.Namespace) -> int:
    from training.cli.options import parse_source
    from training.scoring.batch import score_events

    sources = [parse_source(spec, i, None) for i, spec in enumerate(args.input)]
    summary = score_events(_registry(args), args.model, sources, args.output,
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
        print(f"  {rank:>2}. {alert['score']:.6g}  {alert['unit']}  {alert['time']}  [{events}]")
    return 0


def add_model_commands(commands: argparse._SubParsersAction, option: Option) -> None:
    """Add the registry, retrain and score commands (`option` adds --a-b and --a_b)."""
    registry = commands.add_parser(
        "registry", help="list, inspect and change registered models",
        description="The model registry: list versions, show metadata and the transition log, "
                    "register a saved model, promote, set aliases, roll back.")
    registry.add_argument("action", choices=("list", "show", "history", "register", "promote",
                                             "alias", "rollback"))
    option(registry, "--registry-dir", type=Path, default=models_dir(),
           help=f"the registry (default {models_dir()})")
    option(registry, "--model", help="model name")
    option(registry, "--version", help="model version")
    option(registry, "--stage", choices=("none", "staging", "production", "archived"),
           help="show: the version in this stage; promote: the target (default production)")
    option(registry, "--alias", help="an alias such as champion or challenger")
    option(registry, "--model-path", type=Path, help="register: the saved <name>.pt")
    option(registry, "--layer", default="layer1", help="register: the layer (default layer1)")
    option(registry, "--metrics", help='register: metrics as JSON, e.g. {"pr_auc": 0.9}')
    option(registry, "--reason", help="why (kept in the transition log)")
    registry.set_defaults(run=cmd_registry)

    retrain = commands.add_parser(
        "retrain", help="retrain when a trigger fires; deploy past the gate",
        description="One continuous-training run (see training.retraining.continuous); does "
                    "nothing and exits 0 when no trigger fires, so a scheduler can call it.")
    option(retrain, "--layer", type=layer_name, default="layer1",
           help="the layer to retrain: layer1, layer2 or layer3 (default layer1)")
    option(retrain, "--model-name",
           help="registered model name (default the layer's: layer1_vae, layer2_gnn, layer3_tcn)")
    for split in ("train", "val", "test"):
        option(retrain, f"--{split}-data", type=Path,
               help=f"split file (default {splits_dir()}/<layer>_{split}.npz)")
    option(retrain, "--registry-dir", type=Path, default=models_dir())
    option(retrain, "--retrain-frequency-days", type=float, default=7.0)
    option(retrain, "--min-new-samples", type=int, default=1000)
    option(retrain, "--drift-threshold", type=float, default=0.1)
    option(retrain, "--improvement-threshold", type=float, default=0.02)
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
                    "(.parquet, or .jsonl) and print the alert count and the top alerts.")
    option(score, "--model", required=True, help="registered model name")
    which = score.add_mutually_exclusive_group()
    option(which, "--stage", choices=("none", "staging", "production", "archived"),
           help="default: production")
    option(which, "--version")
    option(which, "--alias")
    option(score, "--input", action="append", required=True, metavar="[NAME=]TYPE:PATH",
           help="events, as collect --source: zeek:conn.log, json:events.jsonl, ...; repeatable")
    option(score, "--output", type=Path, required=True, help="result file (.parquet or .jsonl)")
    option(score, "--top", type=int, default=10, help="top alerts to print (default 10)")
    option(score, "--registry-dir", type=Path, default=models_dir())
    score.set_defaults(run=cmd_score)


