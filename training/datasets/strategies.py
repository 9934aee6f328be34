"""How rows are divided into train, validation and test: index arithmetic only, no data.

Every function here (and TEMPORAL's, in `training.datasets.temporal`) returns row numbers, so
the same strategies split layer-1 samples, layer-2 window graphs and layer-3 windows
(`training.datasets.window_splits`). Sizes follow the requested
ratios to within one row (largest-remainder rounding); randomness comes from a generator the
caller seeds, never the global one.

| strategy | keeps apart | order within a split |
|---|---|---|
| RANDOM | nothing (rows shuffled) | row order |
| STRATIFIED | nothing; every class (label) keeps its share in every split, to within one row | row order |
| TEMPORAL | time: every train row is earlier than every val row, every val row than every test row | time order |
| GROUP | groups (e.g. hosts): no group is in two splits | row order |
| K_FOLD | a held-out test set, then stratified folds of the rest (`k_fold`) | row order |

Unlabeled rows (label -1) stay in every strategy; STRATIFIED and K_FOLD treat them as a class.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow
from sklearn.model_selection import StratifiedKFold

from training.errors import ConfigError, PipelineError, TooFewError

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
Indices = dict[str, np.ndarray]  # split name -> row numbers (int64)


class SplitStrategy(str, Enum):
    """How `DatasetBuilder.create_splits` divides the rows."""

    RANDOM = "random"
    STRATIFIED = "stratified"
    TEMPORAL = "temporal"
    K_FOLD = "k_fold"
    GROUP = "group"


@dataclass(frozen=True)
class Ratios:
    """Shares of the rows for train, val and test; each in [0, 1], summing to 1, train > 0."""

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        for name, value in zip(SPLIT_NAMES, self.values):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}_ratio must be in [0, 1], got {value}")
        if self.train <= 0.0:
            raise ConfigError(f"train_ratio must be > 0, got {self.train}")
        if abs(sum(self.values) - 1.0) > 1e-6:
            raise ConfigError("train_ratio + val_ratio + test_ratio must be 1, got "
                              f"{self.train} + {self.val} + {self.test} = {sum(self.values):g}")

    @property
    def values(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)

    def counts(self, total: int) -> np.ndarray:
        """Rows per split summing to `total`, each within one row of total * ratio."""
        return _round_keeping_sum(np.array([total * r for r in self.values]), total)

    def wanted(self) -> int:
        """How many splits must receive rows."""
        return sum(r > 0 for r in self.values)


def _round_keeping_sum(targets: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding: floor everything, then add one to the largest remainders."""
    counts = np.floor(targets + 1e-9).astype(np.int64)
    remainder = targets - counts
    extra = total - int(counts.sum())
    counts[np.argsort(-remainder, kind="stable")[:extra]] += 1
    return counts


def _pack(parts: list[np.ndarray]) -> Indices:
    return {name: np.asarray(part, dtype=np.int64) for name, part in zip(SPLIT_NAMES, parts)}


def _require_rows(n: int, ratios: Ratios, strategy: str) -> None:
    if n < ratios.wanted():
        raise TooFewError(f"a {strategy} split into {ratios.wanted()} non-empty splits needs at "
                          f"least {ratios.wanted()} rows, got {n}")


def encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values, the code of every row, and the rows per value.

    Text is encoded by hashing (Arrow), several times faster than sorting it (0.45 s against
    3.4 s for 1M host names); values are then in order of first appearance, which is as
    deterministic as sorted order.
    """
    values = np.asarray(values)
    if values.dtype.kind in "USO":
        encoded = pc.dictionary_encode(pa.array(values.astype(str, copy=False)))
        names = encoded.dictionary.to_numpy(zero_copy_only=False)
        codes = encoded.indices.to_numpy().astype(np.int64)
    else:
        names, codes = np.unique(values, return_inverse=True)
    return names, codes, np.bincount(codes, minlength=len(names))


def random_split(n: int, ratios: Ratios, rng: np.random.Generator) -> Indices:
    """Shuffle the rows and cut them by `ratios`."""
    _require_rows(n, ratios, "random")
    order = rng.permutation(n)
    cuts = np.cumsum(ratios.counts(n))[:2]
    return _pack([np.sort(part) for part in np.split(order, cuts)])


def class_counts_per_split(class_sizes: np.ndarray, ratios: Ratios) -> np.ndarray:
    """Rows of each class for each split: (classes, 3) integers.

    Every entry is within one row of class_size * ratio, every row sums to its class size, and
    every column sums to the split size `Ratios.counts` gives. Rounding a table so that its
    entries and margins all stay within one is a small flow problem (controlled rounding): the
    fractional parts left after flooring are routed from classes to splits with max-flow.
    """
    targets = class_sizes[:, None] * np.array(ratios.values)[None, :]
    base = np.floor(targets + 1e-9).astype(np.int64)
    fractional = targets - base > 1e-9
    row_need = class_sizes - base.sum(axis=1)
    col_need = ratios.counts(int(class_sizes.sum())) - base.sum(axis=0)
    # Nodes: 0 source, 1..C classes, C+1..C+3 splits, C+4 sink (a sparse graph: C may be large).
    c = len(class_sizes)
    cls, split = np.nonzero(fractional)
    tails = np.concatenate([np.zeros(c, np.int64), 1 + cls, c + 1 + np.arange(3)])
    heads = np.concatenate([1 + np.arange(c), c + 1 + split, np.full(3, c + 4)])
    caps = np.concatenate([row_need, np.ones(len(cls), np.int64), col_need]).astype(np.int32)
    graph = csr_matrix((caps, (tails, heads)), shape=(c + 5, c + 5))
    result = maximum_flow(graph, 0, c + 4)
    if result.flow_value != row_need.sum():  # not expected: such a rounding always exists
        raise PipelineError(f"no rounding of class counts {class_sizes.tolist()} to ratios "
                            f"{ratios.values} was found; please report this")
    return base + result.flow[1:c + 1, c + 1:c + 4].toarray()


def stratified_split(labels: np.ndarray, ratios: Ratios, rng: np.random.Generator) -> Indices:
    """Cut every class by `ratios`, so each split keeps the class shares (to within one row)."""
    classes, codes, sizes = encode(labels)
    _require_rows(len(labels), ratios, "stratified")
    if sizes.min() < 2:
        lonely = classes[sizes < 2].tolist()
        raise ConfigError(f"a stratified split needs at least 2 rows of every class; class(es) "
                          f"{lonely} have 1. Merge or drop them, or use SplitStrategy.RANDOM")
    per_class = class_counts_per_split(sizes, ratios)
    parts: list[list[np.ndarray]] = [[], [], []]
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(sizes)[:-1])
    for c, rows in enumerate(members):
        rows = rng.permutation(rows)
        for s, chunk in enumerate(np.split(rows, np.cumsum(per_class[c])[:2])):
            parts[s].append(chunk)
    return _pack([np.sort(np.concatenate(p)) for p in parts])


def group_split(groups: np.ndarray, ratios: Ratios, rng: np.random.Generator) -> Indices:
    """Shuffle the groups and cut their sequence where the row counts come nearest the ratios.

    No group is in two splits, so sizes follow the ratios only as closely as group sizes allow.

    Raises:
        ConfigError: fewer groups than splits to fill.
    """
    names, codes, sizes = encode(groups)
    wanted = ratios.wanted()
    if len(names) < wanted:
        raise ConfigError(f"a group split into {wanted} non-empty splits needs at least {wanted} "
                          f"groups, got {len(names)} ({names[:5].tolist()}); use a finer group "
                          "column, fewer splits, or SplitStrategy.TEMPORAL")
    order = rng.permutation(len(names))
    ends = np.concatenate([[0], np.cumsum(sizes[order])])  # rows before each group boundary
    targets = np.cumsum(ratios.counts(len(codes)))[:2]
    n = len(names)
    need_val, need_test = int(ratios.val > 0), int(ratios.test > 0)
    g1 = _nearest(ends, targets[0], 1, n - need_val - need_test)
    g2 = _nearest(ends, targets[1], g1 + need_val, n - need_test)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    where = np.searchsorted([g1, g2], rank[codes], side="right")  # split of every row
    return _pack([np.flatnonzero(where == s) for s in range(3)])


def _nearest(ends: np.ndarray, target: int, low: int, high: int) -> int:
    """Group boundary in [low, high] whose row count is nearest `target`."""
    candidates = np.arange(low, high + 1)
    return int(candidates[np.argmin(np.abs(ends[candidates] - target))])


def k_fold(labels: np.ndarray, n_folds: int, rng: np.random.Generator
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds (scikit-learn's StratifiedKFold): (train rows, val rows) per fold.

    Every row is in exactly one fold's val rows.

    Raises:
        ConfigError: n_folds < 2, or a class with fewer rows than folds.
    """
    if not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    classes, codes, sizes = encode(labels)
    if len(labels) < n_folds or sizes.min() < n_folds:
        few = classes[sizes < n_folds].tolist()
        raise ConfigError(f"{n_folds} stratified folds need at least {n_folds} rows of every "
                          f"class; class(es) {few} have fewer. Use fewer folds")
    splitter = StratifiedKFold(n_folds, shuffle=True, random_state=int(rng.integers(2**31)))
    placeholder = np.zeros(len(labels))
    return [(train.astype(np.int64), val.astype(np.int64))
            for train, val in splitter.split(placeholder, codes)]
