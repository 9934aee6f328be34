"""`maximus-train registry ACTION`: the model registry, one subcommand per action.

    maximus-train registry list [--model M] [--stage S] [--json]
    maximus-train registry show --model M [--version V | --stage S | --alias A] [--json]
    maximus-train registry history [--model M] [--version V] [--json]
    maximus-train registry compare --model M [--versions V ...] [--metric val_loss] [--json]
    maximus-train registry register --model M --model-path M_best.pt [--metrics '{"pr_auc": 0.9}']
    maximus-train registry promote --model M --version V [--stage S] [--reason R]
    maximus-train registry alias --model M --alias A --version V [--reason R]
    maximus-train registry rollback --model M [--reason R]
    maximus-train registry mirror [--model M] --mlflow-uri URI      # into MLflow's registry

Every action finds the registry with --registry-dir, or --workdir W (W/models, a pipeline's),
else $MAXIMUS_DATA_ROOT/models. Only `register` creates a registry (none when it fails: see
`training.cli.new_registry`); the other actions refuse a folder that holds none, and `list`,
`show` and `history` change nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.cli.new_registry import removed_unless_registered
from training.cli.options import layer_name, open_registry, registry_dir, registry_options
from training.cli.parser import help_command
from training.errors import CheckpointError, ConfigError, NotFoundError, did_you_mean
from training.registry.names import version_scheme

logger = logging.getLogger(__name__)

Option = Callable[..., None]
STAGES = ("none", "staging", "production", "archived")


def _registry(args: argparse.Namespace, create: bool = False):
    return open_registry(args, create=create)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def cmd_list(args: argparse.Namespace) -> int:
    from training.registry.tables import format_registry

    registry = _registry(args)
    versions = registry.search_models(model_name=args.model, stage=args.stage)
    if not versions and (args.model or args.stage):
        known = sorted({m.model_name for m in registry.list_models()})
        raise NotFoundError(f"no version matches{_filters(args.model, stage=args.stage)} in "
                            f"{registry.registry_dir}; models: {', '.join(known) or 'none'}")
    if args.json:
        _print_json([m.to_dict() for m in versions])
    else:
        print(format_registry(versions, empty=f"{registry.registry_dir}: no model registered"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from training.registry.data_file import change
    from training.registry.tables import format_metadata

    registry = _registry(args)
    metadata = registry.get_metadata(args.model, args.version, args.stage, alias=args.alias)
    # The file at its training data's path may hold a later run's data by now.
    data_change = change(metadata.training_dataset_file)
    try:  # a record that reads well of files that no longer load misleads (red-team trial)
        registry.verify(metadata.model_name, metadata.version)
        tampered = None
    except CheckpointError as exc:
        tampered = str(exc)
        logger.warning("%s %s will not load: %s", metadata.model_name, metadata.version, exc)
    if args.json:
        _print_json({**metadata.to_dict(), "training_dataset_change": data_change,
                     "files_as_registered": tampered is None, "files_problem": tampered})
    else:
        print(format_metadata(metadata, data_change, tampered))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from training.registry.tables import format_history

    registry = _registry(args)
    entries = [t for t in registry.history(args.model)
               if args.version is None or t.version == args.version]
    if not entries and (args.model or args.version):
        known = sorted({t.model_name for t in registry.history()})
        hint = did_you_mean(args.model, known) if args.model and args.model not in known else ""
        raise NotFoundError(f"no transition of{_filters(args.model, version=args.version)} in "
                            f"{registry.registry_dir}{hint}; the log has models: "
                            f"{', '.join(known) or 'none'}")
    if args.json:
        _print_json([asdict(t) for t in entries])
    else:
        print(format_history(entries, empty=f"{registry.registry_dir}: no transitions"))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from training.registry.tables import format_comparison

    registry = _registry(args)
    known = {m.version: m.stage for m in registry.search_models(model_name=args.model)}
    if not known:
        models = sorted({m.model_name for m in registry.search_models()})
        raise NotFoundError(f"no version of model {args.model!r} in {registry.registry_dir}"
                            f"{did_you_mean(args.model, models)}; known: "
                            f"{', '.join(models) or 'none'}")
    comparison = registry.compare_models(args.model, args.versions or list(known), args.metric)
    if args.json:
        _print_json(comparison.summary())
    else:
        print(format_comparison(comparison, known))
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from training.registry.registry import ModelMetadata
    from training.registry.tables import format_metadata

    # Every check before the registry is opened: a refused file creates nothing.
    metrics = parse_metrics(args.metrics) if args.metrics is not None else {}
    if not Path(args.model_path).is_file():
        raise NotFoundError(f"--model-path {args.model_path}: no such file")
    if args.version is not None:
        _check_version(args.version)
    layer = registered_layer(args.model, Path(args.model_path), args.layer)
    with removed_unless_registered(registry_dir(args)):  # a file that fails to load
        registry = _registry(args, create=True)
        # Without --version the next one is chosen under the registry's write lock.
        metadata = ModelMetadata(args.model, args.version or "0", layer,
                                 description=args.reason or "", metrics=metrics)
        stored = registry.register_model(args.model_path, metadata,
                                         reason=args.reason or "registered",
                                         next_version=None if args.version else "semver").metadata
    if args.json:
        _print_json(stored.to_dict())
    else:
        print(format_metadata(stored))
    return 0


def _check_version(version: str) -> None:
    try:
        version_scheme(version)
    except ConfigError as exc:  # "version must be ...": the flag's rule
        raise ConfigError(f"--{exc}; leave --version out to take the next one") from None


def registered_layer(model: str, path: Path, given: str | None) -> str:
    """The layer a model file is registered under: --layer, else the layer its sidecar's
    FeatureSpec is for, else the layer whose model `model` names (layer1_vae: layer1), else
    layer1; the three must agree where they say anything.

    Raises:
        ConfigError: they disagree (the message says what the file is for).
        CheckpointError: a sidecar that is not one.
    """
    found, named = _file_layer(path), _named_layer(model)
    if found is not None and named is not None and found != named:
        raise ConfigError(f"--model-path {path} is a {found} model (its sidecar's FeatureSpec), "
                          f"but {model} is the name of the {named} model; register it under "
                          f"{_model_name(found)} or a name of your own, or give a {named} "
                          "model")
    if given is not None and found is not None and given != found:
        raise ConfigError(f"--model-path {path} is a {found} model (its sidecar's FeatureSpec), "
                          f"not --layer {given}; leave --layer out to take the file's")
    if given is not None and named is not None and given != named:
        raise ConfigError(f"--layer {given}, but {model} is the name of the {named} model; "
                          "leave --layer out, or register under a name of your own")
    return given or found or named or "layer1"


def _file_layer(path: Path) -> str | None:
    """The layer of a saved model's FeatureSpec; None without a sidecar (an opaque file) or a
    spec."""
    from training.artifacts.model_files import read_sidecar, sidecar_path
    from training.features.encoding import FeatureSpec

    if not sidecar_path(path).is_file():
        return None
    spec = read_sidecar(path).get("feature_spec")
    return FeatureSpec.from_json(spec).layer if spec else None


def _named_layer(model: str) -> str | None:
    """The layer whose default model name is `model` (None: a name of your own)."""
    from training.layers.registry import get_layer, layer_names

    return next((name for name in layer_names() if get_layer(name).model_name == model), None)


def _model_name(layer: str) -> str:
    from training.layers.registry import get_layer

    return get_layer(layer).model_name


def cmd_promote(args: argparse.Namespace) -> int:
    from training.registry.names import check_stage

    registry = _registry(args)
    # transition_stage answers False to a refused change (the original's API): say why here
    check_stage(args.stage)  # the valid stages named
    registry.get_metadata(args.model, args.version)  # NotFoundError naming the known ones
    changed = registry.transition_stage(args.model, args.version, args.stage,
                                        reason=args.reason or "")
    print(f"{args.model} {args.version}: {'now' if changed else 'already'} {args.stage}")
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    _registry(args).set_alias(args.model, args.alias, args.version, reason=args.reason or "")
    print(f"{args.model} {args.alias} -> {args.version}")
    return 0


def cmd_mirror(args: argparse.Namespace) -> int:
    from training.tracking import mirror_registry, open_window, tracking_uri

    registry = _registry(args)
    if tracking_uri(args.mlflow_uri) is None:
        raise ConfigError("registry mirror needs --mlflow-uri or MLFLOW_TRACKING_URI")
    window = open_window(args.mlflow_uri)
    if window is None:
        return 1  # the warning said why
    added = mirror_registry(window, registry, args.model)
    if window.closed:
        return 1
    print(f"mirrored {len(added)} new version(s) to {window.shown}; tags and aliases up to date")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    version = _registry(args).rollback(args.model, reason=args.reason or "")
    print(f"{args.model}: production is now {version}")
    return 0


def parse_metrics(text: str) -> dict[str, float]:
    """--metrics: a JSON object of metric -> finite number, or the path of a JSON file holding
    one (e.g. `evaluate --report`'s REPORT.json, whose top-level numbers are taken).

    Raises:
        ConfigError: neither, or a value that is not a finite number (named).
    """
    path = Path(text)
    from_file = not text.lstrip().startswith("{") and path.is_file()
    try:
        value = json.loads(path.read_text(encoding="utf-8") if from_file else text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"the file {path}" if from_file else repr(text)
        raise ConfigError(f"--metrics must be a JSON object such as '{{\"pr_auc\": 0.9}}' or "
                          f"a JSON file holding one; {where} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--metrics must be a JSON object of metric -> number, got "
                          f"{type(value).__name__} {text!r}")
    if from_file:  # a report: its top-level numbers are the metrics
        value = {k: v for k, v in value.items() if _finite(v)}
        if not value:
            raise ConfigError(f"--metrics {path}: the file has no top-level numbers to take "
                              "as metrics")
    for name, number in value.items():
        if not _finite(number):
            raise ConfigError(f"--metrics: {name!r} must be a finite number, got {number!r}")
    return {name: float(number) for name, number in value.items()}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _filters(model: str | None, **others: str | None) -> str:
    parts = ([f" model {model!r}"] if model else []) + \
        [f" {name} {value!r}" for name, value in others.items() if value]
    return ",".join(parts)


def add_registry_command(commands: argparse._SubParsersAction, option: Option) -> None:
    """Add `registry` and its actions (`option` adds --a-b and --a_b)."""
    group = commands.add_parser(
        "registry", help="list, inspect and change registered models",
        description="The model registry: list versions, show one, read the transition log, "
                    "register a saved model, promote, set aliases, roll back. The registry is "
                    "--registry-dir, or WORKDIR/models with --workdir, else "
                    "$MAXIMUS_DATA_ROOT/models; only register creates one.")
    actions = group.add_subparsers(dest="action", metavar="ACTION")
    group.set_defaults(run=help_command(group))

    def action(name: str, run: Callable[[argparse.Namespace], int], help: str,
               description: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=description)
        registry_options(parser, option)
        parser.set_defaults(run=run)
        return parser

    def model(parser: argparse.ArgumentParser, required: bool = True) -> None:
        option(parser, "--model", required=required,
               help="model name, e.g. layer1_vae" + ("" if required else " (default: all)"))

    def as_json(parser: argparse.ArgumentParser) -> None:
        option(parser, "--json", action="store_true", help="print JSON instead of a table")

    def reason(parser: argparse.ArgumentParser) -> None:
        option(parser, "--reason", help="why, kept in the transition log (default: none)")

    ls = action("list", cmd_list, "list registered versions",
                "A table of the registered versions: stage, layer, time, aliases, metrics.")
    model(ls, required=False)
    option(ls, "--stage", choices=STAGES, help="only versions in this stage (default: all)")
    as_json(ls)

    show = action("show", cmd_show, "show one version's record",
                  "Everything recorded about one version: stage, aliases, threshold, feature "
                  "fingerprint, metrics, hyperparameters.")
    model(show)
    which = show.add_mutually_exclusive_group()
    option(which, "--version", help="the version (default: the latest registered)")
    option(which, "--stage", choices=STAGES, help="the latest version in this stage")
    option(which, "--alias", help="the version an alias names, e.g. champion or challenger")
    as_json(show)

    history = action("history", cmd_history, "the transition log",
                     "Every registration, stage change and alias change, oldest first, with "
                     "who made it and why.")
    model(history, required=False)
    option(history, "--version", help="only this version's entries (default: all)")
    as_json(history)

    compare = action("compare", cmd_compare, "compare versions by a metric",
                     "One metric of several versions side by side, with the best of them "
                     "(the direction is the metric's: lower val_loss, higher pr_auc); a version "
                     "that did not record it is named, never counted as 0. A loss (val_loss, "
                     "test_loss) is each model's own training objective: it ranks only versions "
                     "of one detector class with the same loss settings (a VAE's beta), and "
                     "the command refuses otherwise, naming the metrics to compare on instead. "
                     "And figures measured on different data (test metrics on two test splits, "
                     "val_loss on two validation splits, by the fingerprints the versions "
                     "recorded) rank nothing: it refuses, naming each version's data and how to "
                     "measure them on one test split (evaluate --version V --data TEST.npz).")
    model(compare)
    option(compare, "--versions", nargs="+", help="the versions (default: every version, in the order registered)")
    option(compare, "--metric", default="val_loss",
           help="the metric to compare, e.g. val_loss, pr_auc, roc_auc (default: val_loss, "
                "which ranks only versions whose losses compare)")
    as_json(compare)

    register = action("register", cmd_register, "register a saved model as a new version",
                      "Copy a saved model (<name>.pt and its <name>.json sidecar) into the "
                      "registry as a new version in stage none; creates the registry if needed.")
    model(register)
    option(register, "--model-path", type=Path, required=True,
           help="the saved model, e.g. training/checkpoints/layer1_vae_best.pt")
    option(register, "--version", help="the new version, MAJOR.MINOR.PATCH (default: the next "
                                       "minor version, 1.0.0 for a new model)")
    option(register, "--layer", type=layer_name,
           help="the layer the model belongs to (default: the layer of the file's FeatureSpec, "
                "else the one --model names, e.g. layer3 for layer3_tcn, else layer1); a file "
                "or model name of another layer is refused")
    option(register, "--metrics",
           help='metrics as a JSON object, e.g. \'{"pr_auc": 0.9}\', or a JSON file (the '
                "top-level numbers of evaluate --report's REPORT.json) (default: none)")
    reason(register)
    as_json(register)

    promote = action("promote", cmd_promote, "move a version to a stage",
                     "Move a version to a stage; promoting to production archives the previous "
                     "production version and moves the champion alias.")
    model(promote)
    option(promote, "--version", required=True, help="the version to move")
    option(promote, "--stage", choices=STAGES, default="production", help="the target stage")
    reason(promote)

    alias = action("alias", cmd_alias, "point an alias at a version",
                   "Point an alias (challenger, or your own) at a version; champion always "
                   "follows production.")
    model(alias)
    option(alias, "--alias", required=True, help="the alias, e.g. challenger")
    option(alias, "--version", required=True, help="the version it names")
    reason(alias)

    mirror = action("mirror", cmd_mirror, "mirror the registry into MLflow's Model Registry",
                    "Mirror every version not mirrored yet (weights and sidecar as plain "
                    "artifacts), and set MLflow's aliases and version tags (stage, latest "
                    "transition reason) to ours. Needs the mlflow extra.")
    model(mirror, required=False)
    option(mirror, "--mlflow-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI)")

    rollback = action("rollback", cmd_rollback, "bring back the previous production version",
                      "Archive the production version and bring back the one it replaced.")
    model(rollback)
    reason(rollback)
