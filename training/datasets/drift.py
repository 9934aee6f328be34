"""Data drift between a reference matrix (e.g. the training split) and current data.

Each feature gets one test chosen the way established monitoring tools choose it (Evidently's
defaults), and every feature also gets the figures other tools and the original system report:

| reference rows | feature | test | drifted when |
|---|---|---|---|
| <= 1,000 | any | two-sample Kolmogorov-Smirnov | p-value < `p_value` (0.05) |
| > 1,000 | more than 5 distinct values | Wasserstein distance / reference std | > `threshold` (0.1) |
| > 1,000 | at most 5 distinct values | Jensen-Shannon distance (base 2) | > `threshold` (0.1) |

Also reported for every feature: the population stability index (PSI) and the binned KL
divergence KL(current || reference), both on reference-quantile bins (categories for discrete
features), smoothed so that empty bins stay finite. The dataset drifts when at least
`drift_share` (half) of the features that vary drift: a feature holding one value, the same in
the reference and the current data (an unused one-hot or hash slot: about half of layer 1's 128
dims on a Zeek conn log), cannot drift and is left out of the share (method "constant"), as is
one with too few finite values ("not_assessed").

Large inputs are compared on a random subsample of `max_rows` rows per side (100,000 by
default): the distances are then estimated to within about 1% of a reference standard
deviation, far below the threshold, at a fraction of the cost of sorting every row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from training.errors import ConfigError

MIN_SAMPLES = 30
SMALL_REFERENCE = 1000
CATEGORICAL_MAX_UNIQUE = 5
MAX_ROWS = 100_000
STD_FLOOR = 1e-3  # Evidently's floor for the Wasserstein normalizer (a constant reference)
NOT_COUNTED = ("not_assessed", "constant")  # methods of features the share leaves out


@dataclass
class FeatureDrift:
    """One feature's drift figures.

    Attributes:
        name: the feature's name.
        method: "ks", "wasserstein" or "jensenshannon" (what decided `drifted`);
            "not_assessed" when a side has fewer than the minimum of finite values, "constant"
            when both sides hold one and the same value (neither counts in the share).
        statistic: the deciding figure: a p-value for "ks", a distance otherwise.
        threshold: what `statistic` was compared with.
        drifted: the verdict.
        wasserstein: Wasserstein distance divided by the reference std.
        jensen_shannon: Jensen-Shannon distance of the binned distributions (0..1).
        psi: population stability index.
        kl_divergence: KL(current || reference) of the binned distributions (nats).
    """

    name: str
    method: str
    statistic: float
    threshold: float
    drifted: bool
    wasserstein: float = float("nan")
    jensen_shannon: float = float("nan")
    psi: float = float("nan")
    kl_divergence: float = float("nan")


@dataclass
class DriftReport:
    """The drift verdict for a dataset and the figures behind it.

    Attributes:
        drifted: at least `drift_share` of the counted features drifted.
        share: share of the counted features (assessed, and not constant and equal on both
            sides) that drifted.
        drift_share: the share that makes the dataset drift.
        n_reference, n_current: rows compared (before subsampling).
        features: per-feature figures, in column order.
    """

    drifted: bool
    share: float
    drift_share: float
    n_reference: int
    n_current: int
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def counted(self) -> int:
        """How many features the share counts (those that vary and were assessed)."""
        return sum(f.method not in NOT_COUNTED for f in self.features)

    @property
    def constant(self) -> int:
        """How many features hold one and the same value on both sides (left out)."""
        return sum(f.method == "constant" for f in self.features)

    def to_dict(self) -> dict:
        """JSON-able (NaN becomes None)."""
        out = asdict(self)
        out.update(drifted_features=self.drifted_features, counted=self.counted,
                   constant=self.constant)
        out["features"] = [{k: _plain(v) for k, v in f.items()} for f in out["features"]]
        return out


def _plain(value: object) -> object:
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value


def drift_report(reference: np.ndarray, current: np.ndarray, threshold: float = 0.1, *,
                 drift_share: float = 0.5, p_value: float = 0.05,
                 feature_names: list[str] | None = None, min_samples: int = MIN_SAMPLES,
                 max_rows: int = MAX_ROWS, bins: int = 10, seed: int = 0) -> DriftReport:
    """Compare `current` with `reference`, feature by feature (see the module docstring).

    Args:
        reference: (rows, features) data the model was trained on.
        current: (rows, features) new data.
        threshold: distance above which a feature drifts (Wasserstein, Jensen-Shannon).
        drift_share: share of drifted features that makes the dataset drift.
        p_value: KS p-value below which a feature drifts (small references).
        feature_names: names for the report (default feature_0, feature_1, ...).
        min_samples: fewest rows each side needs (and finite values per feature).
        max_rows: rows per side beyond which a random subsample is compared.
        bins: quantile bins for PSI, KL and Jensen-Shannon on continuous features.
        seed: seed of the subsample.

    Raises:
        ConfigError: bad arguments, mismatched shapes, or fewer than `min_samples` rows.
    """
    reference, current = np.asarray(reference), np.asarray(current)
    _check(reference, current, threshold, drift_share, p_value, min_samples, max_rows, bins)
    width = reference.shape[1]
    names = (list(feature_names) if feature_names is not None
             else [f"feature_{i}" for i in range(width)])
    if len(names) != width:
        raise ConfigError(f"feature_names must name {width} features, got {len(names)}")
    rng = np.random.default_rng(seed)
    ref_sorted = _sorted_columns(reference, max_rows, rng)  # (features, rows), ascending
    cur_sorted = _sorted_columns(current, max_rows, rng)
    small = len(reference) <= SMALL_REFERENCE
    grids: dict[tuple[int, int], tuple] = {}
    features = [_feature(names[j], _finite(ref_sorted[j]), _finite(cur_sorted[j]), small,
                         threshold, p_value, min_samples, bins, grids) for j in range(width)]
    counted = [f for f in features if f.method not in NOT_COUNTED]
    share = sum(f.drifted for f in counted) / len(counted) if counted else 0.0
    return DriftReport(bool(counted) and share >= drift_share, share, drift_share,
                       len(reference), len(current), features)


def _check(reference: np.ndarray, current: np.ndarray, threshold: float, drift_share: float,
           p_value: float, min_samples: int, max_rows: int, bins: int) -> None:
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise ConfigError(f"reference and current must be (rows, features) with the same "
                          f"features, got {reference.shape} and {current.shape}")
    if not threshold > 0:
        raise ConfigError(f"drift_threshold must be > 0, got {threshold}")
    if not 0 < drift_share <= 1:
        raise ConfigError(f"drift_share must be in (0, 1], got {drift_share}")
    if not 0 < p_value < 1:
        raise ConfigError(f"p_value must be in (0, 1), got {p_value}")
    if not isinstance(min_samples, int) or min_samples < 2:
        raise ConfigError(f"min_samples must be an integer >= 2, got {min_samples!r}")
    if not isinstance(max_rows, int) or max_rows < min_samples:
        raise ConfigError(f"max_rows must be an integer >= min_samples ({min_samples}), "
                          f"got {max_rows!r}")
    if not isinstance(bins, int) or bins < 2:
        raise ConfigError(f"bins must be an integer >= 2, got {bins!r}")
    for name, data in (("reference", reference), ("current", current)):
        if len(data) < min_samples:
            raise ConfigError(f"drift needs at least {min_samples} rows of {name} data, got "
                              f"{len(data)}; collect more before comparing")


def _sorted_columns(data: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if len(data) > max_rows:
        data = data[np.sort(rng.choice(len(data), max_rows, replace=False))]
    columns = np.ascontiguousarray(data.T, dtype=np.float64)
    columns.sort(axis=1)  # NaN sorts last
    return columns


def _finite(ordered: np.ndarray) -> np.ndarray:
    """The finite part of a sorted column (-inf first, then finite, +inf, NaN)."""
    low = np.searchsorted(ordered, -np.inf, side="right")
    high = np.searchsorted(ordered, np.inf, side="left")
    return ordered[low:high]


def _feature(name: str, ref: np.ndarray, cur: np.ndarray, small: bool, threshold: float,
             p_value: float, min_samples: int, bins: int, grids: dict) -> FeatureDrift:
    if len(ref) < min_samples or len(cur) < min_samples:
        return FeatureDrift(name, "not_assessed", float("nan"), float("nan"), False)
    if ref[0] == ref[-1] == cur[0] == cur[-1]:  # sorted: one value, the same on both sides
        return FeatureDrift(name, "constant", float("nan"), float("nan"), False)
    distinct = np.concatenate([ref[:1], ref[1:][np.diff(ref) != 0]])
    categorical = len(distinct) <= CATEGORICAL_MAX_UNIQUE
    if categorical:  # one bin per reference value, and one for values the reference lacks
        ref_counts = _value_counts(ref, distinct)
        cur_counts = _value_counts(cur, distinct)
    else:  # bins between reference quantiles
        edges = np.unique(ref[(np.arange(1, bins) * len(ref)) // bins])
        ref_counts, cur_counts = _bin_counts(ref, edges), _bin_counts(cur, edges)
    p, q = _smoothed(ref_counts), _smoothed(cur_counts)
    wasserstein = _wasserstein(ref, cur, grids) / max(float(np.std(ref)), STD_FLOOR)
    js = float(jensenshannon(p, q, base=2))
    figures = {"wasserstein": wasserstein, "jensen_shannon": js,
               "psi": float(np.sum((q - p) * np.log(q / p))),
               "kl_divergence": float(np.sum(q * np.log(q / p)))}
    if small:
        statistic = float(ks_2samp(ref, cur).pvalue)
        return FeatureDrift(name, "ks", statistic, p_value, statistic < p_value, **figures)
    method, statistic = ("jensenshannon", js) if categorical else ("wasserstein", wasserstein)
    return FeatureDrift(name, method, statistic, threshold, statistic > threshold, **figures)


def _value_counts(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    counts = (np.searchsorted(ordered, values, side="right")
              - np.searchsorted(ordered, values, side="left"))
    return np.append(counts, len(ordered) - counts.sum())


def _bin_counts(ordered: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cumulative = np.searchsorted(ordered, edges, side="right")  # values <= each edge
    return np.diff(np.concatenate([[0], cumulative, [len(ordered)]]))


def _smoothed(counts: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Shares with `alpha` added to every bin (Jeffreys smoothing): no bin is ever empty."""
    return (counts + alpha) / (counts.sum() + alpha * len(counts))


def _wasserstein(a: np.ndarray, b: np.ndarray, grids: dict) -> float:
    """Exact 1-Wasserstein distance of two sorted samples: the integral of the distance
    between their quantile functions, which are step functions on the grids k/n and k/m."""
    key = (len(a), len(b))
    if key not in grids:
        steps_a, steps_b = np.arange(1, len(a) + 1) / len(a), np.arange(1, len(b) + 1) / len(b)
        u = np.union1d(steps_a, steps_b)
        grids[key] = (np.searchsorted(steps_a, u), np.searchsorted(steps_b, u),
                      np.diff(u, prepend=0.0))
    index_a, index_b, weight = grids[key]
    index_a = np.minimum(index_a, len(a) - 1)
    index_b = np.minimum(index_b, len(b) - 1)
    return float(np.dot(np.abs(a[index_a] - b[index_b]), weight))
