"""When to retrain: the production model's age, the number of new samples, and data drift.

Each trigger returns a `TriggerResult` whether it fires or not, so a run that does nothing
still says why. What the production model was trained on comes from the `data` record that
continuous training stores in its metadata details: `train_rows`, `train_from` and
`train_until` (the earliest and latest event times of its training rows) and an attached sample of those rows (`reference.npz`) for
drift.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from training.artifacts.npz import write_arrays
from training.datasets.validator import DataValidator

REFERENCE_FILE = "reference.npz"
REFERENCE_ROWS = 5000  # units kept with each version for later drift checks


@dataclass(frozen=True)
class TriggerResult:
    """One trigger's verdict: `fired`, and the figures behind it."""

    name: str
    fired: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def age(created_at: str, now: datetime, frequency_days: float) -> TriggerResult:
    """Fires when the production model is at least `frequency_days` old."""
    created = datetime.fromisoformat(created_at)
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    days = (now - created).total_seconds() / 86400
    fired = days >= frequency_days
    return TriggerResult("age", fired, f"the production model is {days:.2f} days old "
                         f"({'>=' if fired else '<'} {frequency_days:g})",
                         {"age_days": days, "retrain_frequency_days": frequency_days})


def new_rows(times: np.ndarray, data: dict[str, Any], learnt: np.ndarray | None = None,
             features: np.ndarray | None = None) -> np.ndarray:
    """Mask of the training units the production model has not seen, among those a challenger
    learns from (`learnt`, a mask; None: every unit): those outside the time span it learnt
    from (later than its `train_until`, or earlier than its `train_from`: a backfill, another
    capture) when the units have times (datetime64, NaT where unknown). Without times: where
    the digest of its training units is on record (`train_digest`, `train_units`), the units
    after them if these `features` begin with them (its training data grown), else every one
    (other data: another capture); on older records the learnt units beyond its `train_rows`
    (every one when its training data is not on record)."""
    times = np.asarray(times, dtype="datetime64[us]")
    learnt = np.ones(len(times), bool) if learnt is None else np.asarray(learnt, bool)
    timed = len(times) and not np.isnat(times).all()
    until, since = data.get("train_until"), data.get("train_from")
    if timed and until is not None:
        new = times > np.datetime64(until, "us")
        if since is not None:
            new |= times < np.datetime64(since, "us")
        return new & learnt
    mask = learnt.copy()
    if timed:
        return mask
    if data.get("train_digest") is not None and features is not None:
        n = int(data["train_units"])
        if len(features) >= n and digest(features[:n]) == data["train_digest"]:
            mask[:n] = False
        return mask
    seen = data.get("train_rows")
    if seen is not None:  # the first `train_rows` learnt units are the seen ones
        mask[np.flatnonzero(learnt)[:int(seen)]] = False
    return mask


def digest(features: np.ndarray) -> str:
    """sha256 of units' features as float32: tells the rows a model learnt from again."""
    return hashlib.sha256(np.ascontiguousarray(features, dtype=np.float32).tobytes()).hexdigest()


def new_samples(new: np.ndarray, minimum: int) -> TriggerResult:
    count = int(new.sum())
    fired = count >= minimum
    return TriggerResult("new_samples", fired, f"{count} new training rows "
                         f"({'>=' if fired else '<'} {minimum})",
                         {"new_samples": count, "min_new_samples": minimum})


def drift(reference: np.ndarray | None, current: np.ndarray, threshold: float,
          share: float, names: list[str] | None = None) -> TriggerResult:
    """Fires on the data validator's dataset-level drift verdict (`threshold`: its per-feature
    distance threshold; `share`: the share of the features that vary which, drifted, makes the
    dataset drift, `training.datasets.drift`; `names`: the features' names,
    `Layer.feature_names`)."""
    if reference is None:
        return TriggerResult("drift", False, "drift not assessed: the production model has no "
                             f"{REFERENCE_FILE} sample of its training data")
    if not len(current):
        return TriggerResult("drift", False, "drift not assessed: no new training rows")
    result = DataValidator(current, reference_features=reference, feature_names=names).validate(
        check_missing=False, check_outliers=False, check_labels=False,
        check_distributions=False, check_drift=True, drift_threshold=threshold,
        drift_share=share)
    report = result.statistics.get("drift")
    if report is None:  # too few rows: the validator says so in its issue
        return TriggerResult("drift", False, result.issues[0].message if result.issues else
                             "drift not assessed")
    fired = bool(report["drifted"])
    # Dims constant and equal on both sides (unused one-hot or hash slots) cannot drift: the
    # share is of the features that vary, and the message says how many were left out.
    left_out = f"; {report['constant']} constant and equal on both sides left out" \
        if report["constant"] else ""
    return TriggerResult("drift", fired, f"{len(report['drifted_features'])} of "
                         f"{report['counted']} features that vary drifted "
                         f"({report['share']:.0%}; the data drifts at {share:.0%}{left_out})",
                         {"share": report["share"], "drifted_features": report["drifted_features"],
                          "features_counted": report["counted"],
                          "constant_features": report["constant"], "drift_share": share,
                          "drift_threshold": threshold, "n_reference": report["n_reference"],
                          "n_current": report["n_current"]})


def training_record(times: np.ndarray, learnt: np.ndarray, features: np.ndarray | None = None
                    ) -> dict[str, Any]:
    """The `data` record `new_rows` reads: how many units a model learnt from (`learnt`, a
    mask over the units), the earliest and latest known event times among them (None
    without times) and, given the `features` of every training unit, how many and their
    digest."""
    times = np.asarray(times, dtype="datetime64[us]")[learnt]
    known = times[~np.isnat(times)]
    return {"train_rows": int(learnt.sum()),
            "train_from": str(known.min()) if len(known) else None,
            "train_until": str(known.max()) if len(known) else None,
            **({} if features is None else {"train_units": len(features),
                                            "train_digest": digest(features)})}


def write_reference(path: Path, features: np.ndarray, rows: int) -> Path:
    """Write `REFERENCE_FILE`'s content to `path`: up to `rows` of the units a model learnt
    from, the baseline of later drift checks."""
    write_arrays(path, {"features": reference_sample(features, rows, seed=0)})
    return path


def reference_sample(features: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Up to `rows` random rows of `features` (in their original order)."""
    if len(features) <= rows:
        return features
    picked = np.sort(np.random.default_rng(seed).choice(len(features), rows, replace=False))
    return features[picked]
