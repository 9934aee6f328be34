"""k-nearest-neighbour distance: a unit is as anomalous as it is far from the training rows.

    score(x) = || x - r_k(x) ||^2

where r_k(x) is x's k-th nearest training row (Euclidean; found with scikit-learn's
`NearestNeighbors`). The per-feature terms are the squared differences to that neighbour, so
they sum to the score. The state is the training rows themselves (at most `max_rows`, a random
subsample beyond it), kept as a tensor; the neighbour index is rebuilt from it when first
needed after fitting or loading (nothing of scikit-learn is saved). Distances compare features
as they are, so the layer's scaling matters: event vectors are in [0, 1], layers 2 and 3 read
features standardized on the training units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from training.detectors.base import register_detector
from training.detectors.fitted import TermwiseDetector, check_width
from training.detectors.rows import register_row_detector
from training.errors import CheckpointError, ConfigError


@register_row_detector
@register_detector
class KNNDistance(TermwiseDetector):
    """Squared distance to the k-th nearest training row (see the module docstring).

    Args:
        input_dim, inputs, seed: see `FittedDetector` (the seed only picks the subsample).
        k: which neighbour's distance is the score (>= 1).
        max_rows: keep at most this many training rows.

    Shapes:
        fitted state: reference (n >= k, input_dim) float32. anomaly_score: (units,);
        feature_terms: (units, input_dim).
    """

    short_name = "knn"
    loss_args = ("inputs", "k")  # the k-th neighbour's distance grows with k
    state = {"reference": (torch.float32, 2)}

    def __init__(self, *, input_dim: int, inputs: str = "vector", k: int = 5,
                 seed: int | None = None, max_rows: int | None = 20_000) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        super().__init__(input_dim=input_dim, inputs=inputs, k=k, seed=seed, max_rows=max_rows)
        self.k = k
        self._index: Any = None

    def fit_array(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if len(x) < self.k:
            raise ConfigError(f"KNNDistance with k={self.k} needs at least {self.k} training "
                              f"rows, got {len(x)}")
        return {"reference": x}

    def reset_caches(self) -> None:
        self._index = None

    def _neighbours(self, x: np.ndarray) -> np.ndarray:
        """Each row's k-th nearest reference row, (rows, input_dim)."""
        reference = self.reference.cpu().numpy()
        if self._index is None:
            from sklearn.neighbors import NearestNeighbors

            self._index = NearestNeighbors(n_neighbors=self.k).fit(reference)
        _, nearest = self._index.kneighbors(x, return_distance=True)
        return reference[nearest[:, -1]]

    def term_array(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float64) - self._neighbours(x)) ** 2

    def check_state(self, state: dict[str, torch.Tensor]) -> None:
        super().check_state(state)
        if self.unfitted(state):
            return
        check_width(self, "reference", state["reference"])
        if len(state["reference"]) < self.k:
            raise CheckpointError(f"KNNDistance: reference has {len(state['reference'])} rows; "
                                  f"k={self.k} needs at least {self.k}")
