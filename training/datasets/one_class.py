"""A split part that holds one class of a labeled data set: ROC-AUC, PR-AUC and a best-F1
threshold need benign and threat rows, and tuning's `--metric auto` falls back to the loss on
it. A temporal cut puts every threat of a short attack in one part; `split` says so.

    lines = one_class_parts(splits)   # {"train": DatasetSplit, "val": ..., "test": ...}
    warn_one_class_parts(splits)      # the same lines as warnings
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["one_class_parts", "warn_one_class_parts"]

# What each part's labels are used for, in the line that says it lacks a class.
_USES = {"val": "the threshold's best F1 and tuning's pr_auc need both",
         "test": "ROC-AUC, PR-AUC and detection rates need both"}


def one_class_parts(splits: Mapping[str, Any]) -> list[str]:
    """One line per validation or test part with benign and no threat rows, or the other way
    round, while the parts together hold both; [] otherwise (unlabeled or one-class data)."""
    counts = {name: part.get_class_distribution() for name, part in splits.items()}
    if not all(any(c.get(label, 0) for c in counts.values()) for label in (0, 1)):
        return []
    lines = []
    for name, use in _USES.items():
        if name not in counts or not sum(counts[name].values()):
            continue
        benign, threat = counts[name].get(0, 0), counts[name].get(1, 0)
        if (benign > 0) != (threat > 0):
            where = {k: c.get(1, 0) for k, c in counts.items() if c.get(1, 0)}
            lines.append(f"{name} has one class ({benign:,} benign, {threat:,} threat rows; "
                         f"the threats are in {', '.join(where)}): {use}; "
                         "--strategy stratified spreads both classes over every part")
    return lines


def warn_one_class_parts(splits: Mapping[str, Any]) -> None:
    """Log each line of `one_class_parts` as a warning."""
    for line in one_class_parts(splits):
        logger.warning("%s", line)
