"""What `maximus-train pipeline` runs: one TOML file, or flags that fill the same dataclasses.

```toml
workdir = "maximus-run"              # everything the run writes goes under it
layers = ["layer1", "layer2", "layer3"]
seed = 42
drop_fields = ["direction"]          # fields no layer sees (a label leak); the models record
                                     # it and score without them too (features.dropped_fields)

[[sources]]                          # as many as needed; same fields as DataSource
name = "zeek"
type = "zeek_logs"                   # a DataSourceType value or a CLI alias (zeek, csv, ...)
path = "/var/log/zeek"               # or connection_params = { ... }
# field_map = { source_ip = "src" }  label_map = { "normal" = 0 }  default_label = "benign"
# column_names = "nsl_kdd"           # a header-less CSV: a preset or a list of names

[[test_sources]]                     # optional: evaluate on these instead of a test part
type = "zeek_logs"                   # of [[sources]] (same fields)
path = "/var/log/zeek/next-day"

[split]
strategy = "temporal"                # random, stratified, temporal, group; events without
train_ratio = 0.6                    # timestamps get "random" (said in the run's notes)
val_ratio = 0.2
test_ratio = 0.2
# train_until = "2024-06-01T12:00:00Z"  # a grace period: train on what comes before (or a
                                        # leading share of the units: 0.5), test on the rest

[train]                              # defaults of every layer (batch size and learning rate
epochs = 20                          # default to each layer's own) ...
benign_only = false                  # true: learn from is_threat 0 units only (default: every
keep_unknown = false                 # training unit, assumed benign); with it, unknown too
threshold = "quantile:0.999"         # or "alerts-per-day:10", "best-f1" (see
                                     # training.evaluation.calibration)

[train.layer2]                       # ... and per-layer changes; other keys are model arguments
epochs = 30
hidden_dim = 32

[train.layer1]
params = "training/tuning/layer1_vae_tuning/best_params.json"  # `tune`'s best configuration
                                     # (or --params layer1=FILE): it replaces the defaults,
                                     # this table's keys and the flags win (pipeline.tuned)

[train.layer3]
detector = "iforest"                 # another detector: the layer's own (vae, gnn, tcn) or a
n_estimators = 200                   # row detector (ecod, knn, iforest, autoencoder), with its
inputs = "target"                    # arguments and the row it reads (see Layer.build_detector)
entity = "host"                      # a featurizer option (Layer.featurizer_options): windows
                                     # per host (or user) for host telemetry without addresses

[gate]                               # promote a new model past these only
metric = "pr_auc"                    # or "roc_auc" (see training.retraining.gate)
min_value = 0.0                      # a minimum of the metric beyond the statistical floors
improvement_threshold = 0.02         # the error 1 - metric at least 2% below production's
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import ConfigError, did_you_mean
from training.evaluation.threshold_rules import parse_rule
from training.features.dropped_fields import check_dropped
from training.layers.registry import default_layers, get_layer, layer_names
from training.pipeline.tuned import PARAMS_KEY, tuned_values
from training.pipeline.checks import (
    TRAIN_KEYS, build, canonical_layers, check_types, known, layer_settings, one_of, source, typed,
)
from training.pipeline.config_keys import refuse_unknown_keys
from training.sources.config import DataSource
from training.sources.recorded import SETTINGS_KEY, reading_settings

STRATEGIES = ("random", "stratified", "temporal", "group")
GATE_METRICS = ("pr_auc", "roc_auc")
DEFAULT_THRESHOLD = "quantile:0.999"  # 0.1% of benign units alert


@dataclass(frozen=True)
class SplitConfig:
    """How units are cut into train, val and test.

    `train_until`: a grace period for "temporal": a time (ISO 8601 text, UTC when it names
    no zone) or a leading share of the events in (0, 1); the units before it are train and val
    (in the train : val ratio), every later unit is test. The pipeline cuts every layer at the
    same times, on the layers' window boundaries: a time inside a window ends with it (a note
    says so). Kept as given; `grace` is the form the split takes.
    """

    strategy: str = "temporal"  # honest by default: train on the past, test on the future
    train_ratio: float = 0.6
    val_ratio: float = 0.2
    test_ratio: float = 0.2
    train_until: str | float | None = None

    def __post_init__(self) -> None:
        one_of("split.strategy", self.strategy, STRATEGIES)
        ratios = self.ratios
        if min(ratios) <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
            raise ConfigError(f"split ratios must be > 0 and sum to 1, got {ratios}")
        if self.train_until is not None:
            if self.strategy != "temporal":
                raise ConfigError(f"split.train_until needs strategy temporal, got "
                                  f"{self.strategy!r}")
            parse_train_until(self.train_until)  # refuses a bad value here

    @property
    def ratios(self) -> tuple[float, float, float]:
        return (self.train_ratio, self.val_ratio, self.test_ratio)

    @property
    def grace(self) -> np.datetime64 | float | None:
        """`train_until` as the split takes it: datetime64[us] (UTC) or a share in (0, 1)."""
        return parse_train_until(self.train_until)


def parse_train_until(value: str | float | None) -> np.datetime64 | float | None:
    """"2024-06-01T12:00:00Z" -> datetime64[us] UTC; "0.5" or 0.5 -> 0.5; None -> None.

    Raises:
        ConfigError: neither a share in (0, 1) nor an ISO 8601 time.
    """
    if value is None:
        return None
    text = str(value).strip()
    try:
        share = float(text)
    except ValueError:
        share = None
    if share is not None:
        if not 0.0 < share < 1.0:
            raise ConfigError(f"train_until as a share of the units must be in (0, 1), got "
                              f"{value!r}; or give a time, e.g. 2024-06-01T12:00:00Z")
        return share
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"train_until must be an ISO 8601 time (2024-06-01T12:00:00Z) or a "
                          f"share of the units in (0, 1), got {value!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return np.datetime64(moment, "us")


@dataclass(frozen=True)
class LayerSettings:
    """Training settings of one layer (None: the layer's own default); `model` holds the
    model's own arguments (hidden_dim, latent_dim, ...), and `detector` when the layer trains
    another detector than its own (`Layer.build_detector`); `features` the featurizer's
    options (`Layer.featurizer_options`, e.g. layer 3's entity); `params_from` where tuned
    hyperparameters came from (`training.pipeline.tuned`), recorded with the model."""

    epochs: int = 20
    batch_size: int | None = None
    learning_rate: float | None = None
    benign_only: bool = False
    keep_unknown: bool = False
    threshold: str = DEFAULT_THRESHOLD
    model: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)  # the featurizer's options
    params_from: str | None = None

    def __post_init__(self) -> None:
        for name in ("benign_only", "keep_unknown"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"train.{name} must be true or false, got "
                                  f"{getattr(self, name)!r}")
        if self.keep_unknown and not self.benign_only:
            raise ConfigError("train.keep_unknown keeps unknown units beside the benign ones; it "
                              "needs train.benign_only = true (--benign-only)")
        object.__setattr__(self, "threshold", str(parse_rule(self.threshold)))
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                raise ConfigError(f"train.{name} must be an integer >= 1, got {value!r}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"train.learning_rate must be > 0, got {self.learning_rate!r}")

    def trainer_changes(self) -> dict[str, Any]:
        """The TrainingConfig fields this sets."""
        changes = {"num_epochs": self.epochs, "batch_size": self.batch_size,
                   "learning_rate": self.learning_rate, "threshold_rule": self.threshold,
                   "params_from": self.params_from}
        return {k: v for k, v in changes.items() if v is not None}

    @property
    def training_filter(self) -> str:
        """The units training learns from, in words."""
        if not self.benign_only:
            return "every training unit, assumed benign (labels not used)"
        return "benign (is_threat 0)" + (" and unknown" if self.keep_unknown else "") + " units"


@dataclass(frozen=True)
class GateConfig:
    metric: str = "pr_auc"
    min_value: float = 0.0
    improvement_threshold: float = 0.02

    def __post_init__(self) -> None:
        one_of("gate.metric", self.metric, GATE_METRICS)


@dataclass(frozen=True)
class PipelineConfig:
    """The whole run (see the module docstring); `test_sources`, when given, are evaluated on
    instead of a test part of `sources`."""

    sources: tuple[DataSource, ...]
    workdir: Path = Path("maximus-run")
    layers: tuple[str, ...] = field(default_factory=lambda: tuple(default_layers()))
    seed: int = 42
    max_events: int | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    train: dict[str, LayerSettings] = field(
        default_factory=dict)
    gate: GateConfig = field(default_factory=GateConfig)
    test_sources: tuple[DataSource, ...] = ()
    drop_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "drop_fields", check_dropped(self.drop_fields))
        object.__setattr__(self, "workdir", Path(self.workdir))  # text from Python, too
        if not self.sources:
            raise ConfigError("the pipeline needs at least one source (--source or [[sources]])")
        if not self.layers:
            raise ConfigError(f"layers must name at least one of {', '.join(layer_names())}")
        names = tuple(get_layer(name).name for name in self.layers)  # ConfigError if unknown
        object.__setattr__(self, "layers", names)
        # every layer has its settings (the defaults unless the config gave others)
        object.__setattr__(self, "train", {name: self.train.get(name, LayerSettings())
                                           for name in names})
        for name in names:
            detector = self.train[name].model.get("detector")
            valid = get_layer(name).detector_names()
            if detector is not None and detector not in valid:
                raise ConfigError(f"train.{name}.detector must be one of {', '.join(valid)}, "
                                  f"got {detector!r}" + did_you_mean(str(detector), valid))

    @property
    def source_settings(self) -> dict[str, Any]:
        """How the training sources were read beyond their types' own reading, as a model's
        registry details record it (`training.sources.recorded`): {} when read as they are."""
        settings = reading_settings(self.sources)
        return {SETTINGS_KEY: settings} if settings else {}

    def with_training(self, **changes: Any) -> PipelineConfig:
        """The same config with `changes` (epochs, batch_size, learning_rate, benign_only,
        keep_unknown, threshold) for every layer."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, train={layer: replace(t, **changes) for layer, t in self.train.items()})


def load_config(path: str | Path, *, defaults: dict[str, Any] | None = None,
                params: dict[str, str] | None = None, **overrides: Any) -> PipelineConfig:
    """Read a pipeline TOML file (see the module docstring); `overrides` replace its top-level
    values (workdir, layers, seed, max_events, sources), `defaults` stand in for the ones it
    does not set, `params` ({layer: best_params.json}, `--params`) replace its tables' params.

    Raises:
        ConfigError: unreadable TOML, unknown keys (every one, named with its table, in one
            error), a value of the wrong type or out of range (named with the file and its
            key), each with the closest valid key or choice where one is close.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:  # TOML is UTF-8 text
        raise ConfigError(f"{path}: cannot read the pipeline config: it is not UTF-8 text "
                          f"(byte {exc.start}); give a TOML file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the pipeline config: {exc}") from exc
    try:
        return config_from_dict(data, str(path), defaults=defaults, params=params, **overrides)
    except ConfigError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: {exc}") from None  # a rule of the whole run (train.epochs)


def config_from_dict(data: dict[str, Any], where: str = "config", *,
                     defaults: dict[str, Any] | None = None,
                     params: dict[str, str] | None = None, **overrides: Any) -> PipelineConfig:
    """A `PipelineConfig` from the TOML file's content (see `load_config`)."""
    data = {**(defaults or {}), **data, **{k: v for k, v in overrides.items() if v is not None}}
    refuse_unknown_keys(data, where, [f.name for f in fields(SplitConfig)],
                        [f.name for f in fields(GateConfig)])
    typed(where, "drop_fields", data.get("drop_fields", []), (list, tuple),
          "a list of field names")
    typed(where, "workdir", data.get("workdir", "maximus-run"), (str, Path), "a path")
    typed(where, "seed", data.get("seed", 42), int, "an integer")
    if data.get("max_events") is not None:
        typed(where, "max_events", data["max_events"], int, "an integer >= 1")
    typed(where, "layers", data.get("layers", []), (list, tuple), "a list of layer names")
    for key in ("sources", "test_sources"):
        typed(where, key, data.get(key, []), (list, tuple), f"an array of tables ([[{key}]])")
    for table in ("split", "train", "gate"):
        typed(where, table, data.get(table, {}), dict, f"a table ([{table}])")
    sources, test_sources = ([s if isinstance(s, DataSource) else
                              source(s, f"{where} [[{key}]] #{i + 1}")
                              for i, s in enumerate(data.get(key, []))]
                             for key in ("sources", "test_sources"))
    train = data.get("train", {})
    defaults = {k: v for k, v in train.items() if not isinstance(v, dict)}
    if PARAMS_KEY in defaults:
        raise ConfigError(f"{where} [train]: params names one layer's tuned hyperparameters; "
                          "put it in that layer's table ([train.<layer>] params = FILE)")
    known(defaults, set(TRAIN_KEYS), f"{where} [train]")
    check_types(defaults, TRAIN_KEYS, f"{where} [train]")
    per_layer = {}
    for key, values in train.items():
        if isinstance(values, dict):
            try:
                layer = get_layer(key)
            except ConfigError as exc:
                raise ConfigError(f"{where} [train.{key}]: {exc}") from None
            layer_settings(layer, values, f"{where} [train.{key}]")
            per_layer[layer.name] = values
    for key, path in (params or {}).items():  # --params LAYER=FILE: over the table's
        name = get_layer(key).name
        per_layer[name] = {**per_layer.get(name, {}), PARAMS_KEY: str(path)}
    layers = canonical_layers(data.get("layers", default_layers()), f"{where}: layers")
    untrained = sorted({get_layer(key).name for key in params or {}} - set(layers))
    if untrained:
        raise ConfigError(f"params names {', '.join(untrained)}, which this run does not "
                          f"train (layers: {', '.join(layers)})")
    return PipelineConfig(
        sources=tuple(sources),
        workdir=Path(data.get("workdir", "maximus-run")),
        layers=tuple(layers),
        seed=data.get("seed", 42),
        max_events=data.get("max_events"),
        split=build(SplitConfig, data.get("split", {}), f"{where} [split]", "split"),
        train={name: _train(tuned_values(defaults, per_layer.get(name, {}), get_layer(name),
                                         f"{where} [train.{name}]"), get_layer(name))
               for name in layers},
        gate=build(GateConfig, data.get("gate", {}), f"{where} [gate]", "gate"),
        test_sources=tuple(test_sources),
        drop_fields=tuple(data.get("drop_fields", ())),
    )


def _train(values: dict[str, Any], layer: type) -> LayerSettings:
    own = {f.name for f in fields(LayerSettings)} - {"model", "features"}
    featurizer = set(layer.featurizer_options)
    return LayerSettings(**{k: v for k, v in values.items() if k in own},
                         model={k: v for k, v in values.items()
                                if k not in own and k not in featurizer},
                         features={k: v for k, v in values.items() if k in featurizer})


