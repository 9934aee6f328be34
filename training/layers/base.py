"""The layer contract: one object owns a layer's whole slice, found through one registry.

Every per-layer step goes through a `Layer` (DESIGN.md): featurize events into units, each
mapped back to the events that formed it; fit the scaling on training units; split units and
cut them into batches; build the default detector (or another chosen by name:
`build_detector`) and its TrainingConfig; sample its search space; score units; explain a
unit's score. Stages never switch on layer names: they ask
`get_layer(name)` (`training.layers.registry`) for the class, or `layer_for_spec(spec)` for the layer a model was trained
with.

Names: every layer has one canonical name ("layer1"). Its aliases (the original `LayerType`
values such as "layer1_sensory", and "1") are accepted only where people type them, through
`get_layer`. The original layers 4 and 5 are names without an implementation: asking for one
raises NotSupportedError.

The sklearn contract: the featurizer is given to `__init__` and stored unchanged; `fit(train)`
learns the scaling from training units (attributes ending in `_`) and returns self; `spec` is
the FeatureSpec with that fitted state, and `from_spec(spec)` rebuilds the same layer from it
(scoring, retraining, a model's sidecar).
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.detectors.base import SCORE_BATCH, Detector, model_scores
from training.errors import ConfigError, NotSupportedError
from training.features.dropped_fields import featurizer_from_spec
from training.features.encoding import FeatureSpec
from training.layers.samples import LayerType, PreprocessedSample
from training.trainer.config import TrainingConfig

logger = logging.getLogger(__name__)

TIME = pa.timestamp("us", tz="UTC")  # the type of a unit's time

class Layer(ABC):
    """One layer of the pipeline (see the module docstring).

    Class attributes:
        name: the canonical name ("layer1"); also the FeatureSpec's `layer`.
        aliases: other names people may type for it.
        unit: what one score is about ("event", "edge", "window").
        model_name: the default checkpoint and registry name of its detector.
        features_file: file name of its featurized units in a work directory.
        score_batch: units per model call when scoring.
        streams: a unit is one event, so scoring can go batch by batch as events are read.
        min_units: the fewest units (before the split) a model is trained on: below it the
            pipeline skips the layer (`shortfall`); its training part needs half as many
            (`train_shortfall`).
        model_options: the default detector's own arguments with their command-line
            settings (argparse keyword arguments: type, default, help, ...).
        detector_name: the name the layer's own detector (`default_detector`) is chosen by,
            next to the row detectors (`detector_names`).
        row_inputs: the row views (`training.detectors.rows`) its batches offer to a row
            detector (ECOD, kNN, isolation forest, plain autoencoder), the default first.
        layer_type: the original `LayerType` member, for layers the original package named.
        featurizer_options: the featurizer's own arguments a run may set (`[train.<layer>]`
            keys, `--<layer>-<name>` flags; `training.layers.configured`), as model_options.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[str]
    model_name: ClassVar[str]
    features_file: ClassVar[str]
    score_batch: ClassVar[int] = SCORE_BATCH
    streams: ClassVar[bool] = False
    min_units: ClassVar[int] = 1
    model_options: ClassVar[dict[str, dict[str, Any]]] = {}
    detector_name: ClassVar[str] = "default"
    row_inputs: ClassVar[tuple[str, ...]] = ()
    layer_type: ClassVar[LayerType | None] = None
    featurizer_options: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, featurizer: Any = None) -> None:
        self.featurizer = featurizer if featurizer is not None else self.default_featurizer()
        self.benign_only_: bool | None = None
        self.data_spec_: FeatureSpec | None = None

    # -- features --------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def featurizer_class(cls) -> type:
        """The featurizer's class (imported when first asked for): `Class()` is the default
        layout, `Class.from_spec(spec)` rebuilds the one a spec describes, `featurize(table)`
        makes units and `spec` describes it."""

    @classmethod
    def default_featurizer(cls) -> Any:
        """The featurizer used when none is given (the data-free default layout)."""
        return cls.featurizer_class()()

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> Layer:
        """The layer a FeatureSpec describes, fitted state included (a model's or a file's).

        Raises:
            SchemaError: the spec is for another layer, or this code cannot reproduce it.
        """
        return cls(featurizer_from_spec(cls.featurizer_class(), spec))

    @classmethod
    def for_labels(cls, *, alert_labels: bool = False, **options: Any) -> Layer:
        """The layer, with its default featurizer (`options`: `featurizer_options` set), for
        events whose labels come from alert events (`alert_labels`, see
        `training.collection.schema.labels_from_alerts`) or not. A layer whose features can
        leave the alert events out does so (layer 3's `l3.v2`)."""
        return cls(cls.featurizer_class()(**options)) if options else cls()

    def circular(self, alert_labels: bool) -> str | None:
        """Why this layer's labeled figures are circular on events whose labels come from
        alert events (its units are made of those events), or None when they are not."""
        if not alert_labels:
            return None
        return (f"the labels come from alert events, and {self.name}'s {self.unit}s are made "
                "of those same events, so its labeled figures measure how well it finds the "
                "alerts themselves, not attacks")

    def shortfall(self, units: Any, strategy: str = "temporal") -> str | None:
        """Why `units` are too few to train on, or None: fewer than `min_units`, or (for a
        temporal split) at fewer than 3 distinct times, which no train/val/test cut can
        separate."""
        n = len(self.labels(units))
        if n < self.min_units:
            return f"{n:,} {self.unit}s, fewer than the {self.min_units} it needs"
        if strategy == "temporal":
            distinct = pc.count_distinct(self.unit_columns(units)["time"]).as_py()
            if distinct < 3:
                return (f"{n:,} {self.unit}s at {distinct} distinct time(s), fewer than the 3 a "
                        "temporal train/val/test split needs")
        return None

    def train_shortfall(self, train: Any, learns: np.ndarray | None = None) -> str | None:
        """Why a training part is too small to learn from, or None: fewer than half
        `min_units` (a grace period that ends just after the data starts leaves a handful)
        among those it learns from (`learns`, a mask of its units; None: all of them)."""
        total, least = len(self.labels(train)), -(-self.min_units // 2)
        n = total if learns is None else int(np.count_nonzero(learns))
        if n < least:
            of = "" if n == total else f" it learns from (of {total:,})"
            return (f"its training part holds {n:,} {self.unit}s{of}, fewer than the {least} "
                    "it needs to learn from")
        return None

    @abstractmethod
    def featurize(self, events: pa.Table) -> Any:
        """The units of a canonical event table, with the data spec inside."""

    @abstractmethod
    def load_units(self, path: Any) -> Any:
        """Units saved by `units.save(path)` (features files and split files)."""

    @property
    def data_spec(self) -> FeatureSpec:
        """The transform of the data: the training units' spec once fitted, else the
        featurizer's (what data files carry)."""
        return self.data_spec_ if self.data_spec_ is not None else self.featurizer.spec

    @property
    def spec(self) -> FeatureSpec:
        """The model's spec: the data spec plus what `fit` learned."""
        return self.data_spec

    def assumed_spec(self, units: Any) -> FeatureSpec | None:
        """The spec to take for units saved without one (arrays written by code that passed
        none): None, unless the layer's default layout needs nothing fitted and fits them."""
        return None

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, train: Any, *, benign_only: bool | None = None) -> Layer:
        """Learn from the training units; returns self.

        Args:
            train: training units.
            benign_only: learn from the benign units only (is_threat 0; unknown is never
                benign). None: when there is any benign unit, else from every unit (unlabeled
                traffic, assumed benign).
        """
        self.data_spec_ = getattr(train, "spec", None)  # the transform the units were made with
        labels = self.labels(train)
        self.benign_only_ = bool((labels == 0).any()) if benign_only is None else benign_only
        if self.benign_only_ and not (labels == 0).any():
            counts = {v: int((labels == v).sum()) for v in (-1, 1)}
            raise ConfigError(
                f"benign_only=True but the training {self.unit}s have no benign (is_threat 0) "
                f"{self.unit} ({counts[-1]:,} unknown, {counts[1]:,} threat); learn from every "
                f"{self.unit}, assumed benign (leave out --benign-only / train.benign_only), or "
                "label the data (--default-label, --label-map)")
        self.fit_scaling(train)
        return self

    def fit_scaling(self, train: Any) -> None:
        """Learn the scaling the detector's inputs need (none by default)."""

    def fit_rows(self, labels: np.ndarray) -> np.ndarray:
        """Mask of the units training learns from (see `fit`)."""
        if self.benign_only_ is None:
            raise ConfigError(f"this {type(self).__name__} is not fitted: call fit(train) first")
        return self.learnt_mask(labels, self.benign_only_)

    @staticmethod
    def learnt_mask(labels: np.ndarray, benign_only: bool | None) -> np.ndarray:
        """The units training learns from, as `fit` picks them: the benign ones with
        `benign_only` (None: when there are any), else every unit."""
        benign = np.asarray(labels) == 0
        only = bool(benign.any()) if benign_only is None else benign_only
        return benign if only else np.ones(len(benign), bool)

    # -- live scoring ----------------------------------------------------------------------

    @property
    def window_seconds(self) -> float | None:
        """The event time one unit spans (a window, a bucket): live scoring scores a unit once
        that span has closed. None for per-event layers (`streams`)."""
        return None

    def carried_history(self) -> Any:
        """What live scoring carries from closed windows to later ones (layer 3: each entity's
        recent buckets), or None when a window is made of its own events only."""
        return None

    # -- units -----------------------------------------------------------------------------

    @abstractmethod
    def labels(self, units: Any) -> np.ndarray:
        """is_threat (-1/0/1) of every unit, in scoring order."""

    @abstractmethod
    def split(self, units: Any, strategy: str, ratios: tuple[float, float, float],
              seed: int, **options: Any) -> dict[str, Any]:
        """{"train", "val", "test"} parts of `units` (each saves itself with `save(path)`).
        `options`, for "temporal": `train_until` (a grace period) or `at` (the cut times, e.g.
        the events' split's), see `training.datasets.temporal.temporal_split`."""

    def save_splits(self, splits: dict[str, Any], folder: Path) -> dict[str, Path]:
        """Write each part to `folder/<name>_<part>.npz` with its own `save`."""
        return {part: units.save(Path(folder) / f"{self.name}_{part}.npz")
                for part, units in splits.items()}

    @abstractmethod
    def unit_features(self, units: Any) -> np.ndarray:
        """One feature row per unit, (units, features), in scoring order: what drift checks
        and data validation look at."""

    feature_names_key: ClassVar[str | None] = None  # where the units' spec lists them

    def feature_names(self, units: Any) -> list[str] | None:
        """The names of `unit_features`' columns, as the units' spec lists them under
        `feature_names_key` (drift and validation reports name features so); None where it
        does not (they read feature_0, feature_1, ...)."""
        config = getattr(getattr(units, "spec", None), "config", None) or {}
        names = config.get(self.feature_names_key) if self.feature_names_key else None
        width = np.shape(self.unit_features(units))[-1]
        return list(names) if names is not None and len(names) == width else None

    @abstractmethod
    def relabeled(self, units: Any, labels: np.ndarray) -> Any:
        """A copy of `units` whose unit labels are `labels` (e.g. to leave units out of what
        training learns from by marking them threats)."""

    def train_with(self, train_fn: Any, train: Any, val: Any, config: TrainingConfig
                   ) -> tuple[Any, dict[str, Any]]:
        """Call a user's train function (the original `run_retraining(train_fn=...)` form)
        on this layer's units; it returns (model, results with "checkpoint")."""
        return train_fn(train, val, config=config)

    def attack_types(self, units: Any) -> np.ndarray | None:
        """The attack type (detailed label) of every unit, when the units keep one."""
        return None

    @abstractmethod
    def unit_columns(self, units: Any) -> dict[str, pa.Array]:
        """Per unit, in scoring order: "unit" (text naming it), "time" (timestamp[us, UTC])
        and "event_ids" (list of the ids of the events that formed it)."""

    # -- models ----------------------------------------------------------------------------

    @abstractmethod
    def default_detector(self, units: Any, **model_args: Any) -> Detector:
        """A new detector sized for `units`, with `model_args` changing its defaults."""

    def row_width(self, units: Any, inputs: str) -> int:
        """The width of the rows the view `inputs` (one of `row_inputs`) reads from the
        batches of `units`."""
        raise NotSupportedError(f"{self.name} offers no row view to a row detector")

    @classmethod
    def detector_names(cls) -> list[str]:
        """The detectors this layer can train: its own, then the row detectors when its
        batches offer row views."""
        from training.detectors.rows import row_detector_names

        return [cls.detector_name, *(row_detector_names() if cls.row_inputs else [])]

    def build_detector(self, units: Any, detector: str | None = None,
                       **model_args: Any) -> Detector:
        """A new detector for `units`: the layer's own (`detector` None or
        `detector_name`, built by `default_detector`) or a row detector by its short name
        ("ecod", "knn", "iforest", "autoencoder") reading the view `inputs` (default: the
        layer's first), sized for it; `model_args` are the chosen detector's own arguments.

        Raises:
            ConfigError: an unknown detector, view or argument (the message lists the valid
                ones), or an invalid value.
        """
        from training.detectors.rows import row_detector

        if detector is None or detector == self.detector_name:
            return self.default_detector(units, **model_args)
        if detector not in self.detector_names():
            raise ConfigError(f"{self.name} detector must be one of "
                              f"{', '.join(self.detector_names())}, got {detector!r}")
        inputs = model_args.pop("inputs", self.row_inputs[0])
        if inputs not in self.row_inputs:
            raise ConfigError(f"inputs of a {self.name} {detector} must be one of "
                              f"{', '.join(self.row_inputs)}, got {inputs!r}")
        cls = row_detector(detector)
        allowed = [name for name in inspect.signature(cls).parameters
                   if name not in ("input_dim", "inputs")]
        unknown = sorted(set(model_args) - set(allowed))
        if unknown:
            raise ConfigError(f"{detector} takes {', '.join(allowed)} (and inputs), not "
                              f"{', '.join(unknown)}")
        return cls(input_dim=self.row_width(units, inputs), inputs=inputs, **model_args)

    @abstractmethod
    def default_config(self, **changes: Any) -> TrainingConfig:
        """The detector's TrainingConfig (model_name, batch size, epochs, ...) with `changes`."""

    @abstractmethod
    def search_space(self, trial: Any) -> dict[str, Any]:
        """One sample of the tuning search space (learning_rate, batch_size, model args)."""

    @abstractmethod
    def batches(self, units: Any, batch_size: int, *, fit_only: bool = False,
                shuffle: bool = False, **sharding: Any) -> Iterable[Any]:
        """The detector's batches of `units`; `fit_only` keeps what training learns from
        (see `fit`). `sharding`: seed, rank and world_size for multi-process training."""

    def validation_loss(self, metrics: dict[str, float]) -> float:
        """The validation loss tuning minimizes, from an epoch's validation metrics."""
        return metrics["val_loss"]

    def score(self, model: Detector, units: Any) -> np.ndarray:
        """The anomaly score of every unit, in scoring order (float32, higher = more anomalous)."""
        return model_scores(model, self.batches(units, self.score_batch))

    def event_sample(self, record: Any) -> PreprocessedSample | None:
        """The sample of one event from its canonical record
        (`training.collection.canonical_record`), made without the batch path's per-call
        setup and equal to what `samples(featurize(table))` gives for that one-row table; None
        where the layer has no such path (the caller then takes the batch path)."""
        return None

    def samples(self, units: Any) -> list[PreprocessedSample]:
        """The units as the original API's `PreprocessedSample`s (one per unit)."""
        raise NotSupportedError(f"{self.name} has no per-sample form; use its units")

    def from_samples(self, samples: list[PreprocessedSample]) -> Any:
        """Units packed from `PreprocessedSample`s (the inverse of `samples`)."""
        raise NotSupportedError(f"{self.name} samples cannot be packed back one by one; save "
                                "the units whole: featurize(events) of this layer (or "
                                "training.features.preprocessor.DataPreprocessor.featurize"
                                "(events, layer)) returns them, their save(path) writes them")

    def explain(self, model: Detector, units: Any, rows: np.ndarray,
                events: pa.Table | None = None) -> list[list[Any]]:
        """The reasons behind the scores of units `rows`: per unit, `Reason`s
        (`training.layers.reasons`), largest contribution first, whose contributions sum to
        its score. `events`: the canonical events the units were made from, for observed
        values.

        Raises:
            NotSupportedError: the layer or its detector cannot split its scores.
        """
        from training.layers.reasons import explain_terms

        return explain_terms(model, self.batches(units, self.score_batch), rows,
                             self.term_names(model, units))

    def term_names(self, model: Detector, units: Any) -> list[str]:
        """The name of each of `model.feature_terms`' terms on this layer's batches.

        Raises:
            NotSupportedError: the layer does not name its detector's terms.
        """
        raise NotSupportedError(f"{self.name} does not name the terms of its scores")
