"""`python training/hyperparameter_tuner.py`: tune a layer's detector from the command line.

The original flags (`--train_data`, `--val_data`, `--n_trials`, `--study_name`) work as before;
every flag is accepted with `_` or `-`. The summary is printed as JSON on stdout, logs go to
stderr. Exit codes: 0 success, 2 bad usage or configuration, 1 any other pipeline error.

Several machines tune one study by running the same command with the same PostgreSQL
`--storage` URL; a password is better given in the URL read from `MAXIMUS_TUNING_STORAGE`
than on the command line, which other users of the machine can see.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from optuna.trial import TrialState

from training.cli.new_registry import removed_unless_registered
from training.cli.options import exit_code, layer_name, registry_dir, registry_options
from training.cli.output import command_output
from training.cli.parser import CommandParser, add_global_flags, typed_flags
from training.errors import PipelineError, Terminated
from training.layers.registry import layer_names
from training.paths import tuning_dir
from training.tuning.objectives import METRICS, make_objective
from training.tuning.trial_logs import optuna_lines, trial_tracebacks
from training.tuning.tuner import HyperparameterTuner, TuningConfig

logger = logging.getLogger("training.cli.tune")

STORAGE_ENVIRONMENT = "MAXIMUS_TUNING_STORAGE"
_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


DESCRIPTION = ("Tune a detector's hyperparameters with Optuna: TPE or random search, per-epoch "
               "pruning, parallel workers, resumable studies. Outputs go to "
               "OUTPUT_DIR/STUDY_NAME/; the summary is printed as JSON.")


def _option(parser: argparse.ArgumentParser | argparse._ActionsContainer, name: str,
            **kwargs: Any) -> None:
    """Add --some_name together with its --some-name spelling (or the other way round)."""
    stem = name[2:]
    other = "--" + (stem.replace("_", "-") if "_" in stem else stem.replace("-", "_"))
    parser.add_argument(*dict.fromkeys([name, other]), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """`python training/hyperparameter_tuner.py`'s command line."""
    parser = CommandParser(prog="hyperparameter_tuner.py", description=DESCRIPTION)
    add_arguments(parser)
    add_global_flags(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The tuner's flags, on `parser` (the script's or `maximus-train tune`'s)."""
    _option(parser, "--train_data", required=True, help="training split (.npz)")
    _option(parser, "--val_data", required=True,
            help="validation split (.npz); the objective is measured on it, never on a test set")
    _option(parser, "--layer", type=layer_name, default="layer1", metavar="LAYER",
            help=f"the layer whose detector to tune: {', '.join(layer_names())} (or 1, 2, 3)")
    _option(parser, "--n_trials", type=int, default=50,
            help="finished trials the study should have; a resumed study runs only the "
                 "missing ones")
    _option(parser, "--study_name", help="default: layer1_vae_tuning, layer2_gnn_tuning, ...")
    _option(parser, "--storage",
            help="sqlite:///PATH, journal:PATH or postgresql://USER:PASSWORD@HOST/DB (default: "
                 f"${STORAGE_ENVIRONMENT}, else SQLite for one worker and a journal file for "
                 "several, in the study folder)")
    _option(parser, "--n_workers", type=int, default=1, help="worker processes")
    _option(parser, "--timeout", type=float,
            help="seconds after which no new trial starts (default: no limit)")
    _option(parser, "--train_best", action="store_true",
            help="then train the best configuration fully and register it in the model registry")
    _option(parser, "--output_dir", default=str(tuning_dir()),
            help="parent of the study folder ($MAXIMUS_DATA_ROOT/tuning)")
    _option(parser, "--sampler", choices=("tpe", "random"), default="tpe",
            help="TPE (multivariate; constant liar with parallel workers) or random search")
    _option(parser, "--pruner", choices=("median", "hyperband", "none"), default="median",
            help="stops unpromising trials at an epoch")
    _option(parser, "--warmup_epochs", type=int, default=10,
            help="epochs every trial runs before it can be pruned")
    _option(parser, "--max_epochs", type=int, default=30, help="epochs per trial")
    _option(parser, "--best_epochs", type=int, default=100,
            help="epochs for --train-best (early stopping applies)")
    _option(parser, "--threshold", metavar="RULE",
            help="alert threshold rule of the --train-best model (quantile:0.999, "
                 "alerts-per-day:10, best-f1, auto; default: the production model's, else "
                 "the pipeline's quantile:0.999)")
    registry_options(parser, _option)  # where --train-best registers
    _option(parser, "--metric", choices=METRICS, default="auto",
            help="validation metric: pr_auc (maximized; auto's choice when the validation "
                 "labels have benign and threat rows) or loss (minimized)")
    _option(parser, "--mlflow_uri", help="log the study to MLflow, one nested run per trial, "
            "and mirror the --train_best version into its Model Registry (default "
            "$MLFLOW_TRACKING_URI, else not)")
    _option(parser, "--seed", type=int,
            help="seed of the sampler and of every trial's training (default: a random "
                 "sampler, training seed 42); machines sharing a study need different seeds")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Tune as `args` say; the summary that is printed."""
    objective = make_objective(args.layer, args.train_data, args.val_data, metric=args.metric,
                               max_epochs=args.max_epochs,
                               seed=42 if args.seed is None else args.seed)
    config = TuningConfig(
        study_name=args.study_name or objective.default_study_name,
        direction=objective.direction, n_trials=args.n_trials, timeout=args.timeout,
        sampler=args.sampler, use_pruner=args.pruner != "none",
        pruner="median" if args.pruner == "none" else args.pruner,
        pruner_n_warmup_steps=args.warmup_epochs, pruner_max_steps=args.max_epochs,
        storage_url=args.storage or os.environ.get(STORAGE_ENVIRONMENT) or None,
        output_dir=args.output_dir, n_workers=args.n_workers, seed=args.seed)
    tuner = HyperparameterTuner(config)
    tuner.load_study_for(objective)
    result = tuner.tune(objective)
    summary: dict[str, Any] = {
        "study_name": config.study_name, "storage": tuner.storage.describe(),
        "metric": objective.metric, "direction": objective.direction,
        "best_value": result.best_value, "best_trial": result.best_trial,
        "best_params": result.best_params, "ran": result.ran,
        "seconds": round(result.seconds, 1),
        "trials": {state.name.lower(): result.count(state) for state in _STATES},
        "files": {name: str(path) for name, path in result.outputs.files.items()},
        "skipped_plots": result.outputs.skipped,
    }
    if args.train_best:
        if result.best_params is None:
            raise PipelineError(f"study {config.study_name!r} has no complete trial to train; "
                                "run more trials first")
        with removed_unless_registered(registry_dir(args)):  # none left by a failed run
            summary["train_best"] = objective.train_best(
                result.best_params, study_dir=config.study_dir, study_name=config.study_name,
                trial_number=result.best_trial, num_epochs=args.best_epochs,
                registry_dir=registry_dir(args), threshold_rule=args.threshold)
    _track(args, result.study, tuner.storage.describe(), summary, objective.model_name)
    return summary


def _track(args: argparse.Namespace, study: Any, storage: str, summary: dict[str, Any],
           model_name: str) -> None:
    """With an MLflow URI: the study and its trials (nested runs), and the --train-best
    version nested under the study's run."""
    from training.tracking.mirror import mirror_new_version
    from training.tracking.study_run import log_study
    from training.tracking.window import open_window

    window = open_window(args.mlflow_uri)
    if window is None:
        return
    parent = log_study(window, study, storage, summary)
    if summary.get("train_best", {}).get("registered"):  # not a version registered before
        mirror_new_version(window, registry_dir(args), model_name,
                           summary["train_best"]["version"], parent=parent)


def main(argv: Sequence[str] | None = None) -> int:
    """`python training/hyperparameter_tuner.py`: returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed on one line
        return exit_.code if isinstance(exit_.code, int) else 2
    with command_output(args.verbose, args.quiet):
        return exit_code(lambda: execute(args), args.verbose, typed_flags(args))


def execute(args: argparse.Namespace) -> int:
    """Tune as `args` say and print the summary as JSON (`maximus-train tune`)."""
    try:
        # Optuna's own lines at -v/-q's level; a failed trial's traceback only with -v
        with optuna_lines(args.verbose, args.quiet), trial_tracebacks(shown=args.verbose):
            summary = run(args)
        print(json.dumps(summary, indent=2, default=str))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`Terminated`)
        print(("error: terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted")
              + ": the finished trials are kept; run the same command again to resume",
              file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    return 0
