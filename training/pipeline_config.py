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

[gate]                               # promote a new model past these only
metric = "pr_auc"                    # or "roc_auc"; without test labels: validation loss
min_value = 0.0
improvement_threshold = 0.02
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from training.errors import ConfigError

LAYERS = ("layer1", "layer2", "layer3")
STRATEGIES = ("random", "stratified", "temporal", "group")
GATE_METRICS = ("pr_auc", "roc_auc")


@dataclass(frozen=True)
class SourceConfig:
    """One input, as `DataSource` takes it."""

    name: str
    type: str
    connection_params: dict[str, Any]
    field_map: dict[str, Any] | None = None
    label_map: dict[str, int] | None = None
    default_label: str | None = None


@dataclass(frozen=True)
class SplitConfig:
    strategy: str = "temporal"  # honest by default: train on the past, test on the future
    train_ratio: float = 0.6
    val_ratio: float = 0.2
    test_ratio: float = 0.2

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"split.strategy must be one of {', '.join(STRATEGIES)}, "
                              f"got {self.strategy!r}")
        ratios = (self.train_ratio, self.val_ratio, self.test_ratio)
        if min(ratios) <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
            raise ConfigError(f"split ratios must be > 0 and sum to 1, got {ratios}")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings of one layer (None: the layer's own default); `model` holds the
    model's own arguments (hidden_dim, latent_dim, ...)."""

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
        if self.metric not in GATE_METRICS:
            raise ConfigError(f"gate.metric must be one of {', '.join(GATE_METRICS)}, "
                              f"got {self.metric!r}")


@dataclass(frozen=True)
class PipelineConfig:
    sources: tuple[SourceConfig, ...]
    workdir: Path = Path("maximus-run")
    layers: tuple[str, ...] = LAYERS
    seed: int = 42
    max_events: int | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    train: dict[str, TrainConfig] = field(
        default_factory=lambda: {layer: TrainConfig() for layer in LAYERS})
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("the pipeline needs at least one source (--source or [[sources]])")
        unknown = [layer for layer in self.layers if layer not in LAYERS]
        if unknown or not self.layers:
            raise ConfigError(f"layers must be a non-empty subset of {', '.join(LAYERS)}, "
                              f"got {list(self.layers)}")

    def with_training(self, **changes: Any) -> PipelineConfig:
        """The same config with `changes` (epochs, batch_size, learning_rate) for every layer."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, train={layer: replace(t, **changes) for layer, t in self.train.items()})


def load_config(path: str | Path, **overrides: Any) -> PipelineConfig:
    """Read a pipeline TOML file (see the module docstring); `overrides` replace its top-level
    values (workdir, layers, seed, max_events, sources).

    Raises:
        ConfigError: unreadable TOML, an unknown key (named with its table), a bad value.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the pipeline config: {exc}") from exc
    return config_from_dict(data, str(path), **overrides)


def config_from_dict(data: dict[str, Any], where: str = "config", **overrides: Any) -> PipelineConfig:
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    _known(data, {"workdir", "layers", "seed", "max_events", "sources", "split", "train", "gate"},
           where)
    sources = data.get("sources", [])
    if sources and not isinstance(sources[0], SourceConfig):
        sources = [_source(s, f"{where} [[sources]] #{i + 1}") for i, s in enumerate(sources)]
    train = data.get("train", {})
    defaults = {k: v for k, v in train.items() if not isinstance(v, dict)}
    _known(train, {"epochs", "batch_size", "learning_rate", *LAYERS}, f"{where} [train]")
    return PipelineConfig(
        sources=tuple(sources),
        workdir=Path(data.get("workdir", "maximus-run")),
        layers=tuple(data.get("layers", LAYERS)),
        seed=int(data.get("seed", 42)),
        max_events=data.get("max_events"),
        split=_build(SplitConfig, data.get("split", {}), f"{where} [split]"),
        train={layer: _train({**defaults, **train.get(layer, {})}) for layer in LAYERS},
        gate=_build(GateConfig, data.get("gate", {}), f"{where} [gate]"),
    )


def _source(entry: dict[str, Any], where: str) -> SourceConfig:
    _known(entry, {"name", "type", "path", "connection_params", "field_map", "label_map",
                   "default_label"}, where)
    if "type" not in entry:
        raise ConfigError(f"{where}: needs type = \"zeek_logs\" (or json_file, csv_file, ...)")
    params = dict(entry.get("connection_params", {}))
    if "path" in entry:
        params["path"] = entry["path"]
    return SourceConfig(entry.get("name", entry["type"]), entry["type"], params,
                        entry.get("field_map"), entry.get("label_map"), entry.get("default_label"))


def _train(values: dict[str, Any]) -> TrainConfig:
    own = {f.name for f in fields(TrainConfig)} - {"model"}
    return TrainConfig(**{k: v for k, v in values.items() if k in own},
                       model={k: v for k, v in values.items() if k not in own})


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    _known(values, {f.name for f in fields(cls)}, where)
    return cls(**values)


def _known(values: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")
