"""Per-feature standardization fitted on a training split, carried in the FeatureSpec.

The layer-2 and layer-3 featurizers are data-free (log scales into [0, 1]); the detectors then
standardize each feature with the mean and standard deviation of the training split, so that
every feature weighs alike in a reconstruction or forecast error. The fitted values travel in
the model's FeatureSpec (`fitted["scaling"]`, DESIGN.md principle 3); the data files keep the
builder's own spec, which `data_spec` recovers from the model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.errors import ConfigError, SchemaError
from training.features.encoding import FeatureSpec

FITTED_KEY = "scaling"  # the standardizers, in the model spec's fitted state
DATA_KEY = "data"  # the builder spec's own fitted state (None for the data-free builders)
MIN_STD = 0.02  # in units of the [0, 1] features: a feature almost constant in training
TRANSFORM_ROWS = 65_536  # rows standardized at a time


@dataclass(frozen=True)
class Standardizer:
    """(x - mean) / std per feature, std floored at `MIN_STD`.

    The floor keeps a feature that never varied in training (alerts in flow-only data) from
    turning rounding noise into huge scores, while a real change of it still stands out.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, name: str) -> Standardizer:
        """Fit on the rows of `values` (n, features); `name` says what, in errors."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or not len(values):
            rows = values.shape[0] if values.ndim else 0
            raise ConfigError(f"cannot fit the {name} scaling on {rows} rows; the training "
                              "split has no unit to learn from")
        require_finite(values, f"the training {name} features (the units its scaling is fitted "
                       "on)", rows=False)
        return cls(values.mean(axis=0), np.maximum(values.std(axis=0), MIN_STD))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Standardized float32 copy of `values` (..., features), computed in float64 a block
        of rows at a time: whole, the float64 temporaries were 4x the input (1.2 GB more to
        score the layer-3 windows of 300k events)."""
        values = np.asarray(values)
        out = np.empty(values.shape, np.float32)
        rows, flat = values.reshape(-1, values.shape[-1]), out.reshape(-1, values.shape[-1])
        for start in range(0, len(rows), TRANSFORM_ROWS):
            block = rows[start:start + TRANSFORM_ROWS].astype(np.float64)
            flat[start:start + TRANSFORM_ROWS] = (block - self.mean) / self.std
        return out

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict, dim: int, name: str) -> Standardizer:
        """Read back `to_dict`, checking that it has `dim` features."""
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            std = np.asarray(data["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"the {name} scaling in the FeatureSpec is damaged: {exc}") from None
        if mean.shape != (dim,) or std.shape != (dim,) or not (std > 0).all():
            raise SchemaError(f"the {name} scaling in the FeatureSpec has {mean.shape} means and "
                              f"{std.shape} deviations for {dim} features")
        return cls(mean, std)


def require_finite(values: np.ndarray, what: str, *, rows: bool = True) -> None:
    """Refuse NaN or infinite values, naming `what` and the first bad row: standardized, they
    made a NaN scaling (refused as damaged) or NaN scores. A finite sum means every value is
    finite: one pass without a mask the size of the array. `rows`: name the first bad row (a
    row number of `values` as the caller's file numbers them)."""
    values = np.asarray(values)
    with np.errstate(over="ignore", invalid="ignore"):
        if not len(values) or np.isfinite(values.sum(dtype=np.float64)):
            return
    bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    if len(bad):
        first = f" (first: row {bad[0]})" if rows else ""
        raise SchemaError(f"{what} have NaN or infinite values in {len(bad)} rows{first}; clean "
                          "or re-featurize the data")


def with_scaling(spec: FeatureSpec, scaling: dict[str, Standardizer]) -> FeatureSpec:
    """The model's spec: the builder's `spec` plus the fitted standardizers."""
    fitted = {DATA_KEY: spec.fitted, FITTED_KEY: {k: v.to_dict() for k, v in scaling.items()}}
    return FeatureSpec(spec.layer, spec.version, spec.config, fitted)


def scaling_of(spec: FeatureSpec, dims: dict[str, int]) -> dict[str, Standardizer]:
    """The standardizers a model spec carries, by name, each checked for its feature count.

    Raises:
        SchemaError: the spec has no fitted scaling (it is a data file's spec, not a model's).
    """
    fitted = spec.fitted or {}
    if FITTED_KEY not in fitted:
        raise SchemaError(f"the {spec.layer} FeatureSpec has no fitted scaling (a data file's, "
                          "not a model's): score with the layer of the model's own spec, "
                          "Layer.from_spec(results['feature_spec']) after training or "
                          "layer_for_spec(loaded.feature_spec) of a loaded model, or fit "
                          "one on the training split (layer.fit(train))")
    return {name: Standardizer.from_dict(fitted[FITTED_KEY].get(name, {}), dim, name)
            for name, dim in dims.items()}


def data_spec(spec: FeatureSpec) -> FeatureSpec:
    """The builder spec a model spec was fitted on (what the data files carry)."""
    fitted = spec.fitted or {}
    if FITTED_KEY not in fitted:
        return spec
    return FeatureSpec(spec.layer, spec.version, spec.config, fitted.get(DATA_KEY))
