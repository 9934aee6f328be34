"""ECOD: empirical-cumulative-distribution outlier detection (Li et al., TKDE 2022), in numpy.

Each feature's training values give its empirical tails. A row's value x_j sits in the left
tail with probability F_j(x_j) = (1 + #{training values <= x_j}) / (n + 1) and in the right
tail with (1 + #{training values >= x_j}) / (n + 1) (the row counted as one more observation,
so a value beyond every training value gets 1 / (n + 1), never 0). With U = -log of each:

    term_j = max(U_skew_j, (U_left_j + U_right_j) / 2),   score = sum_j term_j

where U_skew_j is the tail the training values are skewed towards (left for negative skew,
right for positive, both summed for none: a constant feature scores any other value on both
sides). This is PyOD's formulation (`pyod.models.ecod`, per-feature maximum then sum), except
that the tails come from the training values alone, so a unit's score does not depend on the
other units scored with it. The terms are the per-feature explanation: they sum to the score.

No hyperparameter but the cap on the rows kept (`max_rows`); the state is each feature's sorted
training values and the sign of its skew.
"""

from __future__ import annotations


import numpy as np
import torch

from training.detectors.base import register_detector
from training.detectors.fitted import TermwiseDetector, check_width
from training.detectors.rows import register_row_detector
from training.errors import CheckpointError


@register_row_detector
@register_detector
class ECOD(TermwiseDetector):
    """Per-feature empirical tail probabilities, summed (see the module docstring).

    Args:
        input_dim, inputs, seed: see `FittedDetector` (the seed only picks the subsample).
        max_rows: keep at most this many training rows (random subsample beyond it).

    Shapes:
        fitted state: sorted_rows (n, input_dim) float32, each column sorted; skew_sign
        (input_dim,) int8 in {-1, 0, 1}. anomaly_score: (units,); feature_terms: (units,
        input_dim).
    """

    short_name = "ecod"
    state = {"sorted_rows": (torch.float32, 2), "skew_sign": (torch.int8, 1)}

    def __init__(self, *, input_dim: int, inputs: str = "vector", seed: int | None = None,
                 max_rows: int | None = 100_000) -> None:
        super().__init__(input_dim=input_dim, inputs=inputs, seed=seed, max_rows=max_rows)

    def fit_array(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
        m2, m3 = (centred ** 2).mean(axis=0), (centred ** 3).mean(axis=0)
        skew = np.divide(m3, m2 ** 1.5, out=np.zeros_like(m3), where=m2 > 0)
        return {"sorted_rows": np.sort(x, axis=0), "skew_sign": np.sign(skew).astype(np.int8)}

    def term_array(self, x: np.ndarray) -> np.ndarray:
        """Per-feature terms (rows, input_dim) float64."""
        columns = self.sorted_rows.cpu().numpy()
        sign = self.skew_sign.cpu().numpy()
        n = len(columns)
        at_most = np.empty(x.shape, np.int64)
        at_least = np.empty(x.shape, np.int64)
        for j in range(x.shape[1]):
            at_most[:, j] = np.searchsorted(columns[:, j], x[:, j], side="right")
            at_least[:, j] = n - np.searchsorted(columns[:, j], x[:, j], side="left")
        left = -np.log((1.0 + at_most) / (n + 1.0))
        right = -np.log((1.0 + at_least) / (n + 1.0))
        skewed = np.where(sign < 0, left, np.where(sign > 0, right, left + right))
        return np.maximum(skewed, (left + right) / 2)

    def check_state(self, state: dict[str, torch.Tensor]) -> None:
        super().check_state(state)
        if self.unfitted(state):
            return
        rows, sign = state["sorted_rows"], state["skew_sign"]
        check_width(self, "sorted_rows", rows)
        if len(sign) != self.input_dim or not len(rows):
            raise CheckpointError(f"ECOD: skew_sign has {len(sign)} entries and sorted_rows "
                                  f"{len(rows)} rows; need {self.input_dim} and >= 1")
        if ((sign < -1) | (sign > 1)).any():
            raise CheckpointError("ECOD: skew_sign must hold -1, 0 or 1")
        if len(rows) > 1 and (rows[1:] < rows[:-1]).any():
            raise CheckpointError("ECOD: sorted_rows must be sorted within each column")
