"""Tuned hyperparameters, read back: a `tune` study's best_params.json as one layer's training
settings and detector arguments (`train --params FILE`, `pipeline --params LAYER=FILE`,
`[train.<layer>] params = FILE`).

    tuned = read_params("training/tuning/layer1_vae_tuning/best_params.json", Layer1())
    tuned.training    # {"learning_rate": 0.0012, "batch_size": 64}
    tuned.model_args  # {"hidden_dim": 128, "latent_dim": 32, "dropout": 0.21, "beta": 0.004}
    tuned.origin      # "best trial 7 of tuning study layer1_vae_tuning (.../best_params.json)"

A configuration becomes settings one way only, the way `tune` trains a trial and
`tune --train-best` its best one (`split_params`): the layer's search space
(`Layer.search_space`) read at the given values, so layer 3's `channels` and `num_blocks`
become the widths of its blocks exactly as they did in the trial.

The file is best_params.json as `tune` writes it (its `params`; its study's objective names
the layer it tuned), the summary `tune` prints (its `best_params`) or one JSON object of
parameters. It holds every parameter of the layer's
search space, and may add other arguments of the layer's own detector
(`Layer.model_options`); any other key is refused, naming the allowed ones, and a file of
another layer is refused naming both. Whoever applies it lets the values set explicitly (a
flag, a key of the same TOML table) win; `origin` is recorded as the model's
`TrainingConfig.params_from`, so its sidecar, registry version and MLflow run say where its
hyperparameters came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import ConfigError
from training.layers.base import Layer
from training.layers.registry import get_layer, layer_names

__all__ = ["TRAINING_KEYS", "TunedParams", "origin_text", "read_params", "split_params"]

TRAINING_KEYS = ("learning_rate", "batch_size")  # the optimizer's; the rest are the model's


class _Given:
    """The trial-like object a search space is read at: each `suggest_*` returns the value
    `params` gives its name, checked against the kind of value the space suggests there."""

    def __init__(self, params: Mapping[str, Any], where: str) -> None:
        self.params, self.where = dict(params), where
        self.missing: list[str] = []

    def _value(self, name: str, kind: type | tuple[type, ...]) -> Any:
        if name not in self.params:
            self.missing.append(name)
            return 1  # a stand-in that keeps the space computable; refused in `read`
        value = self.params[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            kinds = set(kind) if isinstance(kind, tuple) else {kind}
            rule = ("an integer" if kinds == {int} else "a string" if kinds == {str}
                    else "a number" if kinds <= {int, float} else "one of the space's values")
            raise ConfigError(f"{self.where}: {name} must be {rule}, got {value!r}")
        return value

    def suggest_float(self, name: str, *_: Any, **__: Any) -> float:
        return float(self._value(name, (int, float)))

    def suggest_int(self, name: str, *_: Any, **__: Any) -> int:
        return self._value(name, int)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        kinds = tuple({type(choice) for choice in choices})
        return self._value(name, kinds if kinds != (float,) else (int, float))

    def read(self, layer: Layer) -> dict[str, Any]:
        """The layer's search space at these values."""
        sampled = layer.search_space(self)
        if self.missing:
            raise ConfigError(f"{self.where}: no value for {', '.join(self.missing)} of "
                              f"{layer.name}'s search space ({', '.join(space_names(layer))}); "
                              f"a best_params.json of `tune --layer {layer.name}` holds them "
                              "all (a flag sets one value)")
        return sampled


def space_names(layer: Layer) -> list[str]:
    """The parameters of `layer`'s search space, in the order it suggests them."""
    names = _Names()
    layer.search_space(names)
    return names.seen


class _Names:
    """Records the names a search space suggests (values: the first choice, or the low end)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def suggest_float(self, name: str, low: float, *_: Any, **__: Any) -> float:
        self.seen.append(name)
        return low

    def suggest_int(self, name: str, low: int, *_: Any, **__: Any) -> int:
        self.seen.append(name)
        return low

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.seen.append(name)
        return choices[0]


def split_params(layer: Layer, params: Mapping[str, Any], where: str = "params"
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(optimizer settings, the detector's own arguments) of a configuration of `layer`'s
    search space (a trial's parameters, a best_params.json's): the one way a configuration
    becomes settings (see the module docstring).

    Raises:
        ConfigError: a parameter of the space is missing or of the wrong kind.
    """
    sampled = _Given(params, where).read(layer)
    training = {k: sampled.pop(k) for k in TRAINING_KEYS if k in sampled}
    return training, sampled


@dataclass(frozen=True)
class TunedParams:
    """One layer's tuned hyperparameters (see the module docstring).

    Attributes:
        layer: the layer's canonical name.
        params: the parameters as the file holds them.
        training: the optimizer's settings (TrainingConfig fields: learning_rate, batch_size).
        model_args: the layer's own detector's arguments.
        origin: where they come from, in words (recorded as `TrainingConfig.params_from`).
    """

    layer: str
    params: dict[str, Any]
    training: dict[str, Any]
    model_args: dict[str, Any]
    origin: str
    values: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", {**self.training, **self.model_args})

    def unless(self, given: set[str] | frozenset[str]) -> dict[str, Any]:
        """The values whose names are not among `given` (those set explicitly win)."""
        return {k: v for k, v in self.values.items() if k not in given}


def origin_text(path: str | Path, study: str | None = None, trial: int | None = None) -> str:
    """"best trial 7 of tuning study NAME (PATH)", or the path alone without a study."""
    if study is None:
        return str(path)
    best = "best trial" if trial is None else f"best trial {trial}"
    return f"{best} of tuning study {study} ({path})"


def read_params(path: str | Path, layer: Layer) -> TunedParams:
    """`layer`'s hyperparameters from a best_params.json (or a JSON object of parameters).

    Raises:
        ConfigError: an unreadable file, a file of another layer, a study without a complete
            trial, an unknown key (the message lists the allowed ones), a missing parameter
            of the search space or a value of the wrong kind; each names the file.
    """
    where = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read the tuned hyperparameters: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must hold a JSON object (a best_params.json of `tune`), "
                          f"got {type(data).__name__}")
    key = next((k for k in ("params", "best_params") if k in data), None)  # file, summary
    study = None if key is None else data.get("study_name")
    params = data if key is None else data[key]
    if params is None:
        raise ConfigError(f"{where}: study {study!r} has no complete trial yet; run more "
                          "trials first")
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: params must be a JSON object, got {params!r}")
    tuned_layer = _tuned_layer(data, params)
    if tuned_layer is not None and tuned_layer != layer.name:
        raise ConfigError(f"{where} holds {tuned_layer}'s hyperparameters"
                          f"{'' if study is None else f' (study {study})'}, not "
                          f"{layer.name}'s; give a best_params.json of `tune --layer "
                          f"{layer.name}`")
    allowed = set(space_names(layer)) | set(layer.model_options) | set(TRAINING_KEYS)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown hyperparameter(s) {', '.join(unknown)} for "
                          f"{layer.name}; allowed: {', '.join(sorted(allowed))}")
    training, model_args = split_params(layer, params, where)
    extra = {k: v for k, v in params.items() if k not in training and k not in space_names(layer)}
    return TunedParams(layer.name, dict(params), training, {**model_args, **extra},
                       origin_text(path, study, data.get("best_trial")))


def _tuned_layer(data: dict[str, Any], params: dict[str, Any]) -> str | None:
    """The layer a file's parameters are for: its study's objective says so; a plain object
    of parameters is another layer's when its keys are exactly that layer's search space."""
    objective = (data.get("study_attrs") or {}).get("objective") or {}
    if objective.get("layer") is not None:
        return get_layer(str(objective["layer"])).name
    for name in layer_names():
        other = get_layer(name)()
        if set(params) == set(space_names(other)):
            return other.name
    return None
