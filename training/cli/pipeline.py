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

`train` and `tune` pass their arguments on to `python training/train_layer<N>_....py` and
`python training/hyperparameter_tuner.py`, so the flags are the same everywhere.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from training.cli.options import layer_name
from training.paths import checkpoints_dir, preprocessed_dir, splits_dir

Option = Callable[..., None]
DEMO_PATH = Path("demo/synthetic_events.json")


def _sources(args: argparse.Namespace, specs: list[str] | None) -> list:
    """--source / --test-source values as DataSources, with the column, field and label maps."""
    from training.cli.options import parse_source, source_options

    sources = [parse_source(s, i, args.default_label) for i, s in enumerate(specs or [])]
    return source_options(sources, column_names=args.column_names, field_map=args.field_map,
                          label_map=args.label_map)


def _pipeline_config(args: argparse.Namespace, sources: list | None = None):
    from dataclasses import replace

    from training.pipeline.config import config_from_dict, load_config

    if sources is None:
        sources = _sources(args, args.source)
    overrides = {"workdir": args.workdir, "layers": args.layers, "seed": args.seed,
                 "max_events": args.max_events}
    if sources:
        overrides["sources"] = sources
    tests = _sources(args, getattr(args, "test_source", None))
    if tests:
        overrides["test_sources"] = tests
    if args.config is not None:
        config = load_config(args.config, **overrides)
    else:
        config = config_from_dict({"sources": overrides.pop("sources", [])}, "flags", **overrides)
    if args.train_until is not None:
        config = replace(config, split=replace(config.split, train_until=args.train_until))
    return config.with_training(epochs=args.epochs, batch_size=args.batch_size,
                                learning_rate=args.lr, threshold=args.threshold,
                                benign_only=True if args.benign_only else None,
                                keep_unknown=True if args.keep_unknown else None)


def _run(config) -> int:
    from training.pipeline.run import run_pipeline

    result = run_pipeline(config)
    for note in result.notes:
        print(f"note: {note}")
    for o in result.layers:
        print(o.summary())
        for note in o.notes:
            print(f"  {o.layer}: {note}")
        if o.circular and o.metrics:
            print(f"  {o.layer}: CIRCULAR: {o.circular}")
    print(f"{result.events:,} events, {result.quarantined:,} quarantined, {result.seconds:.1f} s")
    print(f"report: {result.report}")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    return _run(_pipeline_config(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from training.collection.collector import DataSource, DataSourceType
    from training.demo.generator import write_demo_file

    path = write_demo_file(args.path, n_events=args.events, seed=args.demo_seed)
    print(f"wrote {path} ({args.events:,} events, seed {args.demo_seed})")
    if args.data_only:
        return 0
    source = DataSource("demo", DataSourceType.JSON_FILE, {"path": str(path)})
    return _run(_pipeline_config(args, [source]))


def cmd_preprocess(args: argparse.Namespace) -> int:
    from training.collection.collector import DataCollector
    from training.features.preprocessor import DataPreprocessor

    sources = _sources(args, args.source)
    collector = DataCollector(sources, checkpoint_enabled=False)
    events = collector.collect_table(max_events=args.max_events)
    preprocessor = DataPreprocessor(output_dir=args.output)
    written = {}
    for name in args.layers:
        layer = preprocessor.layer(name)
        units = layer.featurize(events)
        written[layer.name] = str(preprocessor.save_samples(units, layer.features_file))
    print(json.dumps({"events": events.num_rows, "quarantined": len(collector.quarantined),
                      "files": written}, indent=2))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from training.datasets.split import DatasetSplit
    from training.datasets.validator import DataValidator

    data = DatasetSplit.load(args.data)
    reference = DatasetSplit.load(args.reference).features if args.reference else None
    result = DataValidator(data.features.reshape(len(data.features), -1), data.labels,
                           reference).validate(check_drift=reference is not None,
                                               drift_threshold=args.drift_threshold)
    DataValidator.print_report(result)
    if args.report is not None:
        for suffix in (".txt", ".json"):
            DataValidator.save_report(result, args.report.with_suffix(suffix))
    return 0 if result.passed else 1


def cmd_split(args: argparse.Namespace) -> int:
    from training.datasets.builder import DatasetBuilder

    builder = DatasetBuilder.from_file(args.data, output_dir=args.output, random_seed=args.seed)
    splits = builder.create_splits(args.strategy, args.train_ratio, args.val_ratio,
                                   args.test_ratio, balance_classes=args.balance,
                                   semi_supervised=args.semi_supervised)
    paths = builder.save_splits(splits, args.prefix)
    print(json.dumps({name: {"rows": len(s), "path": str(paths[name]),
                             "classes": s.get_class_distribution()}
                      for name, s in splits.items()}, indent=2, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from training.cli.train import main

    return main(args.layer, args.arguments)


def cmd_tune(args: argparse.Namespace) -> int:
    from training.cli.tune import main

    return main(args.arguments)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.artifacts.model_files import load_model
    from training.collection.collector import DataCollector
    from training.collection.schema import labels_from_alerts
    from training.errors import ConfigError, SchemaError
    from training.evaluation.evaluator import save_report
    from training.evaluation.report_text import format_report
    from training.evaluation.units import evaluate_units
    from training.layers.base import layer_for_spec

    if (args.data is None) == (not args.source):
        raise ConfigError("evaluate needs --data FILE (a split or features file) or --source "
                          "TYPE:PATH (events to featurize), not both")
    loaded = load_model(args.model)
    layer = layer_for_spec(loaded.feature_spec, str(args.model))
    circular = None
    if args.data is not None:
        units, what = layer.load_units(args.data), str(args.data)
    else:
        events = DataCollector(_sources(args, args.source), checkpoint_enabled=False,
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


def _pipeline_options(parser: argparse.ArgumentParser, option: Option, workdir: str) -> None:
    option(parser, "--config", type=Path, help="a pipeline TOML file (see training/pipeline_config.py)")
    option(parser, "--workdir", type=Path, default=None,
           help=f"where everything is written (default {workdir})")
    option(parser, "--layers", nargs="+", type=layer_name, metavar="LAYER",
           help="layers to train (default all three)")
    option(parser, "--epochs", type=int, help="epochs per layer (default 20)")
    option(parser, "--batch-size", type=int, help="batch size of every layer (default: each layer's)")
    option(parser, "--lr", type=float, help="learning rate of every layer")
    option(parser, "--seed", type=int, help="seed of splits and training (default 42)")
    option(parser, "--max-events", type=int, help="collect at most this many events")
    _source_flags(parser, option)
    option(parser, "--train-until", metavar="TIME|SHARE",
           help="a grace period: train on the events before TIME (ISO 8601, e.g. "
                "2024-06-01T12:00:00Z) or on this leading share of them (e.g. 0.5), test on "
                "the rest (temporal split)")
    option(parser, "--benign-only", action="store_true",
           help="learn from the benign (is_threat 0) training units only; default: every "
                "training unit, assumed benign (labels are not used for training)")
    option(parser, "--keep-unknown", action="store_true",
           help="with --benign-only, learn from the unlabeled (-1) units too")
    option(parser, "--threshold", metavar="RULE",
           help="how each threshold is set on validation scores: quantile[:Q] (default "
                "quantile:0.999, the 99.9th percentile), alerts-per-day:N (validation spanning "
                "a day or more), best-f1 (needs labels of both classes)")


def _source_flags(parser: argparse.ArgumentParser, option: Option) -> None:
    """How sources are read: the same settings as a TOML [[sources]] entry's."""
    option(parser, "--default-label", help="label for records without one")
    option(parser, "--column-names", metavar="PRESET|A,B,...",
           help="the columns of header-less CSV files: a preset (nsl_kdd) or names separated "
                "by commas (the csv: sources then have no header line)")
    option(parser, "--field-map", action="append", metavar="CANONICAL=FIELD,...",
           help="where canonical fields come from, e.g. source_ip=src,dest_ip=dst (repeatable)")
    option(parser, "--label-map", action="append", metavar="TEXT=-1|0|1,...",
           help="what label texts mean, e.g. Background=0 (repeatable)")


def add_pipeline_commands(commands: argparse._SubParsersAction, option: Option) -> None:
    """Add the pipeline commands to `maximus-train`'s subcommands."""
    p = commands.add_parser(
        "pipeline", help="collect -> validate -> featurize -> split -> train 3 layers -> "
                         "evaluate -> register -> promote -> HTML report",
        description="Run the whole job on --source inputs (or the TOML file's [[sources]]), "
                    "writing everything under --workdir, and print where the report is.")
    option(p, "--source", action="append", metavar="[NAME=]TYPE:PATH",
           help="e.g. zeek:/var/log/zeek; repeatable (or [[sources]] in --config)")
    option(p, "--test-source", action="append", metavar="[NAME=]TYPE:PATH",
           help="evaluate on these events instead of a test part of --source (train here, "
                "evaluate there); repeatable (or [[test_sources]] in --config)")
    _pipeline_options(p, option, "maximus-run")
    p.set_defaults(run=cmd_pipeline, workdir=Path("maximus-run"))

    d = commands.add_parser(
        "demo", help="generate the built-in demo events and run the whole pipeline on them",
        description="Write deterministic synthetic events with labeled attack scenarios to "
                    "demo/synthetic_events.json, then run `pipeline` on them.")
    option(d, "--events", type=int, default=10_000, help="number of events (default 10000)")
    option(d, "--demo-seed", type=int, default=42, help="seed of the demo data (default 42)")
    option(d, "--path", type=Path, default=DEMO_PATH, help="where to write the demo file")
    option(d, "--data-only", action="store_true", help="write the demo file, run nothing")
    _pipeline_options(d, option, "maximus-demo")
    d.set_defaults(run=cmd_demo, workdir=Path("maximus-demo"), source=None)

    pre = commands.add_parser("preprocess", help="featurize events for layers 1-3 into .npz files")
    option(pre, "--source", action="append", required=True, metavar="[NAME=]TYPE:PATH")
    option(pre, "--layers", nargs="+", type=layer_name, metavar="LAYER", default=["layer1"],
           help="layers to featurize: layer1, layer2, layer3 (default layer1)")
    option(pre, "--output", type=Path, default=preprocessed_dir(),
           help=f"output directory (default {preprocessed_dir()})")
    option(pre, "--max-events", type=int)
    _source_flags(pre, option)
    pre.set_defaults(run=cmd_preprocess)

    val = commands.add_parser("validate", help="check a feature file: missing values, outliers, "
                                                "labels, constant features, drift",
                              description="Exit code 1 when the data has an ERROR issue.")
    option(val, "--data", type=Path, required=True, help="a preprocessed or split .npz file")
    option(val, "--reference", type=Path, help="a reference .npz (e.g. the train split) for drift")
    option(val, "--drift-threshold", type=float, default=0.1)
    option(val, "--report", type=Path, help="also write REPORT.txt and REPORT.json")
    val.set_defaults(run=cmd_validate)

    sp = commands.add_parser("split", help="cut a layer-1 feature file into train/val/test splits")
    option(sp, "--data", type=Path, required=True)
    option(sp, "--strategy", default="stratified",
           choices=("random", "stratified", "temporal", "group"))
    option(sp, "--train-ratio", type=float, default=0.7)
    option(sp, "--val-ratio", type=float, default=0.15)
    option(sp, "--test-ratio", type=float, default=0.15)
    option(sp, "--prefix", default="layer1")
    option(sp, "--output", type=Path, default=splits_dir(), help=f"default {splits_dir()}")
    option(sp, "--seed", type=int, default=42)
    option(sp, "--balance", action="store_true", help="undersample the training split")
    option(sp, "--semi-supervised", action="store_true", help="benign rows only in train")
    sp.set_defaults(run=cmd_split)

    # No help of their own: --help goes on to the script, which lists its flags.
    tr = commands.add_parser("train", help="train one layer (the train_layer<N> script's flags)",
                             add_help=False)
    tr.add_argument("layer", type=layer_name, help="layer1, layer2 or layer3")
    tr.add_argument("arguments", nargs=argparse.REMAINDER)
    tr.set_defaults(run=cmd_train)

    ev = commands.add_parser("evaluate", help="evaluate a saved model of any layer on a split "
                                              "file or on events of any source")
    option(ev, "--model", type=Path, default=checkpoints_dir() / "layer1_vae_best.pt")
    option(ev, "--data", type=Path, help="e.g. training/data/splits/layer1_test.npz")
    option(ev, "--source", action="append", metavar="[NAME=]TYPE:PATH",
           help="events to featurize with the model's own FeatureSpec and evaluate on (with "
                "labels or without); repeatable")
    option(ev, "--max-events", type=int, help="collect at most this many events")
    _source_flags(ev, option)
    option(ev, "--report", type=Path, help="also write REPORT.json, .html and .txt")
    option(ev, "--no-latency", action="store_true", help="skip the latency measurement")
    ev.set_defaults(run=cmd_evaluate)

    tu = commands.add_parser("tune", help="hyperparameter search (hyperparameter_tuner.py's flags)",
                             add_help=False)
    tu.add_argument("arguments", nargs=argparse.REMAINDER)
    tu.set_defaults(run=cmd_tune)

