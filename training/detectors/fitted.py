"""Detectors that learn in one pass over the data (ECOD, kNN distance, an isolation forest),
trained through the same `LayerTrainer` as the networks.

The trainer does not know them apart (DESIGN.md principle 6). In the one epoch such a detector
allows (`max_epochs = 1`), its `training_step` collects the rows training learns from and
returns a constant zero loss: it has no parameters, so the optimizer's step is a no-op. At the
end of the training pass the trainer calls `on_train_epoch_end`, where the detector fits on
everything it collected; validation, threshold calibration and checkpoints then run as for any
model. The validation "loss" is the mean anomaly score of the validation units training would
learn from (the benign ones).

The rows are put in lexicographic order before fitting, so the fitted state does not depend on
the order the batches came in (shuffled or not). Subsampling and any randomness of the fit come
from `seed`, or, when it is None, from torch's generator (which the trainer seeds from the
config, as it does a network's initial weights).

Fitted state is plain tensors registered as buffers (saved in the state_dict, read back with
`weights_only=True`; nothing is pickled). Their sizes are known only after fitting, so loading
adopts the sizes of the saved tensors, after `check_state` has checked them: the right dtype and
number of dimensions, the width `input_dim`, every index in range, every value finite. A file
that breaks a rule is refused with a CheckpointError naming the tensor and the rule.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from training.detectors.rows import RowDetector
from training.errors import CheckpointError, ConfigError


class FittedDetector(RowDetector):
    """A row detector fitted in one pass (see the module docstring).

    Args:
        input_dim, inputs: see `RowDetector`.
        seed: seed of the fit's randomness; None = drawn from torch's generator.
        max_rows: fit on at most this many rows (a random subsample beyond it).
        init_args: the subclass's own hyperparameters.

    Class attributes:
        state: buffer name -> (dtype, number of dimensions) of the fitted state.
        randomized: the fit draws random numbers even without subsampling (so its result
            depends on the seed whatever the number of rows).
    """

    max_epochs = 1
    graph_capturable = False
    state: ClassVar[dict[str, tuple[torch.dtype, int]]]
    randomized: ClassVar[bool] = False

    def __init__(self, *, input_dim: int, inputs: str = "vector", seed: int | None = None,
                 max_rows: int | None = None, **init_args: Any) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0):
            raise ConfigError(f"seed must be None or an integer >= 0, got {seed!r}")
        if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int)
                                     or max_rows < 1):
            raise ConfigError(f"max_rows must be None or an integer >= 1, got {max_rows!r}")
        super().__init__(input_dim=input_dim, inputs=inputs, seed=seed, max_rows=max_rows,
                         **init_args)
        self.seed, self.max_rows = seed, max_rows
        for name, (dtype, ndim) in self.state.items():
            self.register_buffer(name, torch.zeros((0,) * ndim, dtype=dtype))
        self._collected: list[np.ndarray] = []

    # -- fitting ---------------------------------------------------------------------------

    @abstractmethod
    def fit_array(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The fitted state learnt from `x` (rows, input_dim) float32: buffer name -> array."""

    @abstractmethod
    def score_array(self, x: np.ndarray) -> np.ndarray:
        """Anomaly scores (rows,) float64 of `x` (rows, input_dim) float32, once fitted."""

    @property
    def fitted(self) -> bool:
        return all(getattr(self, name).numel() > 0 for name in self.state)

    def fit(self, x: np.ndarray | torch.Tensor) -> FittedDetector:
        """Fit on the rows `x` (rows, input_dim) directly; returns self."""
        x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim or not len(x):
            raise ConfigError(f"{type(self).__name__} fits on (rows >= 1, {self.input_dim}) "
                              f"rows, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ConfigError(f"{type(self).__name__}: the training rows have NaN or infinite "
                              "values")
        x = x[np.lexsort(x.T[::-1])]  # canonical order: the fit ignores the batch order
        rng = np.random.default_rng(self.seed if self.seed is not None
                                    else int(torch.randint(2**31 - 1, ()).item()))
        if self.max_rows is not None and len(x) > self.max_rows:
            x = x[np.sort(rng.choice(len(x), self.max_rows, replace=False))]
        state = {name: torch.from_numpy(np.ascontiguousarray(value))
                 for name, value in self.fit_array(x, rng).items()}
        self.check_state(state)
        device = next(self.buffers()).device
        for name, value in state.items():
            self._buffers[name] = value.to(device)
        self.reset_caches()
        return self

    def reset_caches(self) -> None:
        """Forget anything derived from the state (called after fitting and loading)."""

    def training_step(self, batch: Any) -> torch.Tensor:
        rows = self.fit_rows(batch)
        if self.training:
            self._collected.append(rows.detach().float().cpu().numpy().copy())
        # No gradient objective: a constant the trainer's backward and optimizer step accept.
        return torch.zeros((), device=rows.device, requires_grad=True)

    def on_train_epoch_end(self) -> None:
        collected, self._collected = self._collected, []
        rows = np.concatenate(collected) if collected else np.zeros((0, self.input_dim))
        if not len(rows):
            raise ConfigError(f"{type(self).__name__} collected no row to fit on: the training "
                              "batches had no unit to learn from")
        self.fit(rows)

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        scores = self._scores(self.fit_rows(batch))
        return {"loss": scores.mean() if len(scores) else scores.new_zeros(())}

    # -- scoring ---------------------------------------------------------------------------

    def anomaly_score(self, batch: Any) -> torch.Tensor:
        """One score per unit, higher = more anomalous.

        Shapes:
            returns (units,), float32.
        """
        return self._scores(self.rows(batch))

    def require_fitted(self) -> None:
        """Raises ConfigError when the detector has not been fitted (nor loaded fitted)."""
        if not self.fitted:
            raise ConfigError(f"{type(self).__name__} is not fitted: train it (train_layer, "
                              "LayerTrainer) or load a fitted model")

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        self.require_fitted()
        if not len(x):
            return x.new_zeros(0)
        scores = self.score_array(x.detach().float().cpu().numpy())
        return torch.from_numpy(scores).float().to(x.device)

    # -- state -----------------------------------------------------------------------------

    def check_state(self, state: dict[str, torch.Tensor]) -> None:
        """Check fitted state `state` (every buffer, or all of them empty: not fitted).

        Subclasses check their own rules after this one (shapes that must agree, index
        ranges, values).

        Raises:
            CheckpointError: a buffer breaks a rule; the message names it and the rule.
        """
        for name, (dtype, ndim) in self.state.items():
            value = state.get(name)
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{type(self).__name__}: fitted state {name!r} is missing")
            if value.dtype != dtype or value.ndim != ndim:
                raise CheckpointError(f"{type(self).__name__}: {name} must be a {ndim}-d "
                                      f"{dtype} tensor, got {value.ndim}-d {value.dtype}")
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise CheckpointError(f"{type(self).__name__}: {name} has NaN or infinite "
                                      "values")

    @staticmethod
    def unfitted(state: dict[str, torch.Tensor]) -> bool:
        """Every buffer of `state` is empty (a model saved before fitting)."""
        return all(value.numel() == 0 for value in state.values())

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The saved tensors' sizes are the fitted ones: take them, after checking them, so
        # that copying the state in finds buffers of the right shape.
        mine = {name: state_dict[prefix + name] for name in self.state
                if prefix + name in state_dict}
        if len(mine) == len(self.state):
            self.check_state(mine)
            for name, value in mine.items():
                self._buffers[name] = torch.empty_like(value, device=self._buffers[name].device)
        super()._load_from_state_dict(state_dict, prefix, *args)
        self.reset_caches()


def check_width(detector: FittedDetector, name: str, value: torch.Tensor) -> None:
    """`value`'s last dimension is the detector's `input_dim` (unless empty)."""
    if value.numel() and value.shape[-1] != detector.input_dim:
        raise CheckpointError(f"{type(detector).__name__}: {name} has {value.shape[-1]} "
                              f"features, the model reads {detector.input_dim}")


class TermwiseDetector(FittedDetector):
    """A fitted detector whose score is the sum of per-feature terms (ECOD's tail
    probabilities, kNN's squared distances): the terms are its `feature_terms`."""

    @abstractmethod
    def term_array(self, x: np.ndarray) -> np.ndarray:
        """Per-feature terms (rows, input_dim) float64 of `x`, once fitted."""

    def score_array(self, x: np.ndarray) -> np.ndarray:
        return self.term_array(x).sum(axis=1)

    def feature_terms(self, batch: Any) -> torch.Tensor:
        self.require_fitted()
        x = self.rows(batch)
        terms = self.term_array(x.detach().float().cpu().numpy())
        return torch.from_numpy(terms).float().to(x.device)
