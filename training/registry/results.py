"""What the registry returns: values that serve the original API and this one at once.

The original registry returned paths and plain dicts; this one returns loaded models and
metadata. Each result here is both:

| call | original result | here |
|---|---|---|
| `register_model` | the registered file's `Path` | `RegisteredPath`: path-like (`os.fspath`, `open`, `torch.load`, `.exists()`, `/`), and the stored `ModelMetadata` (`.metadata`, `.version`, `.stage`, ...) |
| `get_model` | `Path` or None | `RegisteredModel` (the verified detector, `.model`) or, for a model registered without a sidecar, a `RegisteredPath`; both path-like; None when nothing matches |
| `list_models` | `{name: [versions]}` | `ModelVersions`: a list of `ModelMetadata` that is also that mapping (`["name"]`, `.items()`, `==` a dict) |
| `compare_models` | `{version: value}` | `Comparison`: that dict, plus `.metric`, `.direction`, `.best` (and `["best"]` ...) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.artifacts.model_files import LoadedModel
from training.errors import CheckpointError
from training.registry.metadata import ModelMetadata


class _PathLike(os.PathLike):
    """A registered model file: path-like, with the path's and then the metadata's attributes."""

    path: Path
    metadata: ModelMetadata

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __truediv__(self, other: str | os.PathLike) -> Path:
        return self.path / other

    def __getattr__(self, name: str) -> Any:
        # Only called for names the object itself lacks: `.exists()`, `.parent` (the path's),
        # `.version`, `.stage` (the metadata's).
        if name.startswith("_") or name in ("path", "metadata"):
            raise AttributeError(name)
        for target in (self.path, self.metadata):
            if hasattr(target, name):
                return getattr(target, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class RegisteredPath(_PathLike):
    """A registered version's weights file with its metadata (no model loaded).

    Attributes:
        path: the registered copy of the weights (`.../<model>/<version>/model.pt`).
        metadata: the version's metadata as stored.
        opaque: registered without a sidecar: verified by sha256, never loaded as a detector.
    """

    def __init__(self, path: Path, metadata: ModelMetadata, opaque: bool) -> None:
        self.path, self.metadata, self.opaque = Path(path), metadata, opaque

    @property
    def model(self) -> Any:
        m = self.metadata
        if self.opaque:
            raise CheckpointError(
                f"{m.model_name} {m.version} was registered without a sidecar: an opaque "
                f"artifact (sha256 {str(m.weights_sha256)[:16]}..., {self.path}) that is "
                "never loaded into a detector. Load the weights into your own module with "
                "module.load_state_dict(torch.load(path, weights_only=True)), or attach a "
                f"sidecar: registry.attach_sidecar({m.model_name!r}, {m.version!r}, "
                "model_class='Layer1VAE', init_args={...}) names the detector class and its "
                "arguments, after which get_model loads it")
        raise CheckpointError(f"{m.model_name} {m.version} is not loaded here; "
                              f"registry.get_model({m.model_name!r}, {m.version!r}) loads it")

    def __eq__(self, other: object) -> bool:
        # Equal to its path (the original's result) and to its metadata (this API's before).
        if isinstance(other, ModelMetadata):
            return self.metadata == other
        if isinstance(other, (str, os.PathLike)):
            return self.path == Path(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return (f"RegisteredPath({str(self.path)!r}, {self.metadata.model_name} "
                f"{self.metadata.version}, stage={self.metadata.stage!r}"
                f"{', opaque' if self.opaque else ''})")


@dataclass(frozen=True)
class RegisteredModel(_PathLike, LoadedModel):
    """A model loaded from the registry (verified): a `LoadedModel` with its metadata and the
    path of its registered weights, itself path-like (the original `get_model` returned the
    path)."""

    metadata: ModelMetadata
    path: Path

    opaque = False  # it has a sidecar: it was loaded


class ModelVersions(list):
    """Registered versions: a list of `ModelMetadata` (registration order within a model),
    which is also the original `{model_name: [versions]}` mapping.

    Iterating and `len` are the list's (versions); `["name"]`, `keys()`, `values()`,
    `items()`, `get()`, `"name" in` and `==` a dict are the mapping's.
    """

    def as_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for m in self:
            out.setdefault(m.model_name, []).append(m.version)
        return out

    def keys(self) -> Any:
        return self.as_dict().keys()

    def values(self) -> Any:
        return self.as_dict().values()

    def items(self) -> Any:
        return self.as_dict().items()

    def get(self, name: str, default: Any = None) -> Any:
        return self.as_dict().get(name, default)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.as_dict()[key]
        return super().__getitem__(key)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self.as_dict()
        return super().__contains__(item)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.as_dict() == dict(other)
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]


class Comparison(dict):
    """`compare_models`: {version: value} for the versions that have the metric (the
    original's result), with which way the metric points and the best version.

    Attributes:
        metric, direction ("min"/"max"), best (None when no version has the metric),
        all_values ({version: value or None} for every version asked about), missing (the
        versions without the metric, which are never the best: a missing value is no 0).
    `comparison["metric"]`, `["direction"]`, `["values"]`, `["best"]` and `["missing"]` give
    the same (unless a version has that name).
    """

    def __init__(self, metric: str, direction: str, values: dict[str, float | None]) -> None:
        known = {v: x for v, x in values.items() if x is not None}
        super().__init__(known)
        self.metric, self.direction, self.all_values = metric, direction, dict(values)
        self.missing = [v for v, x in values.items() if x is None]
        pick = min if direction == "min" else max
        self.best = pick(known, key=known.__getitem__) if known else None

    def summary(self) -> dict[str, Any]:
        return {"metric": self.metric, "direction": self.direction,
                "values": self.all_values, "best": self.best, "missing": self.missing}

    def __missing__(self, key: str) -> Any:
        summary = self.summary()
        if key in summary:
            return summary[key]
        raise KeyError(key)
