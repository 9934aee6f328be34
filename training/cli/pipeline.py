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


def _pipeline_config(args: argparse.Namespace, sources: list | None = None):
    from training.cli.options import parse_source
    from training.pipeline.config import config_from_dict, load_config

    if sources is None:
        sources = [parse_source(s, i, args.default_label) for i, s in enumerate(args.source or [])]
    overrides = {"workdir": args.workdir, "layers": args.layers, "seed": args.seed,
                 "max_events": args.max_events}
    if sources:
        overrides["sources"] = sources
    if args.config is not None:
        config = load_config(args.config, **overrides)
    else:
        config = config_from_dict({"sources": overrides.pop("sources", [])}, "flags", **overrides)
    return config.with_training(epochs=args.epochs, batch_size=args.batch_size,
                                learning_rate=args.lr)


def _run(config) -> int:
    from training.pipeline.run import run_pipeline

    result = run_pipeline(config)
    for o in result.layers:
        print(f"{o.layer}: {o.model_name} {o.version} -> {o.stage} "
              f"(ROC-AUC {o.metrics.get('roc_auc', float('nan')):.3f}, "
              f"PR-AUC {o.metrics.get('pr_auc', float('nan')):.3f} on {o.metrics.get('n_samples', 0):,} "
              f"test {o.unit}s; {o.decision['reason']})")
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
    from training.cli.options import parse_source
    from training.collection.collector import DataCollector
    from training.features.preprocessor import DataPreprocessor

    sources = [parse_source(s, i, args.default_label) for i, s in enumerate(args.source)]
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
    from training.evaluation.evaluator import save_report
    from training.evaluation.report_text import format_report
    from training.evaluation.units import evaluate_units
    from training.layers.base import layer_for_spec

    loaded = load_model(args.model)
    layer = layer_for_spec(loaded.feature_spec, str(args.model))
    metrics = evaluate_units(layer, loaded.model, layer.load_units(args.data), loaded.threshold,
                             latency=not args.no_latency)
    print(format_report(metrics), end="")
    if args.report is not None:
        paths = save_report(metrics, args.report, f"{layer.model_name}: {args.data}")
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
    option(parser, "--default-label", help="label for records without one")


def add_pipeline_commands(commands: argparse._SubParsersAction, option: Option) -> None:
    """Add the pipeline commands to `maximus-train`'s subcommands."""
    p = commands.add_parser(
        "pipeline", help="collect -> validate -> featurize -> split -> train 3 layers -> "
                         "evaluate -> register -> promote -> HTML report",
        description="Run the whole job on --source inputs (or the TOML file's [[sources]]), "
                    "writing everything under --workdir, and print where the report is.")
    option(p, "--source", action="append", metavar="[NAME=]TYPE:PATH",
           help="e.g. zeek:/var/log/zeek; repeatable (or [[sources]] in --config)")
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
    option(pre, "--default-label")
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

    ev = commands.add_parser("evaluate", help="evaluate a saved model of any layer on a split file")
    option(ev, "--model", type=Path, default=checkpoints_dir() / "layer1_vae_best.pt")
    option(ev, "--data", type=Path, required=True, help="e.g. training/data/splits/layer1_test.npz")
    option(ev, "--report", type=Path, help="also write REPORT.json, .html and .txt")
    option(ev, "--no-latency", action="store_true", help="skip the latency measurement")
    ev.set_defaults(run=cmd_evaluate)

    tu = commands.add_parser("tune", help="hyperparameter search (hyperparameter_tuner.py's flags)",
                             add_help=False)
    tu.add_argument("arguments", nargs=argparse.REMAINDER)
    tu.set_defaults(run=cmd_tune)

