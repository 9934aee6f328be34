"""Feature values read back in their real units, for the reasons of layers 2 and 3.

The layer-2 and layer-3 featurizers put each aggregate on a data-free [0, 1] scale (a count,
bytes or seconds as `log_scale(x, cap)`; a share as it is), and the model standardizes each
dim with the training split's mean and deviation (`training.features.scaling`). A `Readout`
undoes both for one row of model values, dim by dim, so an alert says "1,000 distinct ports"
rather than "10.94". Each layer says which `Dim` every feature is next to its featurizer
(`training.features.layer2_readout`, `training.features.layer3_readout`).

A log-scaled value at its cap (or a forecast past it) reads ">= cap": the scale holds nothing
beyond. One below 0 reads 0, as the featurizer maps every x <= 0 there.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

# A log-scaled value this close to 1 is at the cap: the float32 features and their
# standardization round trip are exact to about 1e-7 there.
AT_CAP = 1e-6
_INTEGER_DIGITS = 6  # float32 log scales hold about 6 significant digits of a large count


def unlog_scale(scaled: np.ndarray, cap: float) -> np.ndarray:
    """The inverse of `training.features.encoding.log_scale` on [0, 1]: expm1(s * log1p(cap)),
    s clipped to [0, 1] first."""
    return np.expm1(np.clip(np.asarray(scaled, np.float64), 0.0, 1.0) * math.log1p(cap))


class Dim(ABC):
    """How one feature dim reads back, from the featurizer's scale to text for people."""

    standardized = False  # True: the dim has no real unit; its text is the model's own value

    @abstractmethod
    def texts(self, values: np.ndarray) -> list[str]:
        """Each value (featurizer scale, (rows,)) as text; NaN is never passed."""


@dataclass(frozen=True)
class LogCount(Dim):
    """A count, bytes or packets on `log_scale(x, cap)`: an integer."""

    cap: float

    def texts(self, values: np.ndarray) -> list[str]:
        amounts = unlog_scale(values, self.cap)
        return [f">= {_integer(self.cap)}" if v >= 1.0 - AT_CAP else _integer(x)
                for v, x in zip(values.tolist(), amounts.tolist())]


@dataclass(frozen=True)
class LogSeconds(Dim):
    """A duration in seconds on `log_scale(x, cap)`, to the microsecond (what Zeek logs, and
    above the float32 noise): 3 significant digits, whole seconds from 1,000 s."""

    cap: float

    def texts(self, values: np.ndarray) -> list[str]:
        amounts = np.round(unlog_scale(values, self.cap), 6)
        return [f">= {_integer(self.cap)} s" if v >= 1.0 - AT_CAP else f"{_seconds(x)} s"
                for v, x in zip(values.tolist(), amounts.tolist())]


@dataclass(frozen=True)
class Share(Dim):
    """A share or ratio in [0, 1] as it is: 3 decimals (a forecast outside is clipped)."""

    def texts(self, values: np.ndarray) -> list[str]:
        return [f"{v:.3f}" for v in np.clip(values, 0.0, 1.0).tolist()]


@dataclass(frozen=True)
class Standardized(Dim):
    """A dim without a natural unit (a mean layer-1 vector dim): the standardized value the
    model sees, 4 significant digits."""

    standardized = True

    def texts(self, values: np.ndarray) -> list[str]:
        return [f"{v:.4g}" for v in values.tolist()]


@dataclass(frozen=True)
class Readout:
    """Model values (standardized) of a layer's score terms back to text in real units.

    Attributes:
        dims: how each term reads back, in the order of the detector's terms.
        mean, std: each term's standardizer ((terms,); a `Standardized` dim's are ignored).
    """

    dims: tuple[Dim, ...]
    mean: np.ndarray
    std: np.ndarray

    def texts(self, values: np.ndarray) -> list[list[str | None]]:
        """Per row of `values` (rows, terms; NaN: no value), each term's text (None for NaN).

        Raises:
            ValueError: `values` does not have one column per dim.
        """
        values = np.asarray(values, np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.dims):
            raise ValueError(f"values must be (rows, {len(self.dims)}), got {values.shape}")
        keep = np.array([d.standardized for d in self.dims], bool)
        plain = np.where(keep, values, values * self.std + self.mean)  # (rows, terms)
        columns = []
        for j, dim in enumerate(self.dims):
            column, known = plain[:, j], ~np.isnan(plain[:, j])
            texts: list[str | None] = [None] * len(column)
            for i, text in zip(np.flatnonzero(known).tolist(), dim.texts(column[known])):
                texts[i] = text
            columns.append(texts)
        return [list(row) for row in zip(*columns)] if columns else [[] for _ in values]


def _seconds(x: float) -> str:
    if x >= 1000:
        return f"{x:.0f}"
    return f"{x:.3g}" if x >= 1e-3 or x == 0 else f"{x:.6f}".rstrip("0")


def _integer(x: float) -> str:
    """x rounded to a whole number, and to `_INTEGER_DIGITS` significant digits."""
    digits = len(str(int(abs(x)))) if abs(x) >= 1 else 1
    return str(int(round(x, min(0, _INTEGER_DIGITS - digits))))
