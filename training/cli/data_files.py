"""`maximus-train validate`, and which layer a data file belongs to.

Every layer saves its units (layer-1 rows, layer-2 edges of window graphs, layer-3 windows)
with the FeatureSpec that made them, so a split or features file of any layer says whose it
is: `validate` checks any of them, and `evaluate` refuses a model of another layer by name.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.errors import ConfigError, PipelineError, SchemaError

if TYPE_CHECKING:  # the layers import torch: only when a command reads a file
    from training.layers.base import Layer


def layer_of_file(path: Path) -> Layer:
    """The layer whose units `path` holds, by the FeatureSpec in it; a file without one is
    taken for layer-1 rows (splits written before files carried their spec).

    Raises:
        SourceError: the file is missing or not an .npz of plain arrays.
        SchemaError: a spec of no registered layer.
    """
    from training.artifacts.npz import read_arrays
    from training.features.encoding import SPEC_FIELD, FeatureSpec
    from training.layers.registry import get_layer, layer_names

    stored = read_arrays(path, only={SPEC_FIELD})
    if SPEC_FIELD not in stored:
        return get_layer("layer1")()
    spec = FeatureSpec.from_npz(stored, str(path))
    try:
        return get_layer(spec.layer)()
    except PipelineError:
        raise SchemaError(f"{path} holds {spec.layer} features ({spec.version}); this release "
                          f"reads the units of {', '.join(layer_names())}") from None


def load_units(path: Path) -> tuple[Layer, Any]:
    """(its layer, the units) of a split or features file of any layer."""
    layer = layer_of_file(path)
    return layer, layer.load_units(path)


# The --source type of an export by its file name, where the name tells (else TYPE:PATH).
_EXPORT_TYPES = {".csv": "csv", ".log": "zeek", ".labeled": "zeek", ".parquet": "parquet"}


def require_npz(path: Path, flag: str) -> None:
    """Refuse a file that is not an .npz at all (a CSV, JSON or log export given where features
    are read), saying what to run on it; a damaged .npz is left to `read_arrays` to name.

    Raises:
        ConfigError: `path` is a regular file that does not start as a zip archive (.npz) does.
    """
    if not path.is_file():  # missing, a folder, a FIFO: read_arrays says which
        return
    with open(path, "rb") as handle:
        if handle.read(2) == b"PK":
            return
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = _EXPORT_TYPES.get(suffixes[-1].lower() if suffixes else "", "TYPE")
    types = "; TYPE as in collect --source: json, zeek, suricata, windows" if kind == "TYPE" else ""
    raise ConfigError(f"{flag} {path} is not a .npz feature file, the only input validate "
                      "checks (preprocess and split write them); for events (a CSV, JSON or log "
                      f"export) run `maximus-train preprocess --source {kind}:{path}` first, or "
                      f"`maximus-train collect --source {kind}:{path} --output DIR` to check its "
                      f"records (each bad one quarantined with its file, line and reason){types}")


def cmd_validate(args: argparse.Namespace) -> int:
    from training.datasets.validator import DataValidator

    require_npz(args.data, "--data")
    if args.reference is not None:
        require_npz(args.reference, "--reference")
    layer, data = load_units(args.data)
    features = layer.unit_features(data)
    reference = None
    if args.reference is not None:
        ref_layer, ref_data = load_units(args.reference)
        if ref_layer.name != layer.name:
            raise ConfigError(f"--reference {args.reference} holds {ref_layer.name} "
                              f"{ref_layer.unit}s, --data {args.data} {layer.name} "
                              f"{layer.unit}s; give a reference of the same layer (e.g. its "
                              "train split)")
        reference = _rows(ref_layer.unit_features(ref_data))
    validator = DataValidator(_rows(features), layer.labels(data), reference,
                              feature_names=layer.feature_names(data))
    result = validator.validate(check_drift=reference is not None,
                                drift_threshold=args.drift_threshold)
    DataValidator.print_report(result)
    if args.report is not None:
        for suffix in (".txt", ".json"):
            DataValidator.save_report(result, args.report.with_suffix(suffix))
    return 0 if result.passed else 1


def _rows(features: Any) -> Any:
    """(units, features): a unit's feature block flattened into one row."""
    return features.reshape(len(features), -1)
