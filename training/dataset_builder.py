"""Train/validation/test splits that keep the honest protocol easy (the original API).

    builder = DatasetBuilder.from_file("training/data/preprocessed/layer1_samples.npz")
    splits = builder.create_splits(SplitStrategy.GROUP, semi_supervised=True)
    builder.save_splits(splits, prefix="layer1")   # training/data/splits/layer1_{train,val,test}.npz

Random splits of security data leak a host's traffic, or tomorrow's attack, into training; use
TEMPORAL (optionally with a `gap`) or GROUP (hosts never shared between splits) to measure a
detector as it will be used. Anomaly detectors train on benign rows only: `semi_supervised=True`
keeps only rows labeled 0 in train (never unknown ones); val and test keep every row.

Split files keep every column of the dataset (see `training.datasets.split`), and
`DatasetSplit.load(path)` reads them back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from training.datasets.split import DatasetSplit, as_column
from training.datasets.strategies import (
    Ratios, SplitStrategy, as_time, group_split, k_fold, random_split, stratified_split,
    temporal_split,
)
from training.datasets.summary import feature_summary
from training.datasets.torch_data import PyTorchDatasetWrapper, make_loader
from training.errors import ConfigError, SchemaError, SourceError
from training.features.encoding import FeatureSpec
from training.paths import splits_dir

logger = logging.getLogger(__name__)

__all__ = ["DatasetBuilder", "DatasetSplit", "PyTorchDatasetWrapper", "SplitStrategy",
           "load_splits", "make_loader"]

Splits = dict[str, DatasetSplit]  # K_FOLD: {"train": [..], "val": [..], "test": DatasetSplit}


class DatasetBuilder:
    """Cuts a labeled dataset into splits, balances or augments the training split, saves them.

    Args:
        features: (rows, ...) model inputs; stored as float32.
        labels: (rows,) integers (is_threat: -1 unknown, 0 benign, 1 threat).
        sample_ids: (rows,) identifiers (a list is fine).
        timestamps: (rows,) datetimes or numbers, for TEMPORAL (default: columns["timestamps"]).
        output_dir: where `save_splits` writes (default training/data/splits).
        random_seed: seed of every random choice (a local generator; global state is untouched).
        groups: (rows,) group of every row for GROUP, e.g. hosts (default: columns["entity"]).
        columns: other per-row arrays to carry into the splits (attack_type, entity, ...).
        spec: the FeatureSpec of the features, saved with every split.
        layer: the layer name saved with every split (e.g. "layer1_sensory").
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray, sample_ids: object,
                 timestamps: object = None, output_dir: str | Path | None = None,
                 random_seed: int = 42, groups: object = None, *,
                 columns: dict[str, np.ndarray] | None = None, spec: FeatureSpec | None = None,
                 layer: str | None = None) -> None:
        if not isinstance(random_seed, int | np.integer) or random_seed < 0:
            raise ConfigError(f"random_seed must be an integer >= 0, got {random_seed!r}")
        features = np.asarray(features, dtype=np.float32)
        if features.ndim < 1 or not len(features):
            raise ConfigError(f"features must hold at least one row, got shape {features.shape}")
        n = len(features)
        columns = {k: as_column(v) for k, v in (columns or {}).items()}
        if timestamps is not None:
            columns["timestamps"] = timestamps
        if "timestamps" in columns:
            columns["timestamps"] = as_time(columns["timestamps"], n)
        if groups is not None:
            groups = as_column(groups)
            if not ("entity" in columns and np.array_equal(groups, columns["entity"])):
                columns["groups"] = groups
        self.dataset = DatasetSplit("all", features, _as_labels(labels, n), sample_ids,
                                    np.arange(n), columns, spec, layer)
        self.output_dir = Path(output_dir) if output_dir is not None else splits_dir()
        self.random_seed = int(random_seed)

    @classmethod
    def from_file(cls, path: str | Path, output_dir: str | Path | None = None,
                  random_seed: int = 42) -> DatasetBuilder:
        """A builder over a preprocessed-samples (or split) file, keeping every column and the
        FeatureSpec; `timestamps` drive TEMPORAL and `entity` drives GROUP."""
        data = DatasetSplit.load(path, name="all")
        return cls(data.features, data.labels, data.sample_ids, output_dir=output_dir,
                   random_seed=random_seed, columns=data.columns, spec=data.spec,
                   layer=data.layer)

    @property
    def features(self) -> np.ndarray:
        return self.dataset.features

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels

    @property
    def groups(self) -> np.ndarray | None:
        columns = self.dataset.columns
        return columns.get("groups", columns.get("entity"))

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.random_seed)

    def create_splits(self, strategy: SplitStrategy | str = SplitStrategy.STRATIFIED,
                      train_ratio: float = 0.7, val_ratio: float = 0.15, test_ratio: float = 0.15,
                      balance_classes: bool = False, *, semi_supervised: bool = False,
                      gap: object = None, n_folds: int = 5, stratify_by: str = "labels") -> Splits:
        """Cut the dataset.

        Args:
            strategy: see `training.datasets.strategies` for what each keeps apart.
            train_ratio, val_ratio, test_ratio: shares of the rows (sum 1; val/test may be 0).
            balance_classes: undersample the training split so every known class (label >= 0)
                has as many rows as the rarest; unknown rows stay. Val and test are untouched.
            semi_supervised: keep only benign rows (label 0) in train, for anomaly detectors.
            gap: TEMPORAL only: quiet period between splits (see `temporal_split`).
            n_folds: K_FOLD only: number of folds.
            stratify_by: STRATIFIED and K_FOLD: "labels" or the name of another column
                (e.g. "attack_type", so rare attacks reach every split).

        Returns:
            {"train", "val", "test"} splits. K_FOLD holds out `test_ratio` of the rows
            (stratified) as "test" and returns {"train": [fold splits], "val": [fold splits],
            "test": split}: fold i trains on "fold{i}_train" and validates on "fold{i}_val", and
            every non-test row is in exactly one fold's val split (train/val ratios are unused).

        Raises:
            ConfigError: bad ratios, or a strategy the data cannot support (a class of one row
                for STRATIFIED, fewer groups than splits for GROUP, no timestamps for TEMPORAL,
                no benign training row for semi_supervised, ...).
        """
        strategy = _strategy(strategy)
        if balance_classes and semi_supervised:
            raise ConfigError("balance_classes and semi_supervised exclude each other: "
                              "a semi-supervised train split holds one class only")
        rng = self._rng()
        if strategy is SplitStrategy.K_FOLD:
            if not 0.0 <= test_ratio < 1.0:
                raise ConfigError(f"test_ratio must be in [0, 1) for K_FOLD, got {test_ratio}")
            return self._k_fold(test_ratio, n_folds, stratify_by, rng, balance_classes,
                                semi_supervised)
        ratios = Ratios(train_ratio, val_ratio, test_ratio)
        if strategy is SplitStrategy.RANDOM:
            rows = random_split(len(self.dataset), ratios, rng)
        elif strategy is SplitStrategy.STRATIFIED:
            rows = stratified_split(self._column(stratify_by), ratios, rng)
        elif strategy is SplitStrategy.TEMPORAL:
            rows = temporal_split(self._column("timestamps", "TEMPORAL"), ratios, gap)
        else:
            if self.groups is None:
                raise ConfigError("SplitStrategy.GROUP needs groups=... or an 'entity' column")
            rows = group_split(self.groups, ratios, rng)
        splits = {name: self.dataset.take(part, name) for name, part in rows.items()}
        splits["train"] = self._prepare_train(splits["train"], rng, balance_classes,
                                              semi_supervised)
        logger.info("%s split: %s", strategy.value,
                    ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
        return splits

    def _k_fold(self, test_ratio: float, n_folds: int, stratify_by: str,
                rng: np.random.Generator, balance: bool, semi: bool) -> dict:
        keys = self._column(stratify_by)
        if test_ratio > 0:
            held = stratified_split(keys, Ratios(1.0 - test_ratio, 0.0, test_ratio), rng)
            rest, test_rows = held["train"], held["test"]
        else:
            rest, test_rows = np.arange(len(keys)), np.zeros(0, dtype=np.int64)
        folds = {"train": [], "val": []}
        for i, (train, val) in enumerate(k_fold(keys[rest], n_folds, rng)):
            train_split = self.dataset.take(rest[train], f"fold{i}_train")
            folds["train"].append(self._prepare_train(train_split, rng, balance, semi))
            folds["val"].append(self.dataset.take(rest[val], f"fold{i}_val"))
        return {**folds, "test": self.dataset.take(test_rows, "test")}

    def _column(self, name: str, strategy: str = "STRATIFIED") -> np.ndarray:
        if name == "labels":
            return self.dataset.labels
        if name not in self.dataset.columns:
            what = "timestamps=..." if name == "timestamps" else f"a {name!r} column"
            raise ConfigError(f"SplitStrategy.{strategy} needs {what}; the dataset has columns "
                              f"{sorted(self.dataset.columns)}")
        return self.dataset.columns[name]

    def _prepare_train(self, train: DatasetSplit, rng: np.random.Generator, balance: bool,
                       semi: bool) -> DatasetSplit:
        if semi:
            benign = np.flatnonzero(train.labels == 0)
            if not len(benign):
                raise ConfigError(f"semi_supervised needs benign rows (label 0) in {train.name}, "
                                  f"which has {train.get_class_distribution()}")
            logger.info("semi-supervised: %s keeps %d benign of %d rows", train.name,
                        len(benign), len(train))
            return train.take(benign)
        return balance_split(train, rng) if balance else train

    def save_splits(self, splits: dict, prefix: str) -> dict[str, Path]:
        """Write every split to `output_dir/<prefix>_<split name>.npz`, atomically.

        Returns:
            the path of each split by its name ("train", ..., or "fold0_train", ...).
        """
        if not prefix or "/" in prefix:
            raise ConfigError(f"prefix must be a non-empty file name part, got {prefix!r}")
        flat = [s for v in splits.values() for s in (v if isinstance(v, list) else [v])]
        paths = {s.name: s.save(self.output_dir / f"{prefix}_{s.name}.npz") for s in flat}
        logger.info("saved %d splits to %s", len(paths), self.output_dir)
        return paths

    @staticmethod
    def load_splits(split_dir: str | Path | None = None, prefix: str = "layer1") -> dict:
        """Read splits written by `save_splits` (see `load_splits`)."""
        return load_splits(split_dir, prefix)

    def augment_data(self, split: DatasetSplit, augmentation_factor: int = 2,
                     noise_std: float = 0.01, clip: tuple[float, float] | None | str = "auto"
                     ) -> DatasetSplit:
        """The split plus `augmentation_factor - 1` copies with Gaussian noise.

        Args:
            split: a training split (augmenting val or test would bias evaluation: refused).
            augmentation_factor: rows in the result per row of `split` (>= 1).
            noise_std: standard deviation of the noise (>= 0).
            clip: range the noisy values are clipped to; "auto" clips to [0, 1] for layer-1
                data (its spec or layer says so, or every value already lies in [0, 1]).

        Returns:
            a new split: the original rows, then the copies (sample ids "<id>#aug<k>").
        """
        if split.name in ("val", "test") or split.name.endswith("_val"):
            raise ConfigError(f"augment_data works on training splits only, got {split.name!r}")
        if not isinstance(augmentation_factor, int) or augmentation_factor < 1:
            raise ConfigError(f"augmentation_factor must be an integer >= 1, got "
                              f"{augmentation_factor!r}")
        if not noise_std >= 0:
            raise ConfigError(f"noise_std must be >= 0, got {noise_std}")
        if clip == "auto":
            clip = (0.0, 1.0) if _is_unit_range(split) else None
        copies = augmentation_factor - 1
        noisy = np.repeat(split.features[None], copies, axis=0)  # (copies, rows, ...)
        noisy += noise_std * self._rng().standard_normal(noisy.shape, dtype=np.float32)
        if clip is not None:
            np.clip(noisy, clip[0], clip[1], out=noisy)
        rows = np.tile(np.arange(len(split)), augmentation_factor)
        ids = split.sample_ids.astype(str)
        return DatasetSplit(
            split.name, np.concatenate([split.features, noisy.reshape(-1, *split.features.shape[1:])]),
            split.labels[rows],
            np.concatenate([ids] + [np.char.add(ids, f"#aug{k}") for k in range(1, copies + 1)]),
            split.indices[rows], {k: v[rows] for k, v in split.columns.items()}, split.spec,
            split.layer)

    def get_statistics(self) -> dict:
        """Size, classes, per-feature summary, time range and group count of the dataset."""
        data = self.dataset
        stats = {"num_samples": len(data), "num_features": int(np.prod(data.features.shape[1:])),
                 "class_distribution": data.get_class_distribution(),
                 "unknown_labels": int((data.labels < 0).sum()),
                 **feature_summary(data.features.reshape(len(data), -1)),
                 "time_range": None, "num_groups": None}
        if "timestamps" in data.columns:
            times = data.columns["timestamps"]
            stats["time_range"] = [str(times.min()), str(times.max())]
        if self.groups is not None:
            stats["num_groups"] = int(len(np.unique(self.groups)))
        return stats


def _strategy(value: SplitStrategy | str) -> SplitStrategy:
    try:
        return SplitStrategy(value)
    except ValueError:
        valid = ", ".join(s.value for s in SplitStrategy)
        raise ConfigError(f"strategy must be one of {valid}, got {value!r}") from None


def _as_labels(labels: object, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ConfigError(f"labels must have one value per row ({n}), got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise SchemaError("labels must be whole numbers (-1 unknown, 0 benign, 1 threat)")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind == "b":
        labels = labels.astype(np.int8)
    elif labels.dtype.kind not in "iu":
        raise SchemaError(f"labels must be integers (-1 unknown, 0 benign, 1 threat), got "
                          f"dtype {labels.dtype}")
    return labels


def _is_unit_range(split: DatasetSplit) -> bool:
    if (split.spec is not None and split.spec.layer == "layer1") or split.layer == "layer1_sensory":
        return True
    return bool(len(split)) and split.features.min() >= 0.0 and split.features.max() <= 1.0


def balance_split(split: DatasetSplit, rng: np.random.Generator) -> DatasetSplit:
    """Undersample every known class (label >= 0) to the size of the rarest; unknown rows stay."""
    known = np.unique(split.labels[split.labels >= 0])
    if len(known) < 2:
        logger.info("balance_classes: %s has %d known class(es); nothing to balance",
                    split.name, len(known))
        return split
    members = [np.flatnonzero(split.labels == c) for c in known]
    smallest = min(len(m) for m in members)
    keep = [rng.choice(m, smallest, replace=False) for m in members]
    keep.append(np.flatnonzero(split.labels < 0))
    logger.info("balance_classes: %s undersampled to %d rows per class", split.name, smallest)
    return split.take(np.sort(np.concatenate(keep)))


def load_splits(split_dir: str | Path | None = None, prefix: str = "layer1") -> dict:
    """Splits written by `DatasetBuilder.save_splits`: {"train", "val", "test"}, or the K_FOLD
    form when `<prefix>_fold0_train.npz` exists.

    Raises:
        SourceError: no split files with that prefix in the folder.
    """
    folder = Path(split_dir) if split_dir is not None else splits_dir()
    if (folder / f"{prefix}_train.npz").exists():
        return {name: DatasetSplit.load(folder / f"{prefix}_{name}.npz", name)
                for name in ("train", "val", "test")}
    n_folds = 0
    while (folder / f"{prefix}_fold{n_folds}_train.npz").exists():
        n_folds += 1
    if not n_folds:
        raise SourceError(f"{folder}: no {prefix}_train.npz (nor {prefix}_fold0_train.npz); "
                          "write splits with DatasetBuilder.save_splits first")
    return {kind: [DatasetSplit.load(folder / f"{prefix}_fold{i}_{kind}.npz", f"fold{i}_{kind}")
                   for i in range(n_folds)] for kind in ("train", "val")} | {
        "test": DatasetSplit.load(folder / f"{prefix}_test.npz", "test")}
