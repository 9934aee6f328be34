"""One entry point from a strategy and its options to the rows of every split.

`DatasetBuilder` (layer-1 samples) and `training.datasets.window_splits` (layer-2 graphs, layer-3
windows) both call `plan_splits`, then cut their own containers by the returned rows.
"""

from __future__ import annotations

import logging

import numpy as np

from training.datasets.strategies import (
    Ratios, SplitStrategy, group_split, k_fold, random_split, stratified_split,
)
from training.datasets.temporal import temporal_split
from training.errors import ConfigError, did_you_mean

logger = logging.getLogger(__name__)


def as_strategy(value: SplitStrategy | str) -> SplitStrategy:
    try:
        return SplitStrategy(value)
    except ValueError:
        valid = [s.value for s in SplitStrategy]
        raise ConfigError(f"strategy must be one of {', '.join(valid)}, got {value!r}"
                          f"{did_you_mean(str(value), valid)}") from None


def plan_splits(strategy: SplitStrategy | str, labels: np.ndarray, *,
                strata: np.ndarray | None = None, timestamps: np.ndarray | None = None,
                groups: np.ndarray | None = None, train_ratio: float = 0.7,
                val_ratio: float = 0.15, test_ratio: float = 0.15, gap: object = None,
                n_folds: int = 5, balance_classes: bool = False, semi_supervised: bool = False,
                seed: int = 42, train_until: object = None,
                at: tuple[object, object] | None = None) -> dict:
    """Rows of every split (see `DatasetBuilder.create_splits` for the options).

    Args:
        strategy: how to cut.
        labels: (rows,) integer labels, used by balance_classes and semi_supervised, and for
            stratification unless `strata` is given.
        strata: (rows,) keys to stratify on instead of the labels.
        timestamps: (rows,) times, for TEMPORAL.
        groups: (rows,) groups, for GROUP.
        seed: seed of a local generator.
        train_until: TEMPORAL only: a grace period (time or leading share of the rows) that
            is train and val, the rest test (see `temporal_split`).
        at: TEMPORAL only: the cut times (val from, test from) instead of the ratios (see
            `temporal_split`).

    Returns:
        {"train", "val", "test"} -> int64 rows; for K_FOLD {"train": [rows per fold],
        "val": [rows per fold], "test": rows}.
    """
    strategy = as_strategy(strategy)
    if balance_classes and semi_supervised:
        raise ConfigError("balance_classes and semi_supervised exclude each other: "
                          "a semi-supervised train split holds one class only")
    if gap is not None and strategy is not SplitStrategy.TEMPORAL:
        raise ConfigError(f"gap applies to SplitStrategy.TEMPORAL only, not {strategy.name}")
    if train_until is not None and strategy is not SplitStrategy.TEMPORAL:
        raise ConfigError(f"train_until applies to SplitStrategy.TEMPORAL only, not "
                          f"{strategy.name}")
    if at is not None and strategy is not SplitStrategy.TEMPORAL:
        raise ConfigError(f"cut times apply to SplitStrategy.TEMPORAL only, not {strategy.name}")
    rng = np.random.default_rng(seed)
    keys = labels if strata is None else strata
    if strategy is SplitStrategy.K_FOLD:
        if not 0.0 <= test_ratio < 1.0:
            raise ConfigError(f"test_ratio must be in [0, 1) for K_FOLD, got {test_ratio}")
        if test_ratio > 0:
            held = stratified_split(keys, Ratios(1.0 - test_ratio, 0.0, test_ratio), rng)
            rest, test = held["train"], held["test"]
        else:
            rest, test = np.arange(len(keys)), np.zeros(0, dtype=np.int64)
        folds = k_fold(keys[rest], n_folds, rng)
        train = [_train_rows(rest[t], labels, rng, balance_classes, semi_supervised,
                             f"fold{i}_train") for i, (t, _) in enumerate(folds)]
        return {"train": train, "val": [rest[v] for _, v in folds], "test": test}
    ratios = Ratios(train_ratio, val_ratio, test_ratio)
    if strategy is SplitStrategy.RANDOM:
        rows = random_split(len(labels), ratios, rng)
    elif strategy is SplitStrategy.STRATIFIED:
        rows = stratified_split(keys, ratios, rng)
    elif strategy is SplitStrategy.TEMPORAL:
        if timestamps is None:
            raise ConfigError("SplitStrategy.TEMPORAL needs timestamps")
        rows = temporal_split(timestamps, ratios, gap, train_until, at)
    else:
        if groups is None:
            raise ConfigError("SplitStrategy.GROUP needs groups (e.g. the entity column)")
        rows = group_split(groups, ratios, rng)
        _uneven_groups(rows, ratios, len(np.unique(groups)))
    rows["train"] = _train_rows(rows["train"], labels, rng, balance_classes, semi_supervised,
                                "train")
    logger.info("%s split: %s", strategy.value, ", ".join(f"{k} {len(v)}" for k, v in rows.items()))
    return rows


def _uneven_groups(rows: dict, ratios: Ratios, n_groups: int) -> None:
    """Warn of a group split part far below its share: whole groups go to one part, so a few
    large groups leave another part a handful of rows (IoT-23 20 + 21, 5 source addresses:
    val 2 of 6,495 rows, and a threshold set on 2 scores; trial Q)."""
    total = sum(len(v) for v in rows.values())
    for name, share in zip(("train", "val", "test"), ratios.values):
        if share > 0 and len(rows[name]) < share * total / 4:
            logger.warning("group split: %s has %s of %s rows where its share %.0f%% would be "
                           "%s: %d groups, too few or too unequal to cut by; use more groups or "
                           "another strategy", name, f"{len(rows[name]):,}", f"{total:,}",
                           100 * share, f"{round(share * total):,}", n_groups)


def _train_rows(rows: np.ndarray, labels: np.ndarray, rng: np.random.Generator, balance: bool,
                semi: bool, name: str) -> np.ndarray:
    if semi:
        benign = rows[labels[rows] == 0]
        if not len(benign):
            values, counts = np.unique(labels[rows], return_counts=True)
            raise ConfigError(f"semi_supervised needs benign rows (label 0) in {name}, which has "
                              f"{dict(zip(values.tolist(), counts.tolist()))}")
        logger.info("semi-supervised: %s keeps %d benign of %d rows", name, len(benign), len(rows))
        return benign
    return balanced_rows(rows, labels, rng, name) if balance else rows


def balanced_rows(rows: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                  name: str = "train") -> np.ndarray:
    """Undersample every known class (label >= 0) to the size of the rarest; unknown rows stay."""
    mine = labels[rows]
    known = np.unique(mine[mine >= 0])
    if len(known) < 2:
        logger.info("balance_classes: %s has %d known class(es); nothing to balance", name,
                    len(known))
        return rows
    keep = mine < 0
    members = [np.flatnonzero(mine == c) for c in known]
    smallest = min(len(m) for m in members)
    for m in members:
        keep[rng.choice(m, smallest, replace=False)] = True
    logger.info("balance_classes: %s undersampled to %d rows per class", name, smallest)
    return rows[keep]  # in the order given (time order for TEMPORAL)
