"""`maximus-train evaluate`: a saved or registered model of any layer on a split file or on
events.

    maximus-train evaluate --model maximus-run/checkpoints/layer1_vae_best.pt --data test.npz
    maximus-train evaluate --workdir maximus-run --model layer1_vae --source zeek:conn.log

`--model` is a model file (`<name>.pt` beside its `<name>.json`) or, as for `score`, a
registered model name: a name that is no file, or any name given with --workdir,
--registry-dir, --version, --stage or --alias (the production version unless one of the last
three picks another).

Events (`--source`) of the time the model was trained and validated on (its sidecar's
`data_span`) are evaluated too, with a warning that counts them (`training_overlap` in the
report); `--after-training` keeps only the events after it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.cli.data_files import layer_of_file
from training.cli.options import open_registry, registry_dir, registry_options, source_flags
from training.cli.recorded_sources import loaded_metadata, sources_as_trained
from training.console.terminal import inert
from training.errors import ConfigError, NotFoundError, SchemaError
from training.paths import checkpoints_dir

if TYPE_CHECKING:
    from training.artifacts.model_files import LoadedModel
    from training.layers.base import Layer

AFTER_ADVICE = ", or the same logs with --after-training"
FILE_HINT = ("give a model file (<name>.pt beside its <name>.json, e.g. "
             "WORKDIR/checkpoints/layer1_vae_best.pt) or a registered model name with its "
             "registry (--model layer1_vae --workdir WORKDIR, or --registry-dir DIR)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from training.artifacts.model_files import sidecar_path
    from training.collection.collector import DataCollector
    from training.collection.schema import labels_from_alerts, sensor_records
    from training.evaluation.evaluator import report_paths, save_report
    from training.evaluation.report_text import format_report
    from training.evaluation.training_span import iso
    from training.evaluation.units import evaluate_units
    from training.layers.registry import layer_for_spec
    from training.sources.read_files import refuse_replacing_inputs, source_files

    if (args.data is None) == (not args.source):
        raise ConfigError("evaluate needs --data FILE (a split or features file) or --source "
                          "TYPE:PATH (events to featurize), not both")
    if args.after_training and not args.source:
        raise ConfigError("--after-training goes with --source: it keeps the events after the "
                          "data the model was trained on (a split file has its own time)")
    loaded, model, name = load_evaluated(args)
    layer = layer_for_spec(loaded.feature_spec, model)
    sources = (None if args.data is not None
               else sources_as_trained(args, args.source, loaded_metadata(loaded)))
    if args.report is not None:  # a report named as an input would replace it
        weights = Path(getattr(loaded, "path", args.model))  # a registered one's, or the file
        given = [weights, sidecar_path(weights)]
        refuse_replacing_inputs(args.report, report_paths(args.report).values(),
                                [*given, *([args.data] if sources is None else
                                           source_files(sources))], "report")
    circular = span = start = None
    if sources is None:
        _require_same_layer(args.data, layer, model, name)
        units, what = layer.load_units(args.data), str(args.data)
        require_same_transform(args.data, units, layer, model, name)
    else:
        span, start = loaded.data_span, _after_training(args, loaded, model)
        events = DataCollector(sources, checkpoint_enabled=False, progress=False
                               ).collect_table(start_date=start, max_events=args.max_events)
        sensor = sensor_records(events["event_type"])
        if sensor.any():  # as the pipeline and score leave them out: no model learnt from them
            events = events.filter(pa.array(~sensor))
            print(f"note: {int(sensor.sum()):,} sensor records (stats, capture loss, ...) left "
                  "out: they describe the sensor, not traffic", file=sys.stderr)
        if not events.num_rows:
            after = "" if start is None else f" after {iso(span.last)} (--after-training)"
            raise SchemaError(f"--source {' '.join(args.source)} gave no event{after}; check "
                              "the paths and the source types")
        units, what = layer.featurize(events), " ".join(args.source)
        circular = layer.circular(labels_from_alerts(events))
        if not len(layer.labels(units)):
            raise SchemaError(f"{what}: its {events.num_rows:,} events give no {layer.unit} "
                              f"for {layer.name}; it needs events with timestamps and "
                              "addresses")
    metrics = evaluate_units(layer, loaded.model, units, loaded.threshold,
                             latency=not args.no_latency, calibration=loaded.calibration,
                             unlabeled_ok=True, circular=circular, data_span=span,
                             trained_model=model, advice=AFTER_ADVICE)
    print(inert(format_report(metrics)), end="")  # attack types are the logs' labels
    if args.report is not None:
        paths = save_report(metrics, args.report, f"{layer.model_name}: {what}")
        print(f"report: {paths['html']}")
    return 0


def _after_training(args: argparse.Namespace, loaded: LoadedModel, model: str
                    ) -> datetime | None:
    """Where --after-training starts the events: the microsecond after the last unit time of
    the data the model was trained and validated on (naive UTC); None without the flag.

    Raises:
        ConfigError: the model does not record that time.
    """
    import numpy as np

    if not args.after_training:
        return None
    span = loaded.data_span
    if span is None:
        raise ConfigError(f"--after-training: {model} does not record the time of the data it "
                          "was trained and validated on (saved before models recorded it, or "
                          "trained on units without times); give events recorded after its "
                          "training instead")
    return (span.last + np.timedelta64(1, "us")).astype(datetime)


def load_evaluated(args: argparse.Namespace) -> tuple[LoadedModel, str, str | None]:
    """The model --model names (see the module docstring): (the model, how messages name it,
    its registered name or None for a file).

    Raises:
        NotFoundError: no such file and no registry to find the name in, or no such
            registered model or version.
    """
    from training.artifacts.model_files import load_model

    given = Path(args.model)
    picked = args.version or args.stage or args.alias
    registry_given = args.registry_dir is not None or args.workdir is not None
    if not (picked or registry_given):
        if given.is_file() or given.suffix in (".pt", ".pth") or len(given.parts) > 1:
            if not given.exists():
                raise NotFoundError(f"--model {given}: no such file; {FILE_HINT}")
            return load_model(given), str(given), None
    where = registry_dir(args)
    try:
        registry = open_registry(args)  # reads only; the error says where one may be
    except NotFoundError:
        if registry_given:
            raise
        raise NotFoundError(f"--model {given}: no such file, and no model registry at {where} "
                            f"to find it in as a registered name; {FILE_HINT}") from None
    try:
        loaded = registry.load_model(str(given), args.version,
                                     args.stage or (None if picked else "production"),
                                     alias=args.alias)
    except NotFoundError as exc:
        if picked or registry_given:
            raise
        raise NotFoundError(f"--model {given}: no such file, and in the registry at {where}: "
                            f"{exc}; {FILE_HINT}") from None
    return loaded, f"{loaded.metadata.model_name} {loaded.metadata.version}", str(given)


def _require_same_layer(data: Path, layer: Layer, model: str, name: str | None) -> None:
    """Refuse --data of another layer than --model's, naming a model that takes it: the
    registered model of the data's layer, or the model beside --model of the data's layer
    when there is one (a pipeline's checkpoints)."""
    other = layer_of_file(data)
    if other.name == layer.name:
        return
    if name is not None:
        hint: Any = other.model_name
    else:
        beside = Path(model).with_name(f"{other.model_name}_best.pt")
        hint = beside if beside.exists() else f"e.g. WORKDIR/checkpoints/{beside.name}"
    raise ConfigError(f"--data {data} holds {other.name} {other.unit}s, but --model {model} is "
                      f"a {layer.name} model; evaluate it with a {other.name} model (--model "
                      f"{hint})")


def require_same_transform(data: Path, units: Any, layer: Layer, model: str,
                           name: str | None) -> None:
    """Refuse units made with another transform (layout, fitted state) than the model's: its
    scores on them would mean nothing. Units saved without a spec are taken as the layer
    takes them (`Layer.assumed_spec`); when it takes none, there is nothing to compare.

    Raises:
        SchemaError: the two transforms differ (the message names both and what to run).
    """
    spec = getattr(units, "spec", None) or layer.assumed_spec(units)
    expected = layer.data_spec
    if spec is None or spec.fingerprint == expected.fingerprint:
        return
    raise SchemaError(
        f"--data {data} holds {spec.layer} {layer.unit}s made with another transform "
        f"({spec.version}, fingerprint {spec.fingerprint[:12]}) than --model {model}'s "
        f"({expected.version}, {expected.fingerprint[:12]}), so its scores on them would mean "
        "nothing; evaluate it on events (--source TYPE:PATH: evaluate featurizes them with the "
        f"model's transform), or on a split of `maximus-train preprocess --source ... --model "
        f"{name or 'NAME'}` (a registered model's transform), then `split`")


def add_evaluate_command(commands: argparse._SubParsersAction,
                         option: Callable[..., None]) -> None:
    """Add `evaluate` (`option` adds --a-b and --a_b)."""
    ev = commands.add_parser(
        "evaluate", help="evaluate a saved or registered model of any layer on a split file or "
                         "on events",
        description="Score a split (--data) or events of any source (--source) with a saved "
                    "or registered model at its calibrated threshold; print ROC-AUC, PR-AUC, "
                    "detection at low false-positive rates, the confusion matrix and latency "
                    "(with labels), or the alerts and score distribution (without).")
    option(ev, "--model", type=Path, default=checkpoints_dir() / "layer1_vae_best.pt",
           help="a saved model <name>.pt with its <name>.json sidecar, or a registered model "
                "name, e.g. layer1_vae (looked up in --workdir's or --registry-dir's registry)")
    which = ev.add_mutually_exclusive_group()
    option(which, "--stage", choices=("none", "staging", "production", "archived"),
           help="of a registered model: the latest version in this stage (default: production)")
    option(which, "--version", help="of a registered model: the version to evaluate (default: "
                                    "the production one)")
    option(which, "--alias", help="of a registered model: the version an alias names, e.g. "
                                  "challenger (default: the production one)")
    registry_options(ev, option)
    option(ev, "--data", type=Path,
           help="a split file of the model's layer, made with its transform, e.g. "
                "training/data/splits/layer1_test.npz")
    option(ev, "--source", action="append", metavar="[NAME=]TYPE:PATH",
           help="events to featurize with the model's own FeatureSpec and evaluate on (with "
                "labels or without); repeatable")
    option(ev, "--max-events", type=int, help="collect at most this many events (default: all)")
    option(ev, "--after-training", action="store_true",
           help="with --source: only the events after the last one of the data the model was "
                "trained and validated on (the sidecar's data_span; events without a time "
                "are left out too); without it, events of that time are evaluated too and a "
                "warning counts them")
    source_flags(ev, option)
    option(ev, "--report", type=Path,
           help="also write REPORT.json, .html and .txt (default: print only)")
    option(ev, "--no-latency", action="store_true", help="skip the latency measurement")
    ev.set_defaults(run=cmd_evaluate)
