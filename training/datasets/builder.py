"""Train/validation/test splits that keep the honest protocol easy (the original API).

    builder = DatasetBuilder.from_file("training/data/preprocessed/layer1_samples.npz")
    splits = builder.create_splits(SplitStrategy.GROUP, semi_supervised=True)
    builder.save_splits(splits, prefix="layer1")  # training/data/splits/layer1_{train,val,test}.npz

Random splits of security data leak a host's traffic, or tomorrow's attack, into training; use
TEMPORAL (optionally with a `gap`) or GROUP (hosts never shared between splits) to measure a
detector as it will be used. Anomaly detectors train on benign rows only: `semi_supervised=True`
keeps only rows labeled 0 in train (never unknown ones); val and test keep every row.

Split files keep every column of the dataset (see `training.datasets.split`), and
`DatasetSplit.load(path)` reads them back.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.artifacts.atomic import fsync_dir
from training.datasets.plan import as_strategy, plan_splits
from training.datasets.split import DatasetSplit, as_column, as_labels
from training.datasets.strategies import SplitStrategy
from training.datasets.temporal import as_time
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
        columns = dict(columns or {})
        if timestamps is not None:
            columns["timestamps"] = timestamps
        if "timestamps" in columns:  # only TEMPORAL needs every row's time, and says so
            columns["timestamps"] = as_time(columns["timestamps"], n, allow_missing=True)
        columns = {k: as_column(v) for k, v in columns.items()}
        if groups is not None:
            groups = as_column(groups)
            if not ("entity" in columns and np.array_equal(groups, columns["entity"])):
                columns["groups"] = groups
        self.dataset = DatasetSplit("all", features, as_labels(labels, n), sample_ids,
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

    def create_splits(self, strategy: SplitStrategy | str = SplitStrategy.STRATIFIED,
                      train_ratio: float = 0.7, val_ratio: float = 0.15, test_ratio: float = 0.15,
                      balance_classes: bool = False, *, semi_supervised: bool = False,
                      gap: object = None, n_folds: int = 5, stratify_by: str = "labels",
                      train_until: object = None, at: tuple[object, object] | None = None
                      ) -> Splits:
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
            train_until: TEMPORAL only: a grace period (a time, or a leading share of the rows)
                that is train and val; every later row is test (see `temporal_split`).
            at: TEMPORAL only: the cut times (val from, test from) instead of the ratios, e.g.
                another split's `cut_times` (see `temporal_split`).

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
        strategy = as_strategy(strategy)
        strata = None if stratify_by == "labels" else self._column(stratify_by, strategy)
        timestamps = self.dataset.columns.get("timestamps")
        if strategy is SplitStrategy.TEMPORAL and timestamps is None:
            self._column("timestamps", strategy)
        if strategy is SplitStrategy.GROUP and self.groups is None:
            raise ConfigError("SplitStrategy.GROUP needs groups=... or an 'entity' column")
        rows = plan_splits(strategy, self.labels, strata=strata, timestamps=timestamps,
                           groups=self.groups, train_ratio=train_ratio, val_ratio=val_ratio,
                           test_ratio=test_ratio, gap=gap, n_folds=n_folds,
                           balance_classes=balance_classes, semi_supervised=semi_supervised,
                           seed=self.random_seed, train_until=train_until, at=at)
        if strategy is SplitStrategy.K_FOLD:
            folds = {kind: [self.dataset.take(r, f"fold{i}_{kind}")
                            for i, r in enumerate(rows[kind])] for kind in ("train", "val")}
            return folds | {"test": self.dataset.take(rows["test"], "test")}
        return {name: self.dataset.take(r, name) for name, r in rows.items()}

    def _column(self, name: str, strategy: SplitStrategy) -> np.ndarray:
        if name not in self.dataset.columns:
            what = "timestamps=..." if name == "timestamps" else f"a {name!r} column"
            raise ConfigError(f"SplitStrategy.{strategy.name} needs {what}; the dataset has "
                              f"columns {sorted(self.dataset.columns)}")
        return self.dataset.columns[name]

    def save_splits(self, splits: dict, prefix: str) -> dict[str, Path]:
        """Write every split to `output_dir/<prefix>_<split name>.npz`, atomically.

        Every file is written before any is replaced, so a failure while writing keeps the
        previous set; and every file carries one new id, so a set that a crash between two
        renames left mixed (new train beside old val and test: leakage) is refused by
        `load_splits`.

        Returns:
            the path of each split by its name ("train", ..., or "fold0_train", ...).
        """
        return self.write_splits(splits, self.output_dir, prefix)

    @staticmethod
    def write_splits(splits: dict, folder: Path, prefix: str) -> dict[str, Path]:
        """`save_splits` into `folder`."""
        if not prefix or "/" in prefix:
            raise ConfigError(f"prefix must be a non-empty file name part, got {prefix!r}")
        flat = [s for v in splits.values() for s in (v if isinstance(v, list) else [v])]
        set_id = uuid.uuid4().hex
        paths = {s.name: folder / f"{prefix}_{s.name}.npz" for s in flat}
        staged = {name: path.with_name(f".{path.name}.{set_id}.npz") for name, path in paths.items()}
        try:  # every file written before any is replaced: a failure keeps the previous set
            for split in flat:
                replace(split, split_set=set_id).save(staged[split.name])
            for name, path in paths.items():
                os.replace(staged[name], path)
        finally:
            for path in staged.values():
                path.unlink(missing_ok=True)
        fsync_dir(folder)
        logger.info("saved %d splits to %s", len(paths), folder)
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
        rng = np.random.default_rng(self.random_seed)
        noisy += noise_std * rng.standard_normal(noisy.shape, dtype=np.float32)
        if clip is not None:
            np.clip(noisy, clip[0], clip[1], out=noisy)
        rows = np.tile(np.arange(len(split)), augmentation_factor)
        ids = split.sample_ids.astype(str)
        features = np.concatenate([split.features, noisy.reshape(-1, *split.features.shape[1:])])
        return DatasetSplit(
            split.name, features, split.labels[rows],
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


def _is_unit_range(split: DatasetSplit) -> bool:
    return bool(len(split)) and split.features.min() >= 0.0 and split.features.max() <= 1.0


def load_splits(split_dir: str | Path | None = None, prefix: str = "layer1") -> dict:
    """Splits written by `DatasetBuilder.save_splits`: {"train", "val", "test"}, or the K_FOLD
    form when `<prefix>_fold0_train.npz` exists.

    Raises:
        SourceError: no split files with that prefix in the folder.
    """
    folder = Path(split_dir) if split_dir is not None else splits_dir()
    if (folder / f"{prefix}_train.npz").exists():
        return _one_set(folder, prefix, {name: DatasetSplit.load(folder / f"{prefix}_{name}.npz", name)
                                         for name in ("train", "val", "test")})
    n_folds = 0
    while (folder / f"{prefix}_fold{n_folds}_train.npz").exists():
        n_folds += 1
    if not n_folds:
        raise SourceError(f"{folder}: no {prefix}_train.npz (nor {prefix}_fold0_train.npz); "
                          "write splits with DatasetBuilder.save_splits first")
    return _one_set(folder, prefix, {
        kind: [DatasetSplit.load(folder / f"{prefix}_fold{i}_{kind}.npz", f"fold{i}_{kind}")
               for i in range(n_folds)] for kind in ("train", "val")} | {
        "test": DatasetSplit.load(folder / f"{prefix}_test.npz", "test")})


def _one_set(folder: Path, prefix: str, splits: dict) -> dict:
    """`splits`, unless their files come from different `save_splits` calls."""
    flat = [s for v in splits.values() for s in (v if isinstance(v, list) else [v])]
    ids = {s.name: s.split_set for s in flat}
    if len(set(ids.values())) > 1:
        cuts = ", ".join(f"{name}: {cut or 'none'}" for name, cut in ids.items())
        raise SchemaError(f"{folder}: the {prefix}_* split files come from different cuts "
                          f"({cuts}); a save was interrupted, and mixing them would leak rows "
                          "between splits. Cut and save the splits again")
    return splits
