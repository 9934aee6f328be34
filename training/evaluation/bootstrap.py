"""Bootstrap distributions of detection metrics, vectorized over the resamples.

A resample is a vector of counts (how often each unit was drawn), drawn separately for the
threats and the benign units so that every resample keeps the class sizes. Sorting the scores
once and summing the counts per distinct score gives every resample's ROC-AUC, average
precision and detection rate at a false-positive rate with a few matrix operations, under the
definitions of `training.evaluation.metrics` (ties count one half in ROC-AUC, average
precision over distinct thresholds, no threshold splits a tie, at most floor(f * benign) false
alerts). Two models scored on the same units share the resamples: a paired comparison.
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

    Args:
        scores: (units,) higher = more anomalous; is_threat: (units,) bool.
        counts: (resamples, units) how many times each unit is in each resample.

    Returns:
        {"roc_auc", "pr_auc", "dr_at_fpr"}, each (resamples,).
    """
    order = np.argsort(-scores, kind="stable")  # highest first, as thresholds fall
    s, y = scores[order], is_threat[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # one group per distinct score
    c = counts[:, order].astype(np.float64)
    pos = np.add.reduceat(c * y, starts, axis=1)  # (resamples, groups)
    neg = np.add.reduceat(c * ~y, starts, axis=1)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    # ROC-AUC: each threat beats the benign units below its score, and ties half.
    below = n_neg[:, None] - fp
    roc = (pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    flagged = tp + fp
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    pr = (pos * precision).sum(axis=1) / n_pos
    allowed = np.floor(max_fpr * n_neg + 1e-9)
    admissible = fp <= allowed[:, None]  # a prefix of the groups: fp only grows
    last = admissible.sum(axis=1) - 1
    dr = np.where(last >= 0, tp[np.arange(len(tp)), np.maximum(last, 0)] / n_pos, 0.0)
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
               weighted_metrics(s, y, np.ones((1, len(y)))).items()} for s in scores]
    rng = np.random.default_rng(seed)
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in scores]
    for start in range(0, resamples, CHUNK):
        counts = resample_counts(y, min(CHUNK, resamples - start), rng)
        for i, s in enumerate(scores):
            parts[i].append(weighted_metrics(s, y, counts))
    draws = [{name: np.concatenate([p[name] for p in chunks]) for name in METRICS}
             for chunks in parts]
    return points, draws
