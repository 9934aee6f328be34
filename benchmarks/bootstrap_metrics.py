"""Bootstrap confidence intervals of detection metrics, vectorized over the resamples.

A resample is a vector of counts (how often each unit was drawn). Sorting the scores once and
summing the counts per distinct score gives every resample's ROC-AUC, average precision and
detection rate at a false-positive rate with a few matrix operations, under exactly the
definitions of `training.evaluation.metrics` (ties count one half in ROC-AUC, average precision
over distinct thresholds, no threshold splits a tie, at most floor(f * benign) false alerts).
"""

from __future__ import annotations

import numpy as np

CHUNK = 200  # resamples per matrix: bounds memory at CHUNK x units


def resample_counts(labels: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, units) draw counts, resampling the threats and the benign units separately."""
    counts = np.zeros((resamples, len(labels)), dtype=np.int32)
    for cls in (True, False):
        members = np.flatnonzero(labels == cls)
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


def bootstrap_metrics(scores: np.ndarray, labels: np.ndarray, resamples: int,
                      rng: np.random.Generator, max_fpr: float = 0.01) -> dict:
    """Each metric as the mean over seeds, the per-seed values, and a 95% interval of that
    mean over stratified resamples of the units (the same resamples for every seed).

    Args:
        scores: (seeds, units); labels: (units,) -1/0/1 (unknown units are left out).
    """
    keep = labels >= 0
    scores, y = np.atleast_2d(scores)[:, keep], labels[keep] == 1
    point = [weighted_metrics(s, y, np.ones((1, len(y)))) for s in scores]
    means: dict[str, list[np.ndarray]] = {name: [] for name in point[0]}
    for start in range(0, resamples, CHUNK):
        counts = resample_counts(y, min(CHUNK, resamples - start), rng)
        per_seed = [weighted_metrics(s, y, counts, max_fpr) for s in scores]
        for name in means:
            means[name].append(np.mean([m[name] for m in per_seed], axis=0))
    out = {}
    for name, chunks in means.items():
        values = [float(p[name][0]) for p in point]
        key = "dr_at_1pct_fpr" if name == "dr_at_fpr" and max_fpr == 0.01 else name
        out[key] = {"mean": float(np.mean(values)), "per_seed": values,
                    "ci": [float(v) for v in np.quantile(np.concatenate(chunks), [0.025, 0.975])]}
    return out
