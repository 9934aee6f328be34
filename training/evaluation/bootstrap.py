"""Bootstrap distributions of detection metrics, vectorized over the resamples, and paired
intervals of their differences.

A resample is a vector of counts (how often each unit was drawn), drawn separately for the
threats and the benign units so that every resample keeps the class sizes. Each threat is set
against the sorted benign scores by binary search, which gives every resample's ROC-AUC,
average precision and detection rate at a false-positive rate with a few matrix operations,
under the definitions of `training.evaluation.metrics` (ties count one half in ROC-AUC, average
precision over distinct thresholds, no threshold splits a tie, at most floor(f * benign) false
alerts).

Models scored on the same units share the resamples: a paired comparison, whose difference,
resample by resample, is about the models rather than about which units happened to be drawn.
`paired_metrics` does it for single score vectors (the promotion gate); `bootstrap_draws` for
methods trained with several seeds (each resample's metric is the mean over the seeds; the
detection harness), with `paired_interval` for a difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHUNK = 200  # resamples per matrix: bounds memory at CHUNK x units
METRICS = ("roc_auc", "pr_auc", "dr_at_fpr")


def resample_counts(is_threat: np.ndarray, resamples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(resamples, units) draw counts, resampling the threats and the benign units separately."""
    counts = np.zeros((resamples, len(is_threat)), dtype=np.int32)
    for cls in (True, False):
        members = np.flatnonzero(is_threat == cls)
        if len(members):
            counts[:, members] = rng.multinomial(len(members), np.full(len(members),
                                                 1 / len(members)), size=resamples)
    return counts


def weighted_metrics(scores: np.ndarray, is_threat: np.ndarray, counts: np.ndarray,
                     max_fpr: float = 0.01) -> dict[str, np.ndarray]:
    """ROC-AUC, PR-AUC and detection rate at `max_fpr` for every row of `counts`.

    Each threat is set against the benign units by two binary searches in the sorted benign
    scores (how many score above it, how many at least as high), so the work is a few passes
    over (resamples, units), whatever the ties.

    Args:
        scores: (units,) higher = more anomalous; is_threat: (units,) bool.
        counts: (resamples, units) how many times each unit is in each resample; every row
            must draw at least one threat and one benign unit.

    Returns:
        {"roc_auc", "pr_auc", "dr_at_fpr"}, each (resamples,).
    """
    is_threat = np.asarray(is_threat, bool)
    pos, neg = scores[is_threat], scores[~is_threat]
    order_p, order_n = np.argsort(-pos, kind="stable"), np.argsort(-neg, kind="stable")
    pos, neg = pos[order_p], neg[order_n]  # highest first
    cp = counts[:, is_threat][:, order_p]  # (resamples, threats)
    rows = len(counts)
    # tp[:, k] / fp[:, k]: weight of the k highest-scored threats / benign units.
    tp = np.concatenate([np.zeros((rows, 1), np.int64), np.cumsum(cp, axis=1)], axis=1)
    fp = np.concatenate([np.zeros((rows, 1), np.int64),
                         np.cumsum(counts[:, ~is_threat][:, order_n], axis=1)], axis=1)
    n_pos, n_neg = tp[:, -1].astype(np.float64), fp[:, -1].astype(np.float64)
    fp_at_least = fp[:, np.searchsorted(-neg, -pos, side="right")]  # benign scoring >= threat
    fp_above = fp[:, np.searchsorted(-neg, -pos, side="left")]  # benign scoring > threat
    tp_at_least = tp[:, np.searchsorted(-pos, -pos, side="right")]
    # ROC-AUC: each threat beats the benign units below its score, and ties half.
    roc = (cp * (n_neg[:, None] - fp_at_least + 0.5 * (fp_at_least - fp_above))).sum(1)
    roc /= n_pos * n_neg
    # Average precision: each threat weighs the precision of the threshold at its score.
    flagged = tp_at_least + fp_at_least
    precision = np.divide(tp_at_least, flagged, out=np.zeros(flagged.shape), where=flagged > 0)
    pr = (cp * precision).sum(1) / n_pos
    # Detection at <= max_fpr false positives: the best threshold at a threat's score that
    # flags at most floor(max_fpr * benign) benign units (no threshold splits a tie).
    allowed = np.floor(max_fpr * n_neg + 1e-9)
    admissible = fp_at_least <= allowed[:, None]
    dr = np.where(admissible, tp_at_least, 0).max(axis=1, initial=0) / n_pos
    return {"roc_auc": roc, "pr_auc": pr, "dr_at_fpr": dr}


def paired_metrics(models: Sequence[np.ndarray], labels: np.ndarray, *,
                   resamples: int = 1000, seed: int = 0
                   ) -> tuple[list[dict[str, float]], list[dict[str, np.ndarray]]]:
    """Every metric of several models' scores of the same units, on the same resamples.

    Args:
        models: each model's (units,) scores; labels: (units,) -1/0/1 (unknown left out).

    Returns:
        (each model's metrics on all the units, each model's (resamples,) metrics on the
        resamples), by metric name ("roc_auc", "pr_auc", "dr_at_fpr").
    """
    keep = np.asarray(labels) >= 0
    y = np.asarray(labels)[keep] == 1
    scores = [np.asarray(s, dtype=np.float64)[keep] for s in models]
    points = [{name: float(v[0]) for name, v in
               weighted_metrics(s, y, np.ones((1, len(y)), np.int64)).items()} for s in scores]
    rng = np.random.default_rng(seed)
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in scores]
    for start in range(0, resamples, CHUNK):
        counts = resample_counts(y, min(CHUNK, resamples - start), rng)
        for i, s in enumerate(scores):
            parts[i].append(weighted_metrics(s, y, counts))
    draws = [{name: np.concatenate([p[name] for p in chunks]) for name in METRICS}
             for chunks in parts]
    return points, draws


def bootstrap_draws(scores: dict[str, np.ndarray], labels: np.ndarray, resamples: int,
                    rng: np.random.Generator) -> tuple[dict, dict]:
    """Each method's metrics on the units, and on `resamples` stratified resamples of them
    (the same resamples for every method and seed).

    Args:
        scores: method -> (seeds, units) scores; labels: (units,) -1/0/1 (unknown units are
            left out). Needs at least one threat and one benign unit.

    Returns:
        (point, draws): point[method][metric] = {"mean": mean over seeds, "per_seed": [...]};
        draws[method][metric] = (resamples,) the mean over seeds in each resample.
    """
    keep = np.asarray(labels) >= 0
    y = np.asarray(labels)[keep] == 1
    # Score vectors that repeat (a method whose fit ignores the seed, a candidate that is a
    # baseline) are measured once.
    unique: dict[bytes, int] = {}
    vectors: list[np.ndarray] = []
    rows: dict[str, list[int]] = {}
    for name, matrix in scores.items():
        rows[name] = []
        for vector in np.atleast_2d(matrix)[:, keep]:
            key = np.ascontiguousarray(vector, np.float64).tobytes()
            if key not in unique:
                unique[key] = len(vectors)
                vectors.append(vector)
            rows[name].append(unique[key])
    ones = np.ones((1, len(y)), np.int64)
    exact = [weighted_metrics(v, y, ones) for v in vectors]
    point = {name: {m: {"mean": float(np.mean([exact[i][m][0] for i in index])),
                        "per_seed": [float(exact[i][m][0]) for i in index]} for m in METRICS}
             for name, index in rows.items()}
    parts: dict[str, dict[str, list[np.ndarray]]] = {n: {m: [] for m in METRICS} for n in rows}
    for start in range(0, resamples, CHUNK):
        counts = resample_counts(y, min(CHUNK, resamples - start), rng)
        drawn = [weighted_metrics(v, y, counts) for v in vectors]
        for name, index in rows.items():
            for m in METRICS:
                parts[name][m].append(np.mean([drawn[i][m] for i in index], axis=0))
    draws = {n: {m: np.concatenate(chunks) if chunks else np.zeros(0)
                 for m, chunks in by_metric.items()} for n, by_metric in parts.items()}
    return point, draws


def interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """The central `level` interval of bootstrap `values` (percentile method)."""
    tail = (1 - level) / 2
    return [float(v) for v in np.quantile(values, [tail, 1 - tail])]


def paired_interval(draws: dict, candidate: str, reference: str, metric: str,
                    level: float = 0.95) -> list[float]:
    """Interval of (candidate - reference) on `metric`, resample by resample."""
    return interval(draws[candidate][metric] - draws[reference][metric], level)
