"""`score`, `score --follow` and `evaluate` read inputs as the model's training sources were
read: the field map, column names and label map its registered version records
(`training.sources.recorded`), for inputs of the same source type, unless the command gives
its own (`--field-map`, `--column-names`, `--label-map` win). One line says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.cli.options import sources_from_flags
from training.errors import NotFoundError
from training.sources.config import DataSource
from training.sources.recorded import SETTINGS, SETTINGS_KEY, read_as_recorded, recorded_line


def sources_as_trained(args: argparse.Namespace, specs: list[str] | None,
                       metadata: Any, flag: str = "--source") -> list[DataSource]:
    """The command's sources (`sources_from_flags`: the values of `flag`), read with what
    `metadata` (a registered version's `ModelMetadata`, or None: a model file, which records
    nothing) records for settings the command did not set; prints the line that says which."""
    sources = sources_from_flags(args, specs, flag)
    if metadata is None:
        return sources
    given = {name for name in SETTINGS if getattr(args, name, None) is not None}
    sources, used = read_as_recorded(sources, metadata.details.get(SETTINGS_KEY), given)
    line = recorded_line(used, f"{metadata.model_name} {metadata.version}")
    if line:
        print(line)
    return sources


def registered_metadata(registry: Any, args: argparse.Namespace) -> Any:
    """The metadata of the version `--model` with `--version`, `--stage` or `--alias` picks
    (as scoring picks it), or None when the registry has no such model (the fused detector,
    whose versions its fusion.json names; a missing name, which scoring reports)."""
    try:
        return registry.get_metadata(args.model, args.version, args.stage, alias=args.alias)
    except NotFoundError:
        check_model_name(registry, args.model)
        return None


def check_model_name(registry: Any, name: str) -> None:
    """`name` is a model `score` takes: a registered one, or the fused detector.

    Raises:
        NotFoundError: neither; the message gives the closest name and the choices, fused
            among them where the registry has a fused detector (`fusion.json`).
    """
    from training.evaluation.fusion import FUSED_NAME
    from training.registry.ops import unknown_model
    from training.scoring.fused import FUSION_FILE

    known = sorted({m.model_name for m in registry.list_models()})
    if name in known or name == FUSED_NAME:
        return
    if (Path(registry.registry_dir) / FUSION_FILE).is_file():
        known.append(FUSED_NAME)
    raise unknown_model(name, known)


def loaded_metadata(loaded: Any) -> Any:
    """A loaded model's registry metadata, or None for a model file (`evaluate --model F.pt`)."""
    return getattr(loaded, "metadata", None)
