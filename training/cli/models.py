"""`maximus-train retrain | score`: the commands that use registered models (`registry` is in
`training.cli.registry`), thin over the public API.

    maximus-train retrain --layer layer1 --model-name layer1_vae      # for cron / systemd
    maximus-train retrain --workdir maximus-run                       # a pipeline's splits, registry
    maximus-train score --model layer1_vae --input zeek:/var/log/zeek/conn.log --output s.parquet

`retrain` exits 0 when no trigger fires (nothing done) and when a run completes, deployed or
not; 1 when the run failed (e.g. data validation). Results are printed as JSON. `score` prints
the guard's figures (`training.scoring.guard`) and exits 1 past `--max-alert-rate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from training.cli.follow import add_follow_options
from training.cli.new_registry import removed_unless_registered
from training.cli.options import (
    layer_name, open_registry, registry_dir, registry_options, source_flags,
)
from training.cli.parser import Switch
from training.paths import splits_dir

if TYPE_CHECKING:  # the layers import torch: only when a command runs
    from training.layers.base import Layer

Option = Callable[..., None]
# `score --max-alert-rate` without a rate: the guard's own bound (not a string: argparse would
# pass one through `type`).
FACTOR_BOUND = object()


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def cmd_retrain(args: argparse.Namespace) -> int:
    from training.layers.registry import get_layer
    from training.retraining.continuous import ContinuousTrainingPipeline, RetrainingConfig

    layer = get_layer(args.layer)()
    # Flags given win over the settings the challenger inherits from the production model.
    changes = {"num_epochs": args.epochs, "batch_size": args.batch_size,
               "learning_rate": args.lr, "threshold_rule": args.threshold}
    config = RetrainingConfig(
        retrain_frequency_days=args.retrain_frequency_days, min_new_samples=args.min_new_samples,
        drift_threshold=args.drift_threshold, drift_share=args.drift_share,
        improvement_threshold=args.improvement_threshold,
        comparison_metric=args.comparison_metric, min_accuracy_threshold=args.min_accuracy,
        exclude_alerted=args.exclude_alerted, registry_dir=str(registry_dir(args)),
        benign_only=args.benign_only, keep_unknown=args.keep_unknown,
        alert_rate_factor=args.alert_factor,
        training_changes={k: v for k, v in changes.items() if v is not None})
    if args.model_name not in (None, layer.model_name) and not args.new_model:
        _not_a_typo(args.model_name, layer.name, registry_dir(args))
    splits = splits_dir() if args.workdir is None else args.workdir / "splits"
    if args.test_data is None and args.workdir is not None:
        _require_workdir_test(args.workdir, layer)
    # The pipeline creates the registry when it starts; a run that fails (a mistyped
    # --workdir) or registers nothing leaves none behind.
    with removed_unless_registered(registry_dir(args)):
        result = ContinuousTrainingPipeline(config).run_retraining(
            layer.name, args.model_name or layer.model_name, None,
            args.train_data or splits / f"{layer.name}_train.npz",
            args.val_data or splits / f"{layer.name}_val.npz",
            args.test_data or splits / f"{layer.name}_test.npz", force=args.force)
    from training.tracking.mirror import mirror_new_version

    mirror_new_version(args.mlflow_uri, registry_dir(args), args.model_name or layer.model_name,
                       result.get("new_version"))
    _print_json(result)
    return 0 if result["success"] else 1


def _not_a_typo(model_name: str, layer: str, folder: Path) -> None:
    """Refuse a --model-name that names no registered model of `layer` but is at most two
    edits from one (trial R: layer1_vea became a new model, promoted with no production model
    to beat); a name further from each (layer1_vae_dmz) starts a new model."""
    from training.errors import ConfigError
    from training.registry.registry import ModelRegistry

    if not (folder / "registry.db").is_file():
        return
    known = {m.model_name for m in ModelRegistry(folder).search_models(layer_name=layer)}
    near = sorted(k for k in known if _edits(model_name, k) <= 2)
    if model_name not in known and near:
        raise ConfigError(f"--model-name {model_name}: no {layer} model of that name in "
                          f"{folder} (did you mean {near[0]}?); retrain would start a new "
                          "model, promoted with no production model to beat; to start one "
                          "of that name on purpose, add --new-model")


def _edits(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`."""
    rows = [list(range(len(b) + 1))]
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (x != y)))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _require_workdir_test(workdir: Path, layer: Layer) -> None:
    """A pipeline run with test sources saves the test part with the features, not in
    splits/: say where it is and which flag takes it, instead of "no such file"."""
    from training.errors import NotFoundError

    split = workdir / "splits" / f"{layer.name}_test.npz"
    features = workdir / "features" / f"test_{layer.features_file}"
    if not split.exists() and features.exists():
        raise NotFoundError(
            f"{split}: no such file; the pipeline run in {workdir} had test sources "
            f"(--test-source), whose {layer.name} {layer.unit}s it saved as {features}: pass "
            f"--test-data {features} to judge the challenger on them (or another split)")


def cmd_score(args: argparse.Namespace) -> int:
    from training.cli.follow import FOLLOW_ONLY, cmd_follow, quarantined_line

    if args.follow or args.once:  # live scoring: training.cli.follow
        return cmd_follow(args)
    given = [flag for flag in FOLLOW_ONLY if getattr(args, flag.lstrip("-").replace("-", "_"))
             is not None]
    if given:
        from training.errors import ConfigError

        raise ConfigError(f"{', '.join(given)}: only with --follow or --once (live scoring); "
                          "a batch score writes its alerts and incidents beside --output")
    from training.cli.recorded_sources import registered_metadata, sources_as_trained
    from training.errors import ConfigError
    from training.evaluation.alert_rate import validate_bounds
    from training.evaluation.fusion import FUSED_NAME
    from training.scoring.alerts import alert_line
    from training.scoring.batch import score_events
    from training.scoring.fused import score_fused
    from training.scoring.guard import guard_scoring
    from training.scoring.output_format import is_jsonl

    strict = args.max_alert_rate is not None  # the bare flag: the factor's bound is the maximum
    max_rate = args.max_alert_rate if isinstance(args.max_alert_rate, float) else None
    validate_bounds(args.alert_factor, max_rate)  # before any work
    is_jsonl(args.output, "--output")  # a .csv name holding Parquet misleads every reader
    registry = open_registry(args)  # reads only
    sources = sources_as_trained(args, args.input, registered_metadata(registry, args),
                                 "--input")
    created = _missing_folder(Path(args.output).parent)  # written with the output: say so
    if args.model == FUSED_NAME:  # every layer's registered model, one score per event
        if args.version or args.stage or args.alias:
            raise ConfigError("--version, --stage and --alias pick a version of one model; "
                              "the fused detector scores with the versions its fusion.json names")
        summary = score_fused(registry, sources, args.output, top_k=args.top)
    else:
        summary = score_events(registry, args.model, sources, args.output,
                               version=args.version, stage=args.stage, alias=args.alias,
                               top_k=args.top, deduplicate=not args.no_dedup)
    print(f"scored {summary.events:,} events ({summary.units:,} {summary.layer} units) with "
          f"{summary.model_name} {summary.version} in {summary.seconds:.2f} s "
          f"({summary.events_per_second:,.0f} events/s)")
    rule = f"; {summary.threshold_rule}" if summary.threshold_rule else ""
    print(f"alerts: {summary.alerts:,} (score >= {summary.threshold:.6g}{rule}); written to "
          f"{summary.output}")
    if summary.duplicates:
        print(f"{summary.duplicates:,} duplicate events (an event id seen before) dropped; "
              "--no-dedup keeps them")
    if summary.sensor_records:
        print(f"{summary.sensor_records:,} sensor records (stats, capture loss, ...) left out: "
              "they describe the sensor, not traffic")
    if summary.quarantined:
        print(quarantined_line(summary.quarantined, summary.quarantine))
    for rank, alert in enumerate(summary.top_alerts, 1):
        print(alert_line(rank, alert))  # one line each, whatever the logs' values hold
    if summary.incidents_output:
        from training.scoring.incidents import MAX_DETAILED  # scipy: only when it scores

        listed = (f" (flows and top alerts listed for the best {MAX_DETAILED:,}; the others "
                  "have counts and times only)" if summary.incidents > MAX_DETAILED else "")
        print(f"incidents: {summary.incidents:,}{listed}; written to {summary.incidents_output}")
    if created is not None:  # a mistyped folder should not go unnoticed
        print(f"note: created {created} for --output (it did not exist)", file=sys.stderr)
    guard = guard_scoring(summary, factor=args.alert_factor, max_alert_rate=max_rate,
                          strict=strict)
    print("\n".join(guard.lines()))
    for warning in guard.warnings():
        print(warning, file=sys.stderr)
    if guard.failed:
        print(f"error: {guard.failure()} (--max-alert-rate)", file=sys.stderr)
        return 1
    return 0


def _missing_folder(folder: Path) -> Path | None:
    """The outermost folder of `folder`'s path that does not exist yet, or None."""
    missing = None
    while not folder.exists() and folder != folder.parent:
        missing, folder = folder, folder.parent
    return missing


def add_model_commands(commands: argparse._SubParsersAction, option: Option) -> None:
    """Add the retrain and score commands (`option` adds --a-b and --a_b)."""
    retrain = commands.add_parser(
        "retrain", help="retrain when a trigger fires; deploy past the gate",
        description="One continuous-training run (see training.retraining.continuous): retrain "
                    "when the production model is older than --retrain-frequency-days, when "
                    "there are --min-new-samples new rows or when they drifted; promote the new "
                    "model only past the gate. The new model is built, trained and thresholded "
                    "like the production model (its detector and architecture, and its recorded "
                    "settings, which the flags below change; "
                    "the result's training_settings says which were used). Does nothing and "
                    "exits 0 when no trigger fires, so a scheduler can call it; prints the "
                    "result as JSON.")
    option(retrain, "--layer", type=layer_name, default="layer1",
           help="the layer to retrain: layer1, layer2 or layer3")
    option(retrain, "--model-name",
           help="registered model name (default the layer's: layer1_vae, layer2_gnn, layer3_tcn)")
    option(retrain, "--new-model", action="store_true",
           help="start --model-name as a new model even when it is a typo away from a "
                "registered one (refused without it)")
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
           help="per-feature drift distance above which a feature drifts (retrain when "
                "--drift-share of them do)")
    option(retrain, "--drift-share", type=float, default=0.5,
           help="retrain when at least this share, in (0, 1], of the features that vary "
                "drifted (features constant and equal in the production model's sample and the "
                "new rows cannot drift and are left out)")
    option(retrain, "--improvement-threshold", type=float, default=0.02,
           help="relative improvement on the comparison metric needed to deploy")
    option(retrain, "--comparison-metric", default="auto",
           help="auto (pr_auc with at least 5 threat and 5 benign test rows, else val_loss) "
                "or a metric name")
    option(retrain, "--min-accuracy", type=float,
           help="a floor of a higher-is-better comparison metric beyond the labeled gate's "
                "statistical ones (default: none, as the pipeline's gate.min_value 0)")
    option(retrain, "--exclude-alerted", action="store_true",
           help="also leave out the rows the production model alerts on")
    option(retrain, "--benign-only", action=Switch, default=None,
           help="learn from the rows labeled benign only (is_threat 0); --no-benign-only: "
                "from every row not labeled a threat (default: as the production model was "
                "trained, e.g. by pipeline --benign-only; a threat-labeled row never trains)")
    option(retrain, "--keep-unknown", action=Switch, default=None,
           help="with --benign-only, learn from the unlabeled (-1) rows too (default: as the "
                "production model was trained)")
    option(retrain, "--alert-factor", type=float, default=3.0,
           help="without test labels, refuse a challenger whose alert rate on the test split "
                "is significantly above its calibration's expected rate times this")
    option(retrain, "--force", action="store_true", help="retrain even if no trigger fires")
    option(retrain, "--epochs", type=int,
           help="epochs at most (default: the production model's, else the layer's; early "
                "stopping applies)")
    option(retrain, "--batch-size", type=int,
           help="batch size (default: the production model's, else 256)")
    option(retrain, "--lr", type=float,
           help="learning rate (default: the production model's, else the layer's)")
    option(retrain, "--threshold", metavar="RULE",
           help="how the threshold is set on validation scores: quantile[:Q], "
                "alerts-per-day:N, best-f1, auto (default: the production model's rule, else "
                "auto)")
    option(retrain, "--mlflow-uri", help="mirror a new version into MLflow's Model Registry "
                                         "(default $MLFLOW_TRACKING_URI, else not)")
    retrain.set_defaults(run=cmd_retrain)

    score = commands.add_parser(
        "score", help="score events with a registered model",
        description="Collect --input, featurize with the model's FeatureSpec, score, apply its "
                    "threshold; write unit, time, score, is_alert and event_ids to --output "
                    "(.parquet, or .jsonl) and print the alert count and the top alerts, "
                    "then the expected and observed alert rate and the shift of the scores "
                    "from the model's benign validation scores (training.scoring.guard), with "
                    "a warning past --alert-factor. The registry must exist; nothing is "
                    "written to it.")
    option(score, "--model", required=True,
           help="registered model name, e.g. layer1_vae, or fused: the fused detector of the "
                "last pipeline run")
    which = score.add_mutually_exclusive_group()
    option(which, "--stage", choices=("none", "staging", "production", "archived"),
           help="the latest version in this stage (default: production)")
    option(which, "--version", help="the version to use (default: the production one)")
    option(which, "--alias", help="the version an alias names, e.g. challenger (default: the "
                                  "production one)")
    # --source too: collect, pipeline and evaluate name their events so.
    score.add_argument("--input", "--source", dest="input", action="append", required=True,
                       metavar="[NAME=]TYPE:PATH",
                       help="events, as collect --source: zeek:conn.log, json:events.jsonl, "
                            "...; repeatable (read with --column-names, --field-map and "
                            "--label-map as the model's training sources were)")
    source_flags(score, option)
    option(score, "--output", type=Path, required=True,
           help="result file: .parquet, or .jsonl (or .json) for JSON Lines")
    option(score, "--top", type=int, default=10, help="top alerts to print")
    option(score, "--alert-factor", type=float, default=3.0,
           help="warn when the alert rate is significantly (binomial test) above the rate the "
                "model's calibration expects times this (default 3)")
    option(score, "--max-alert-rate", type=float, nargs="?", const=FACTOR_BOUND, metavar="RATE",
           help="exit 1 when the alert rate is significantly above RATE (a share: 0.01 is 1%%); "
                "the flag alone: above the expected rate times --alert-factor")
    option(score, "--no-dedup", action="store_true",
           help="keep events whose id was seen before (default: drop and count them; with "
                "--follow/--once, an id among the last 100,000 events kept)")
    registry_options(score, option)
    add_follow_options(score, option)
    score.set_defaults(run=cmd_score)
