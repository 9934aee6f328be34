"""`maximus-train pipeline | demo | preprocess | validate | split | train | evaluate | tune`.

    maximus-train demo                                   # the whole pipeline on the demo data
    maximus-train pipeline --source zeek:/var/log/zeek --workdir run1
    maximus-train pipeline --config pipeline.toml --epochs 5
    maximus-train preprocess --source json:demo/synthetic_events.json --layers layer1
    maximus-train validate --data training/data/preprocessed/layer1_samples.npz
    maximus-train split --data training/data/preprocessed/layer1_samples.npz --strategy temporal
    maximus-train train layer1 --train_data training/data/splits/layer1_train.npz ...
    maximus-train evaluate --model training/checkpoints/layer1_vae_best.pt \\
        --data training/data/splits/layer1_test.npz
    maximus-train tune --train_data ... --val_data ... --n_trials 50

`train LAYER` and `tune` take the flags of `python training/train_layer<N>_....py` and
`python training/hyperparameter_tuner.py` (the same parsers), so they are the same everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from training.cli.data_files import cmd_validate
from training.cli.evaluate import add_evaluate_command
from training.cli.feature_options import (
    add_feature_options, preprocess_layers, refuse_with_model, with_feature_flags,
)
from training.cli.options import (
    layer_name, open_registry, registry_options, source_flags, sources_from_flags,
)
from training.cli.parser import help_command
from training.cli.run_options import add_run_options
from training.paths import preprocessed_dir, splits_dir

Option = Callable[..., None]
DEMO_PATH = Path("demo/synthetic_events.json")
PIPELINE_WORKDIR = "maximus-run"
DEMO_WORKDIR = "maximus-demo"


def _pipeline_config(args: argparse.Namespace, default_workdir: str,
                     sources: list | None = None):
    """The run's config: the TOML file's (when --config), flags over it; the working
    directory is --workdir, else the file's `workdir`, else `default_workdir`."""
    from dataclasses import replace

    from training.pipeline.config import config_from_dict, load_config

    if sources is None:
        sources = sources_from_flags(args, args.source)
    overrides = {"workdir": args.workdir, "layers": args.layers, "seed": args.seed,
                 "max_events": args.max_events}
    if sources:
        overrides["sources"] = sources
    defaults = {"workdir": default_workdir}
    tests = sources_from_flags(args, getattr(args, "test_source", None), "--test-source")
    if tests:
        overrides["test_sources"] = tests
    params = tuned_files(getattr(args, "params", None))
    config = (load_config(args.config, defaults=defaults, params=params, **overrides)
              if args.config else
              config_from_dict({"sources": overrides.pop("sources", [])}, "flags",
                               defaults=defaults, params=params, **overrides))
    if args.train_until is not None:
        config = replace(config, split=replace(config.split, train_until=args.train_until))
    config = with_feature_flags(config, args)
    return config.with_training(epochs=args.epochs, batch_size=args.batch_size,
                                learning_rate=args.lr, threshold=args.threshold,
                                benign_only=True if args.benign_only else None,
                                keep_unknown=True if args.keep_unknown else None)


def tuned_files(values: list[str] | None) -> dict[str, str]:
    """--params LAYER=FILE values as {layer: file}."""
    from training.errors import ConfigError

    files = {}
    for value in values or ():
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--params takes LAYER=FILE (a best_params.json of `tune`), got "
                              f"{value!r}")
        try:
            files[layer_name(name)] = path
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--params {value}: {exc}") from None
    return files


def _run(config, args: argparse.Namespace) -> int:
    from training.cli.options import error_message
    from training.console.terminal import inert
    from training.cli.parser import typed_flags
    from training.cli.run_options import run_options
    from training.pipeline import fusion, run

    # A run that fails says so on the front page, with the line printed here.
    flags = typed_flags(args)
    for name, settings in config.train.items():
        if settings.params_from:
            print(f"{name}: hyperparameters from {settings.params_from}")
    result = run.run_pipeline(config, **run_options(args),
                              describe=lambda exc: error_message(exc, flags=flags))
    for note in result.notes:  # event types and fields of the logs read: shown inert
        print(f"note: {inert(note)}")
    for o in result.layers:
        print(inert(o.summary()))
        for note in o.notes:
            print(f"  {o.layer}: {inert(note)}")
        if o.circular and o.metrics:
            print(f"  {o.layer}: CIRCULAR: {o.circular}")
    print(fusion.fusion_summary(result.fusion))
    print(f"{result.events:,} events, {result.quarantined:,} quarantined, {result.seconds:.1f} s")
    print(f"report: {result.report}\nevery run: {result.index}")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    return _run(_pipeline_config(args, PIPELINE_WORKDIR), args)


def cmd_demo(args: argparse.Namespace) -> int:
    from training.collection.collector import DataSource, DataSourceType
    from training.demo.generator import write_demo_file

    path = write_demo_file(args.path, n_events=args.events, seed=args.demo_seed)
    print(f"wrote {path} ({args.events:,} events, seed {args.demo_seed})")
    if args.data_only:
        return 0
    source = DataSource("demo", DataSourceType.JSON_FILE, {"path": str(path)})
    return _run(_pipeline_config(args, DEMO_WORKDIR, [source]), args)


def cmd_preprocess(args: argparse.Namespace) -> int:
    from training.collection.collector import DataCollector
    from training.collection.output_folder import CHECKPOINT_FILE
    from training.collection.quarantine_file import QUARANTINE_FILE, write_quarantine
    from training.features.preprocessor import DataPreprocessor
    from training.console.progress import progress
    from training.errors import ConfigError
    from training.sources.read_files import refuse_replacing_inputs, source_files

    sources = sources_from_flags(args, args.source)
    quarantine = Path(args.output) / QUARANTINE_FILE
    if os.path.exists(Path(args.output) / CHECKPOINT_FILE):  # its quarantine is collect's
        raise ConfigError(f"output must not be a collection's folder: {args.output} holds one "
                          f"({CHECKPOINT_FILE}), whose {QUARANTINE_FILE} (the records it "
                          "quarantined) preprocess would replace with its own; give another")
    refuse_replacing_inputs(quarantine, [quarantine], source_files(sources), "output")
    collector = DataCollector(sources, checkpoint_enabled=False)
    events = collector.collect_table(max_events=args.max_events)
    # As collect: OUTPUT/quarantine.jsonl (file, line, field, reason of each), rewritten every
    # run so that it never holds an earlier run's records.
    quarantine = write_quarantine(quarantine, collector.quarantined)
    preprocessor = DataPreprocessor(output_dir=args.output)
    if args.model:  # each model's own transform (fitted state included), so retrain compares
        from training.layers.registry import layer_for_spec

        refuse_with_model(args)
        registry = open_registry(args)
        layers = []
        for name in args.model:
            loaded = registry.load_model(name, stage="production")
            layers.append(layer_for_spec(loaded.feature_spec,
                                         f"{name} {loaded.metadata.version}"))
    else:
        layers = preprocess_layers(args)
    written = {}
    with progress("featurizing", len(layers), "layers") as bar:
        for layer in layers:
            units = layer.featurize(events)
            written[layer.name] = str(preprocessor.save_samples(units, layer.features_file))
            bar.update(1, layer=layer.name)
    reasons = dict(sorted(collector.get_stats().get("quarantine_reasons", {}).items()))
    print(json.dumps({"events": events.num_rows, "quarantined": len(collector.quarantined),
                      "quarantine_reasons": reasons, "quarantine": str(quarantine),
                      "files": written}, indent=2))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from training.datasets.builder import DatasetBuilder
    from training.sources.read_files import refuse_replacing_inputs

    builder = DatasetBuilder.from_file(args.data, output_dir=args.output, random_seed=args.seed)
    splits = builder.create_splits(args.strategy, args.train_ratio, args.val_ratio,
                                   args.test_ratio, balance_classes=args.balance,
                                   semi_supervised=args.semi_supervised)
    parts = [s.name for v in splits.values() for s in (v if isinstance(v, list) else [v])]
    refuse_replacing_inputs(builder.output_dir, [builder.output_dir / f"{args.prefix}_{name}.npz"
                                                 for name in parts], [args.data], "output",
                            "give another --output or --prefix")
    paths = builder.save_splits(splits, args.prefix)
    from training.datasets.one_class import warn_one_class_parts

    warn_one_class_parts(splits)
    print(json.dumps({name: {"rows": len(s), "path": str(paths[name]),
                             "classes": s.get_class_distribution()}
                      for name, s in splits.items()}, indent=2, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from training.cli.train import run
    from training.layers.registry import get_layer

    return run(get_layer(args.layer)(), args)


def cmd_tune(args: argparse.Namespace) -> int:
    from training.cli.tune import execute

    return execute(args)


def _pipeline_options(parser: argparse.ArgumentParser, option: Option, workdir: str) -> None:
    option(parser, "--config", type=Path,
           help="a pipeline TOML file (sources, layers, split, training, gate; documented in "
                "training/pipeline/config.py); the flags below override it")
    option(parser, "--workdir", type=Path,
           help=f"where everything is written, the registry in WORKDIR/models (default: the "
                f"config's workdir, else {workdir})")
    option(parser, "--layers", nargs="+", type=layer_name, metavar="LAYER",
           help="layers to train: layer1, layer2, layer3 (default: the config's, else all three)")
    option(parser, "--epochs", type=int, help="epochs per layer at most (default: the config's, "
                                              "else 20; early stopping applies)")
    option(parser, "--batch-size", type=int,
           help="batch size of every layer (default: the config's, else each layer's own)")
    option(parser, "--lr", type=float,
           help="learning rate of every layer (default: the config's, else each layer's own)")
    option(parser, "--params", action="append", metavar="LAYER=FILE",
           help="a layer's tuned hyperparameters: a best_params.json of `tune --layer LAYER`; "
                "they replace the defaults, the config's [train.LAYER] keys and the flags "
                "win; repeatable (default: the config's [train.LAYER] params, else none)")
    option(parser, "--seed", type=int,
           help="seed of splits and training (default: the config's, else 42)")
    option(parser, "--max-events", type=int, help="collect at most this many events (default: all)")
    source_flags(parser, option)
    add_feature_options(parser, option)
    add_run_options(parser, option)
    option(parser, "--train-until", metavar="TIME|SHARE",
           help="a grace period: train on the events before TIME (ISO 8601, e.g. "
                "2024-06-01T12:00:00Z) or on this leading share of them (e.g. 0.5), test on "
                "the rest (temporal split; default: the split's ratios)")
    option(parser, "--benign-only", action="store_true",
           help="learn from the benign (is_threat 0) training units only; default: every "
                "training unit, assumed benign (labels are not used for training)")
    option(parser, "--keep-unknown", action="store_true",
           help="with --benign-only, learn from the unlabeled (-1) units too")
    option(parser, "--threshold", metavar="RULE",
           help="how each threshold is set on validation scores: quantile[:Q] (default "
                "quantile:0.999, the 99.9th percentile), alerts-per-day:N (validation spanning "
                "a day or more), best-f1 (needs labels of both classes)")


def _build_train(parser: argparse.ArgumentParser) -> None:
    """`train LAYER`: one subcommand per layer, its flags added when it is used."""
    from training.layers.registry import get_layer, layer_names

    layers = parser.add_subparsers(dest="layer", metavar="LAYER")
    parser.set_defaults(run=help_command(parser))
    for name in layer_names():
        cls = get_layer(name)
        layers.add_lazy(name, partial(_build_train_layer, cls=cls), aliases=list(cls.aliases),
                        help=f"train {name}'s detector ({cls.model_name}) on {cls.unit}s")


def _build_train_layer(parser: argparse.ArgumentParser, cls: type) -> None:
    from training.cli.train import add_arguments

    layer = cls()
    add_arguments(parser, layer)
    parser.description = (f"Train the {layer.name} detector ({layer.model_name}) on "
                          f"{layer.unit}s (the flags of the training/train_layer<N>_*.py "
                          "scripts).")
    parser.set_defaults(run=cmd_train, layer=layer.name)


def _build_tune(parser: argparse.ArgumentParser) -> None:
    from training.cli.tune import DESCRIPTION, add_arguments

    parser.description = DESCRIPTION
    add_arguments(parser)
    parser.set_defaults(run=cmd_tune)


def add_pipeline_commands(commands: argparse._SubParsersAction, option: Option) -> None:
    """Add the pipeline commands to `maximus-train`'s subcommands."""
    p = commands.add_parser(
        "pipeline", help="collect -> validate -> featurize -> split -> train 3 layers -> "
                         "evaluate -> register -> promote -> HTML report",
        description="Run the whole job on --source inputs (or the TOML file's [[sources]]), "
                    "writing everything under the working directory (its registry in "
                    "WORKDIR/models), and print where the report is.")
    option(p, "--source", action="append", metavar="[NAME=]TYPE:PATH",
           help="e.g. zeek:/var/log/zeek (TYPE as for collect); repeatable (default: the "
                "config's [[sources]])")
    option(p, "--test-source", action="append", metavar="[NAME=]TYPE:PATH",
           help="evaluate on these events instead of a test part of --source (train here, "
                "evaluate there); repeatable (default: the config's [[test_sources]], else a "
                "test part)")
    _pipeline_options(p, option, PIPELINE_WORKDIR)
    p.set_defaults(run=cmd_pipeline)

    d = commands.add_parser(
        "demo", help="generate the built-in demo events and run the whole pipeline on them",
        description="Write deterministic synthetic events with labeled attack scenarios to "
                    "--path, then run `pipeline` on them.")
    option(d, "--events", type=int, default=10_000, help="number of events")
    option(d, "--demo-seed", type=int, default=42, help="seed of the demo data")
    option(d, "--path", type=Path, default=DEMO_PATH, help="where to write the demo file")
    option(d, "--data-only", action="store_true", help="write the demo file, run nothing")
    _pipeline_options(d, option, DEMO_WORKDIR)
    d.set_defaults(run=cmd_demo, source=None)

    pre = commands.add_parser(
        "preprocess", help="featurize events for layers 1-3 into .npz files",
        description="Collect --source in memory and write each layer's features (with their "
                    "FeatureSpec) to OUTPUT/<layer>_samples.npz (graphs, windows for layers 2, "
                    "3).")
    option(pre, "--source", action="append", required=True, metavar="[NAME=]TYPE:PATH",
           help="events, as collect --source: zeek:/var/log/zeek, json:events.jsonl, ...; "
                "repeatable")
    option(pre, "--layers", nargs="+", type=layer_name, metavar="LAYER", default=["layer1"],
           help="layers to featurize: layer1, layer2, layer3")
    option(pre, "--output", type=Path, default=preprocessed_dir(),
           help="output directory ($MAXIMUS_DATA_ROOT/data/preprocessed)")
    option(pre, "--max-events", type=int, help="collect at most this many events (default: all)")
    option(pre, "--model", action="append", metavar="NAME",
           help="featurize with this registered model's transform (its production version, "
                "from --workdir or --registry-dir) instead of --layers' defaults, so that "
                "`retrain` can compare it on splits of the file; repeatable")
    registry_options(pre, option)
    source_flags(pre, option)
    add_feature_options(pre, option)  # with --model, the model's own transform decides
    pre.set_defaults(run=cmd_preprocess)

    val = commands.add_parser(
        "validate", help="check a feature file: missing values, outliers, labels, constant "
                         "features, drift",
        description="Print a data-quality report of a feature or split file of any layer "
                    "(layer-1 rows, layer-2 edges, layer-3 windows); exit code 1 when the data "
                    "has an ERROR issue.")
    option(val, "--data", type=Path, required=True,
           help="a preprocessed or split .npz file, e.g. WORKDIR/splits/layer3_test.npz")
    option(val, "--reference", type=Path,
           help="a reference .npz of the same layer (e.g. the train split) to measure drift "
                "against (default: no drift check)")
    option(val, "--drift-threshold", type=float, default=0.1,
           help="drift score above which a feature has drifted")
    option(val, "--report", type=Path,
           help="also write REPORT.txt and REPORT.json (default: print only)")
    val.set_defaults(run=cmd_validate)

    sp = commands.add_parser(
        "split", help="cut a layer-1 feature file into train/val/test splits",
        description="Write OUTPUT/PREFIX_{train,val,test}.npz and print their sizes and classes.")
    option(sp, "--data", type=Path, required=True, help="a layer-1 features file (.npz)")
    option(sp, "--strategy", default="stratified",
           choices=("random", "stratified", "temporal", "group"),
           help="stratified keeps the class shares; temporal trains on the past and tests on "
                "the future; group keeps each host in one split")
    option(sp, "--train-ratio", type=float, default=0.7, help="share of rows for training")
    option(sp, "--val-ratio", type=float, default=0.15, help="share of rows for validation")
    option(sp, "--test-ratio", type=float, default=0.15, help="share of rows for testing")
    option(sp, "--prefix", default="layer1", help="file name prefix")
    option(sp, "--output", type=Path, default=splits_dir(),
           help="output directory ($MAXIMUS_DATA_ROOT/data/splits)")
    option(sp, "--seed", type=int, default=42, help="seed of the random strategies")
    option(sp, "--balance", action="store_true", help="undersample the training split")
    option(sp, "--semi-supervised", action="store_true",
           help="benign rows only in the training split")
    sp.set_defaults(run=cmd_split)

    tr = commands.add_lazy(
        "train", _build_train, help="train one layer's detector (the train_layer<N> scripts' "
                                    "flags)",
        description="Train one layer's detector: maximus-train train LAYER --train_data ... "
                    "(`maximus-train train LAYER --help` lists the flags).")
    tr.set_defaults(run=help_command(tr))

    add_evaluate_command(commands, option)

    commands.add_lazy("tune", _build_tune,
                      help="hyperparameter search with Optuna (hyperparameter_tuner.py's flags)")
