"""Model files: a plain state_dict (`<name>.pt`) beside a JSON sidecar (`<name>.json`).

The sidecar (DESIGN.md principle 3) holds what is needed to rebuild and trust the weights: the
detector class name (looked up in `training.detectors.DETECTORS`, never imported from the
file), its constructor arguments, the FeatureSpec, the anomaly threshold calibrated on
validation data with its calibration (`calibration`: the benign validation score distribution
and the rule, `training.evaluation.calibration`; absent in models saved before it existed), the
time span of the data it was trained and validated on (`data_span`,
`training.evaluation.training_span`; absent in models saved before it existed), and the sha256
of the weights file. Loading checks the sha256 before reading
the weights, and reads them with `weights_only=True`: nothing in either file is executed.

A sidecar is validated in full before anything is built from it (registration loads the
model the same way): every field's type and range, a finite threshold, JSON-able constructor
arguments with finite numbers, a FeatureSpec that parses. The model it declares is first built
on PyTorch's "meta" device, which allocates nothing: a model over `MAXIMUS_MAX_MODEL_BYTES`
(default 1 GiB) of parameters, or one whose shapes differ from the weights file's, is refused
before a byte of it is allocated.

The `.pt` stays a bare state_dict so the original quick start's
`model.load_state_dict(torch.load(path))` keeps working.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from training.artifacts.atomic import atomic_write, read_regular
from training.artifacts.limits import byte_limit
from training.detectors.base import Detector, detector_class
from training.errors import CheckpointError, PipelineError
from training.evaluation.calibration import Calibration
from training.evaluation.training_span import DataSpan
from training.features.encoding import FeatureSpec

FORMAT = "maximus.model.v1"
MODEL_LIMIT_VARIABLE = "MAXIMUS_MAX_MODEL_BYTES"
DEFAULT_MODEL_LIMIT = 1 << 30
_SHA256 = re.compile(r"[0-9a-f]{64}")
# torch.load(weights_only=True) refusing a pickle: its words, and the global it names.
_REFUSED = "Weights only load failed"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
PLAIN_WEIGHTS = ("a model file must be plain weights (a state_dict, as save_model and "
                 "torch.save(model.state_dict(), path) write)")


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

    @cached_property
    def data_span(self) -> DataSpan | None:
        """The first and last unit time of the data it was trained and validated on; None
        for models saved before sidecars recorded it, or trained on units without times."""
        return DataSpan.from_dict(self.sidecar.get("data_span"))

    @property
    def threshold_rule(self) -> str | None:
        """How the threshold was set, in words (None when the sidecar does not say)."""
        if self.calibration is not None:
            return self.calibration.rule
        how = self.sidecar.get("threshold")
        return how.get("rule") if isinstance(how, dict) else None


def make_sidecar(model_class: str, init_args: dict[str, Any], sha256: str, weights_file: str, *,
                 feature_spec: FeatureSpec | None = None, threshold: float | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar of weights with `sha256`, rebuilt as `model_class(**init_args)`."""
    return {
        "format": FORMAT,
        "model_class": model_class,
        "init_args": init_args,
        "feature_spec": feature_spec.to_json() if feature_spec is not None else None,
        "anomaly_threshold": None if threshold is None else float(threshold),
        "weights_file": weights_file,
        "sha256": sha256,
        "torch_version": torch.__version__,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def save_model(model: torch.nn.Module, path: str | Path, *,
               feature_spec: FeatureSpec | None = None, threshold: float | None = None,
               extra: dict[str, Any] | None = None) -> Path:
    """Write `model`'s state_dict to `path` and, for a Detector, its sidecar beside it, each
    atomically.

    Both are written in full to temporary files before either is renamed into place, so a failed
    write (a full disk) leaves the previous pair untouched and loadable. The weights are renamed
    first: a crash between the two renames leaves a sidecar whose sha256 no longer matches,
    which `load_model` refuses, rather than a sidecar describing weights never written.

    Any other `nn.Module` (one this package cannot rebuild from a sidecar: not a Detector, or
    a wrapper without `init_args`) gets its plain state_dict only, which the registry takes as
    an opaque artifact.

    Returns:
        The sidecar's path (the weights' path for a module without one).
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    data = buffer.getvalue()
    if not isinstance(model, Detector) or model.init_args is None:
        with atomic_write(path) as handle:
            handle.write(data)
        return path
    sidecar = make_sidecar(type(model).__name__, model.init_args, sha256_bytes(data), path.name,
                           feature_spec=feature_spec, threshold=threshold, extra=extra)
    side = sidecar_path(path)
    # The inner block (the weights) is renamed into place first, the sidecar after it.
    with atomic_write(side) as side_handle, atomic_write(path) as weights_handle:
        weights_handle.write(data)
        side_handle.write(json.dumps(sidecar, indent=2, sort_keys=True).encode())
    return side


def max_model_bytes() -> int:
    """Bytes of parameters and buffers a sidecar may declare (MAXIMUS_MAX_MODEL_BYTES)."""
    return byte_limit(MODEL_LIMIT_VARIABLE, DEFAULT_MODEL_LIMIT)


def read_sidecar(path: str | Path, data: bytes | None = None) -> dict[str, Any]:
    """The sidecar of weights file `path` (read from disk, or parsed from `data` already read),
    validated in full (see the module docstring).

    Raises:
        CheckpointError: missing, not JSON, or a field of the wrong type or range (named).
    """
    side = sidecar_path(path)
    try:
        # Python's reader takes NaN and Infinity; the fields they land in are refused below.
        sidecar = json.loads(read_regular(side) if data is None else data)
    except FileNotFoundError:
        raise CheckpointError(f"{side}: no sidecar beside {Path(path).name}; a model file "
                              "needs the JSON written with it by save_model") from None
    except OSError as exc:
        raise CheckpointError(f"{side}: cannot read the sidecar ({exc.strerror})") from None
    except ValueError as exc:
        raise CheckpointError(f"{side}: not valid JSON ({exc})") from exc
    missing = [k for k in ("format", "model_class", "init_args", "sha256")
               if not isinstance(sidecar, dict) or k not in sidecar]
    if missing:
        raise CheckpointError(f"{side}: missing {', '.join(missing)}; not a model sidecar")
    if sidecar["format"] != FORMAT:
        raise CheckpointError(f"{side}: format {sidecar['format']!r}, expected {FORMAT!r}")
    problem = _sidecar_problem(sidecar)
    if problem is not None:
        raise CheckpointError(f"{side}: {problem}; the sidecar was damaged or edited after "
                              "save_model wrote it: save the model again")
    return sidecar


def _sidecar_problem(sidecar: dict[str, Any]) -> str | None:
    """The first field of a sidecar that breaks its rule, in words; None when all are fine."""
    name, args, digest = sidecar["model_class"], sidecar["init_args"], sidecar["sha256"]
    threshold, spec = sidecar.get("anomaly_threshold"), sidecar.get("feature_spec")
    if not isinstance(name, str) or not name.isidentifier():
        return f"model_class must be a class name, got {name!r}"
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        return f"init_args must be an object of named arguments, got {_short(args)}"
    bad = _first_non_finite(args)
    if bad is not None:
        return f"init_args {bad}"
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        return f"sha256 must be 64 lower-case hex digits, got {_short(digest)}"
    if threshold is not None and (isinstance(threshold, bool)
                                  or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold)):
        return f"anomaly_threshold must be a finite number or null, got {_short(threshold)}"
    if spec is not None:
        if not isinstance(spec, str):
            return f"feature_spec must be the FeatureSpec's JSON text, got {_short(spec)}"
        try:
            FeatureSpec.from_json(spec)
        except PipelineError as exc:
            return f"feature_spec is not a FeatureSpec ({exc})"
    try:
        DataSpan.from_dict(sidecar.get("data_span"))
    except PipelineError as exc:
        return str(exc)
    for field in ("weights_file", "torch_version", "saved_at"):
        if not isinstance(sidecar.get(field, ""), str):
            return f"{field} must be text, got {_short(sidecar[field])}"
    return None


def _first_non_finite(value: object, where: str = "") -> str | None:
    """Where a JSON value holds something no constructor argument may be, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'value'} is {value!r}, not a finite number"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _first_non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _short(value: object) -> str:
    return _short_text(repr(value))


def _short_text(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
        refusal = code_refusal(path, exc)
        if refusal is not None:
            raise refusal from None  # torch's text, which -v would print, advises unsafe loading
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: not a readable PyTorch weights file, or a damaged one "
                              f"({type(exc).__name__}: {_short_text(first, 120)})") from exc


def code_refusal(path: str | Path, exc: Exception, rule: str = PLAIN_WEIGHTS,
                 advice: str = "") -> CheckpointError | None:
    """The error to raise when `torch.load(path, weights_only=True)` failed with `exc` because
    the pickle would build something other than tensors (code, objects): it names the file,
    what is pickled, `rule` and `advice`. PyTorch's own text advises retrying with
    weights_only=False, which would run it, so it is not passed on. None for any other failure.
    """
    if not (isinstance(exc, pickle.UnpicklingError) and _REFUSED in str(exc)):
        return None
    found = _GLOBAL.search(str(exc))
    what = found.group(1) if found else "objects that are not tensors"
    return CheckpointError(f"{path} holds code or objects other than weights (pickled {what}), "
                           f"refused: {rule}; nothing in it was run"
                           + (f"; {advice}" if advice else ""))


def declared_model(path: str | Path, sidecar: dict[str, Any]
                   ) -> tuple[type[Detector], dict[str, tuple[int, ...]]]:
    """The detector class a sidecar names and the shape of each tensor of the model its
    init_args declare, found by building it on the meta device (nothing is allocated).

    Raises:
        CheckpointError: an unknown class, arguments it refuses, or a model over the size limit.
    """
    side = sidecar_path(path)
    try:
        cls = detector_class(sidecar["model_class"])
        with torch.device("meta"):
            skeleton = cls(**sidecar["init_args"])
    except (TypeError, ValueError, RuntimeError) as exc:  # ConfigError is a ValueError
        raise CheckpointError(f"{side}: cannot build {sidecar['model_class']} from init_args "
                              f"{_short(sidecar['init_args'])}: {exc}") from exc
    tensors = {**dict(skeleton.named_parameters()), **dict(skeleton.named_buffers())}
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    limit = max_model_bytes()
    if size > limit:
        raise CheckpointError(f"{side}: init_args {_short(sidecar['init_args'])} declare a "
                              f"{cls.__name__} of {size:,} bytes, over the limit of {limit:,} "
                              f"({MODEL_LIMIT_VARIABLE}); nothing was allocated. Raise "
                              f"{MODEL_LIMIT_VARIABLE} if the model is genuine")
    return cls, {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}


def _fits(found: tuple | None, declared: tuple | None) -> bool:
    """A file tensor's shape against the model's: equal, or any shape of the same rank for a
    state the detector sizes when it is fitted (declared empty in every dimension)."""
    if found is None or declared is None:
        return False
    fitted_later = len(declared) > 0 and not any(declared)
    return found == declared or (fitted_later and len(found) == len(declared))


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
    cls, shapes = declared_model(path, sidecar)
    state = read_weights(path, sidecar["sha256"], map_location)
    found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    older = set(cls.added_state) - found.keys()  # saved before the detector had them
    differ = sorted(k for k in (found.keys() | shapes.keys()) - older
                    if not _fits(found.get(k), shapes.get(k)))
    if differ:
        key = differ[0]
        raise CheckpointError(f"{path}: the weights do not fit the {cls.__name__} its sidecar "
                              f"declares ({sidecar_path(path).name} init_args "
                              f"{_short(sidecar['init_args'])}): {key} is "
                              f"{found.get(key, 'missing')} in the file, "
                              f"{shapes.get(key, 'absent')} in the model ({len(differ)} differ)")
    try:
        model = cls(**sidecar["init_args"])
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild {cls.__name__} from its sidecar: {exc}") from exc
    loaded = LoadedModel(model.to(map_location).eval(), sidecar)
    if expected_spec is not None:
        spec = loaded.feature_spec
        if spec is None:
            raise CheckpointError(f"{path}: the sidecar has no FeatureSpec to check against")
        spec.require(expected_spec, f"model {path}")
    return loaded
