"""Model files: a plain state_dict (`<name>.pt`) beside a JSON sidecar (`<name>.json`).

The sidecar (DESIGN.md principle 3) holds what is needed to rebuild and trust the weights: the
detector class name (looked up in `training.detectors.DETECTORS`, never imported from the
file), its constructor arguments, the FeatureSpec, the anomaly threshold calibrated on
validation data with its calibration (`calibration`: the benign validation score distribution
and the rule, `training.evaluation.calibration`; absent in models saved before it existed), and
the sha256 of the weights file. Loading checks the sha256 before reading
the weights, and reads them with `weights_only=True`: nothing in either file is executed.

The `.pt` stays a bare state_dict so the original quick start's
`model.load_state_dict(torch.load(path))` keeps working.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from training.artifacts.atomic import atomic_write
from training.detectors.base import Detector, detector_class
from training.errors import CheckpointError
from training.evaluation.calibration import Calibration
from training.features.encoding import FeatureSpec

FORMAT = "maximus.model.v1"


def sidecar_path(weights: str | Path) -> Path:
    """`<name>.json` beside `<name>.pt`."""
    return Path(weights).with_suffix(".json")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LoadedModel:
    """A rebuilt model (on `map_location`, in eval mode) with what its sidecar says."""

    model: Detector
    sidecar: dict[str, Any]

    @cached_property
    def feature_spec(self) -> FeatureSpec | None:
        text = self.sidecar.get("feature_spec")
        return FeatureSpec.from_json(text) if text else None

    @property
    def threshold(self) -> float | None:
        return self.sidecar.get("anomaly_threshold")

    @cached_property
    def calibration(self) -> Calibration | None:
        """The benign validation score distribution the threshold came from; None for models
        saved before calibrations existed (they still have their threshold)."""
        data = self.sidecar.get("calibration")
        return Calibration.from_dict(data, f"{self.sidecar.get('weights_file')} sidecar") \
            if data else None

    @property
    def threshold_rule(self) -> str | None:
        """How the threshold was set, in words (None when the sidecar does not say)."""
        if self.calibration is not None:
            return self.calibration.rule
        how = self.sidecar.get("threshold")
        return how.get("rule") if isinstance(how, dict) else None


def save_model(model: Detector, path: str | Path, *, feature_spec: FeatureSpec | None = None,
               threshold: float | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write `model`'s state_dict to `path` and its sidecar beside it, each atomically.

    Both are written in full to temporary files before either is renamed into place, so a failed
    write (a full disk) leaves the previous pair untouched and loadable. The weights are renamed
    first: a crash between the two renames leaves a sidecar whose sha256 no longer matches,
    which `load_model` refuses, rather than a sidecar describing weights never written.

    Returns:
        The sidecar's path.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    data = buffer.getvalue()
    sidecar = {
        "format": FORMAT,
        "model_class": type(model).__name__,
        "init_args": model.init_args,
        "feature_spec": feature_spec.to_json() if feature_spec is not None else None,
        "anomaly_threshold": None if threshold is None else float(threshold),
        "weights_file": path.name,
        "sha256": sha256_bytes(data),
        "torch_version": torch.__version__,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    side = sidecar_path(path)
    # The inner block (the weights) is renamed into place first, the sidecar after it.
    with atomic_write(side) as side_handle, atomic_write(path) as weights_handle:
        weights_handle.write(data)
        side_handle.write(json.dumps(sidecar, indent=2, sort_keys=True).encode())
    return side


def read_sidecar(path: str | Path, data: bytes | None = None) -> dict[str, Any]:
    """The sidecar of weights file `path` (read from disk, or parsed from `data` already read),
    checked for the fields loading needs."""
    side = sidecar_path(path)
    try:
        sidecar = json.loads(side.read_bytes() if data is None else data)
    except FileNotFoundError:
        raise CheckpointError(f"{side}: no sidecar beside {Path(path).name}; a model file "
                              "needs the JSON written with it by save_model") from None
    except ValueError as exc:
        raise CheckpointError(f"{side}: not valid JSON ({exc})") from exc
    missing = [k for k in ("format", "model_class", "init_args", "sha256")
               if not isinstance(sidecar, dict) or k not in sidecar]
    if missing:
        raise CheckpointError(f"{side}: missing {', '.join(missing)}; not a model sidecar")
    if sidecar["format"] != FORMAT:
        raise CheckpointError(f"{side}: format {sidecar['format']!r}, expected {FORMAT!r}")
    return sidecar


def read_weights(path: str | Path, expected_sha256: str | None,
                 map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The state_dict in `path`, after checking its sha256 when one is expected."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such model file") from None
    if expected_sha256 is not None and sha256_bytes(data) != expected_sha256:
        raise CheckpointError(f"{path}: sha256 mismatch: the file is {sha256_bytes(data)[:16]}..., "
                              f"its sidecar expects {expected_sha256[:16]}...; the weights were "
                              "modified, truncated or replaced after saving")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(f"{path}: refused to load: {exc}") from exc


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu",
               expected_spec: FeatureSpec | None = None,
               sidecar: dict[str, Any] | None = None) -> LoadedModel:
    """Rebuild the model saved at `path` from its sidecar and verified weights.

    `sidecar` is the sidecar when the caller has already read it (`read_sidecar`).

    Raises:
        CheckpointError: missing or altered sidecar or weights, unknown class, mismatched state.
        SchemaError: `expected_spec` is not the transform the model was trained with.
    """
    sidecar = read_sidecar(path) if sidecar is None else sidecar
    state = read_weights(path, sidecar["sha256"], map_location)
    cls = detector_class(sidecar["model_class"])
    try:
        model = cls(**sidecar["init_args"])
        model.load_state_dict(state)
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild {cls.__name__} from its sidecar: {exc}") from exc
    loaded = LoadedModel(model.to(map_location).eval(), sidecar)
    if expected_spec is not None:
        spec = loaded.feature_spec
        if spec is None:
            raise CheckpointError(f"{path}: the sidecar has no FeatureSpec to check against")
        spec.require(expected_spec, f"model {path}")
    return loaded
