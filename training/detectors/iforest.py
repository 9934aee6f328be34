"""An isolation forest (Liu, Ting and Zhou, 2008) whose trees are plain arrays.

Fitting grows scikit-learn's `IsolationForest` (its tree-growing and sampling, untouched) and
exports every tree as arrays: children, split feature, split threshold, and at each node the
path length a row ending there is credited with (its depth plus the average depth c(n) of an
unbuilt subtree over the n training rows that reached it, as scikit-learn computes it). Scoring
walks the arrays, so the saved model is tensors only and nothing of scikit-learn is pickled:

    score(x) = 2 ** (-E[path length of x] / c(max_samples))

in (0, 1], higher = more anomalous: the original paper's s(x, n), which is exactly
`-IsolationForest.score_samples(x)` (same trees, same arithmetic in the same order, so the same
float64 values; the scores come out as float32 like every detector's).

Arrays of one tree are padded to the largest tree's node count with leaves no path reaches. A
node is a leaf when both its children are itself; a split's children come after it (scikit-
learn numbers nodes depth first), which loading checks, so a walk always ends.
"""

from __future__ import annotations

import numpy as np
import torch

from training.detectors.base import register_detector
from training.detectors.fitted import FittedDetector
from training.detectors.rows import register_row_detector
from training.errors import CheckpointError, ConfigError

TREE_STATE = ("left", "right", "feature", "threshold", "path_length")


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the average depth of an unsuccessful search in a binary search tree of n rows
    (0 for n <= 1, 1 for n = 2), as `sklearn.ensemble._iforest._average_path_length`."""
    n = np.asarray(n)
    out = np.zeros(n.shape)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@register_row_detector
@register_detector
class IsolationForestDetector(FittedDetector):
    """Isolation forest with its trees as arrays (see the module docstring).

    Args:
        input_dim, inputs, seed, max_rows: see `FittedDetector`; the seed is the forest's
            `random_state`.
        n_estimators: trees (>= 1).
        max_samples: rows drawn to grow each tree: "auto" (min(256, rows)) or an integer.

    Shapes:
        fitted state: left, right, feature (trees, nodes) int32; threshold, path_length
        (trees, nodes) float64; max_samples (1,) int64. anomaly_score: (units,).
    """

    short_name = "iforest"
    randomized = True
    state = {"left": (torch.int32, 2), "right": (torch.int32, 2), "feature": (torch.int32, 2),
             "threshold": (torch.float64, 2), "path_length": (torch.float64, 2),
             "max_samples": (torch.int64, 1)}

    def __init__(self, *, input_dim: int, inputs: str = "vector", n_estimators: int = 200,
                 max_samples: int | str = "auto", seed: int | None = None,
                 max_rows: int | None = None) -> None:
        if isinstance(n_estimators, bool) or not isinstance(n_estimators, int) or n_estimators < 1:
            raise ConfigError(f"n_estimators must be an integer >= 1, got {n_estimators!r}")
        if max_samples != "auto" and (isinstance(max_samples, bool)
                                      or not isinstance(max_samples, int) or max_samples < 1):
            raise ConfigError(f"max_samples must be 'auto' or an integer >= 1, got {max_samples!r}")
        super().__init__(input_dim=input_dim, inputs=inputs, n_estimators=n_estimators,
                         max_samples=max_samples, seed=seed, max_rows=max_rows)
        self.n_estimators, self.max_samples_arg = n_estimators, max_samples

    def fit_array(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        from sklearn.ensemble import IsolationForest

        seed = self.seed if self.seed is not None else int(rng.integers(2**31 - 1))
        max_samples = (self.max_samples_arg if self.max_samples_arg == "auto"
                       else min(self.max_samples_arg, len(x)))
        forest = IsolationForest(n_estimators=self.n_estimators, max_samples=max_samples,
                                 random_state=seed).fit(x)
        trees = [estimator.tree_ for estimator in forest.estimators_]
        nodes = max(tree.node_count for tree in trees)
        own = np.arange(nodes)
        out = {"left": np.tile(own, (len(trees), 1)), "right": np.tile(own, (len(trees), 1)),
               "feature": np.zeros((len(trees), nodes), np.int64),
               "threshold": np.zeros((len(trees), nodes)),
               "path_length": np.zeros((len(trees), nodes))}
        for t, tree in enumerate(trees):
            count, split = tree.node_count, tree.children_left >= 0
            out["left"][t, :count] = np.where(split, tree.children_left, own[:count])
            out["right"][t, :count] = np.where(split, tree.children_right, own[:count])
            out["feature"][t, :count] = np.where(split, tree.feature, 0)
            out["threshold"][t, :count] = np.where(split, tree.threshold, 0.0)
            # The order of scikit-learn's own sum, so the scores are the same floats.
            out["path_length"][t, :count] = (tree.compute_node_depths()
                                             + average_path_length(tree.n_node_samples) - 1.0)
        out = {name: value.astype(np.int32) if name in ("left", "right", "feature") else value
               for name, value in out.items()}
        return {**out, "max_samples": np.array([forest.max_samples_], np.int64)}

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree, (rows, trees)."""
        left, right = self.left.cpu().numpy(), self.right.cpu().numpy()
        feature, threshold = self.feature.cpu().numpy(), self.threshold.cpu().numpy()
        trees, nodes = left.shape
        tree = np.arange(trees)
        at = np.zeros((len(x), trees), np.int64)
        row = np.arange(len(x))[:, None]
        for _ in range(nodes):  # every step goes deeper, so this bounds the walk
            # float32 values against float64 thresholds, as scikit-learn's trees compare them
            go_left = x[row, feature[tree, at]] <= threshold[tree, at]
            step = np.where(go_left, left[tree, at], right[tree, at])
            if np.array_equal(step, at):
                break
            at = step
        return at

    def score_array(self, x: np.ndarray) -> np.ndarray:
        credit = self.path_length.cpu().numpy()[np.arange(self.left.shape[0]), self.leaves(x)]
        depths = np.zeros(len(x))
        for t in range(credit.shape[1]):  # tree by tree, as scikit-learn adds them up
            depths += credit[:, t]
        denominator = credit.shape[1] * average_path_length(self.max_samples.cpu().numpy())
        return 2 ** (-np.divide(depths, denominator))

    def check_state(self, state: dict[str, torch.Tensor]) -> None:
        super().check_state(state)
        if self.unfitted(state):
            return
        shapes = {tuple(state[name].shape) for name in TREE_STATE}
        if len(shapes) != 1 or 0 in next(iter(shapes)):
            raise CheckpointError(f"IsolationForestDetector: {', '.join(TREE_STATE)} must be "
                                  f"(trees >= 1, nodes >= 1) arrays of one shape, got {shapes}")
        left, right, feature = (state[name].long() for name in ("left", "right", "feature"))
        own = torch.arange(left.shape[1])
        leaf = (left == own) & (right == own)
        split = (left > own) & (right > own) & (left < left.shape[1]) & (right < left.shape[1])
        if not (leaf | split).all():
            raise CheckpointError("IsolationForestDetector: every node must be a leaf (both "
                                  "children itself) or a split whose children come after it "
                                  "and lie inside its tree")
        if ((feature < 0) | (feature >= self.input_dim)).any():
            raise CheckpointError(f"IsolationForestDetector: split features must be in "
                                  f"[0, {self.input_dim})")
        if (state["path_length"] < 0).any():
            raise CheckpointError("IsolationForestDetector: path_length must be >= 0")
        if state["max_samples"].shape != (1,) or int(state["max_samples"][0]) < 1:
            raise CheckpointError("IsolationForestDetector: max_samples must be one integer >= 1")
