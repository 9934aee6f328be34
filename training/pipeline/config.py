"""What `maximus-train pipeline` runs: one TOML file, or flags that fill the same dataclasses.

```toml
workdir = "maximus-run"              # everything the run writes goes under it
layers = ["layer1", "layer2", "layer3"]
seed = 42

[[sources]]                          # as many as needed; same fields as DataSource
name = "zeek"
type = "zeek_logs"                   # a DataSourceType value or a CLI alias (zeek, csv, ...)
path = "/var/log/zeek"               # or connection_params = { ... }
# field_map = { source_ip = "src" }  label_map = { "normal" = 0 }  default_label = "benign"

[split]
strategy = "temporal"                # random, stratified, temporal, group
train_ratio = 0.6
val_ratio = 0.2
test_ratio = 0.2

[train]                              # defaults of every layer (batch size and learning rate
epochs = 20                          # default to each layer's own) ...

[train.layer2]                       # ... and per-layer changes; other keys are model arguments
epochs = 30
hidden_dim = 32

[train.layer3]
detector = "iforest"                 # another detector: the layer's own (vae, gnn, tcn) or a
n_estimators = 200                   # row detector (ecod, knn, iforest, autoencoder), with its
inputs = "target"                    # arguments and the row it reads (see Layer.build_detector)

[gate]                               # promote a new model past these only
metric = "pr_auc"                    # or "roc_auc" (see training.retraining.gate)
min_value = 0.0                      # a minimum of the metric beyond the statistical floors
improvement_threshold = 0.02         # the error 1 - metric at least 2% below production's
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from training.errors import ConfigError, NotSupportedError
from training.layers.base import default_layers, get_layer, layer_names
from training.sources.config import DataSource

STRATEGIES = ("random", "stratified", "temporal", "group")
GATE_METRICS = ("pr_auc", "roc_auc")


@dataclass(frozen=True)
class SplitConfig:
    strategy: str = "temporal"  # honest by default: train on the past, test on the future
    train_ratio: float = 0.6
    val_ratio: float = 0.2
    test_ratio: float = 0.2

    def __post_init__(self) -> None:
        _one_of("split.strategy", self.strategy, STRATEGIES)
        ratios = self.ratios
        if min(ratios) <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
            raise ConfigError(f"split ratios must be > 0 and sum to 1, got {ratios}")

    @property
    def ratios(self) -> tuple[float, float, float]:
        return (self.train_ratio, self.val_ratio, self.test_ratio)


@dataclass(frozen=True)
class LayerSettings:
    """Training settings of one layer (None: the layer's own default); `model` holds the
    model's own arguments (hidden_dim, latent_dim, ...), and `detector` when the layer trains
    another detector than its own (`Layer.build_detector`)."""

    epochs: int = 20
    batch_size: int | None = None
    learning_rate: float | None = None
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
                   "learning_rate": self.learning_rate}
        return {k: v for k, v in changes.items() if v is not None}


@dataclass(frozen=True)
class GateConfig:
    metric: str = "pr_auc"
    min_value: float = 0.0
    improvement_threshold: float = 0.02

    def __post_init__(self) -> None:
        _one_of("gate.metric", self.metric, GATE_METRICS)


@dataclass(frozen=True)
class PipelineConfig:
    sources: tuple[DataSource, ...]
    workdir: Path = Path("maximus-run")
    layers: tuple[str, ...] = field(default_factory=lambda: tuple(default_layers()))
    seed: int = 42
    max_events: int | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    train: dict[str, LayerSettings] = field(
        default_factory=dict)
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
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
                                  f"got {detector!r}")

    def with_training(self, **changes: Any) -> PipelineConfig:
        """The same config with `changes` (epochs, batch_size, learning_rate) for every layer."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, train={layer: replace(t, **changes) for layer, t in self.train.items()})


def load_config(path: str | Path, *, defaults: dict[str, Any] | None = None,
                **overrides: Any) -> PipelineConfig:
    """Read a pipeline TOML file (see the module docstring); `overrides` replace its top-level
    values (workdir, layers, seed, max_events, sources), `defaults` stand in for the ones it
    does not set.

    Raises:
        ConfigError: unreadable TOML, an unknown key (named with its table), a value of the
            wrong type or out of range (named with its key).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the pipeline config: {exc}") from exc
    return config_from_dict(data, str(path), defaults=defaults, **overrides)


def config_from_dict(data: dict[str, Any], where: str = "config", *,
                     defaults: dict[str, Any] | None = None, **overrides: Any) -> PipelineConfig:
    """A `PipelineConfig` from the TOML file's content (see `load_config`)."""
    data = {**(defaults or {}), **data, **{k: v for k, v in overrides.items() if v is not None}}
    _known(data, {"workdir", "layers", "seed", "max_events", "sources", "split", "train", "gate"},
           where)
    _typed(where, "workdir", data.get("workdir", "maximus-run"), (str, Path), "a path")
    _typed(where, "seed", data.get("seed", 42), int, "an integer")
    if data.get("max_events") is not None:
        _typed(where, "max_events", data["max_events"], int, "an integer >= 1")
    _typed(where, "layers", data.get("layers", []), (list, tuple), "a list of layer names")
    _typed(where, "sources", data.get("sources", []), (list, tuple), "an array of tables "
                                                                     "([[sources]])")
    for table in ("split", "train", "gate"):
        _typed(where, table, data.get(table, {}), dict, f"a table ([{table}])")
    sources = data.get("sources", [])
    sources = [s if isinstance(s, DataSource) else _source(s, f"{where} [[sources]] #{i + 1}")
               for i, s in enumerate(sources)]
    train = data.get("train", {})
    defaults = {k: v for k, v in train.items() if not isinstance(v, dict)}
    _known(defaults, set(TRAIN_KEYS), f"{where} [train]")
    _check_types(defaults, TRAIN_KEYS, f"{where} [train]")
    per_layer = {}
    for key, values in train.items():
        if isinstance(values, dict):
            try:
                layer = get_layer(key)
            except ConfigError as exc:
                raise ConfigError(f"{where} [train.{key}]: {exc}") from None
            _layer_settings(layer, values, f"{where} [train.{key}]")
            per_layer[layer.name] = values
    layers = _layer_names(data.get("layers", default_layers()), f"{where}: layers")
    return PipelineConfig(
        sources=tuple(sources),
        workdir=Path(data.get("workdir", "maximus-run")),
        layers=tuple(layers),
        seed=data.get("seed", 42),
        max_events=data.get("max_events"),
        split=_build(SplitConfig, data.get("split", {}), f"{where} [split]"),
        train={name: _train({**defaults, **per_layer.get(name, {})}) for name in layers},
        gate=_build(GateConfig, data.get("gate", {}), f"{where} [gate]"),
    )


# The keys of [train] and [train.<layer>] besides a layer's model arguments, with their types.
TRAIN_KEYS = {"epochs": (int, "an integer"), "batch_size": (int, "an integer"),
              "learning_rate": ((int, float), "a number")}


def _layer_settings(layer: type, values: dict[str, Any], where: str) -> None:
    """A [train.<layer>] table: its training keys, and the layer's model arguments
    (`Layer.model_options`), each of the type and choices the command line accepts."""
    options = layer.model_options
    _known(values, set(TRAIN_KEYS) | set(options), where)
    _check_types({k: v for k, v in values.items() if k in TRAIN_KEYS}, TRAIN_KEYS, where)
    for name, value in values.items():
        if name in options:
            _model_value(name, value, options[name], where)


def _model_value(name: str, value: Any, option: dict[str, Any], where: str) -> None:
    kind = option.get("type")
    if option.get("action") is not None:  # a --flag/--no-flag switch
        kind, rule = bool, "true or false"
    else:
        rule = {int: "an integer", float: "a number"}.get(kind, "a string")
    values = value
    if option.get("nargs") in ("+", "*"):
        if not isinstance(value, list) or (option["nargs"] == "+" and not value):
            raise ConfigError(f"{where}: {name} must be a list of {rule.split(' ', 1)[1]}s, "
                              f"got {value!r}")
        rule = f"a list of {rule.split(' ', 1)[1]}s"
    else:
        values = [value]
    for item in values:
        ok = {bool: lambda v: isinstance(v, bool),
              int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
              }.get(kind, lambda v: isinstance(v, str))(item)
        if not ok:
            raise ConfigError(f"{where}: {name} must be {rule}, got {value!r}")
        if option.get("choices") and item not in option["choices"]:
            raise ConfigError(f"{where}: {name} must be one of "
                              f"{', '.join(map(str, option['choices']))}, got {item!r}")


def _check_types(values: dict[str, Any], kinds: dict[str, tuple[Any, str]], where: str) -> None:
    for name, value in values.items():
        _typed(where, name, value, *kinds[name])


def _typed(where: str, name: str, value: Any, kind: Any, rule: str) -> None:
    """Refuse `value` unless it is a `kind` (a bool is not a number)."""
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ConfigError(f"{where}: {name} must be {rule}, got {value!r}")


def _one_of(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{name} must be one of {', '.join(valid)}, got {value!r}")


def _layer_names(names: Any, where: str) -> list[str]:
    """Canonical names of the layers `names` lists (any of their names)."""
    try:
        return [get_layer(name).name for name in names]
    except (ConfigError, NotSupportedError) as exc:
        raise ConfigError(f"{where} must name layers of {', '.join(layer_names())}: "
                          f"{exc}") from None


def _source(entry: dict[str, Any], where: str) -> DataSource:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table with type and path, got {entry!r}")
    _known(entry, {"name", "type", "path", "connection_params", "field_map", "label_map",
                   "default_label"}, where)
    if "type" not in entry:
        raise ConfigError(f"{where}: needs type = \"zeek_logs\" (or json_file, csv_file, ...)")
    params = dict(entry.get("connection_params", {}))
    if "path" in entry:
        params["path"] = entry["path"]
    try:
        return DataSource(entry.get("name", entry["type"]), entry["type"], params,
                          field_map=entry.get("field_map"), label_map=entry.get("label_map"),
                          default_label=entry.get("default_label"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _train(values: dict[str, Any]) -> LayerSettings:
    own = {f.name for f in fields(LayerSettings)} - {"model"}
    return LayerSettings(**{k: v for k, v in values.items() if k in own},
                       model={k: v for k, v in values.items() if k not in own})


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """`cls(**values)`, each value of its field's type (the type of the field's default)."""
    known = {f.name: f for f in fields(cls)}
    _known(values, set(known), where)
    for name, value in values.items():
        if isinstance(known[name].default, str):
            _typed(where, name, value, str, "a string")
        else:
            _typed(where, name, value, (int, float), "a number")
    return cls(**values)


def _known(values: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")
