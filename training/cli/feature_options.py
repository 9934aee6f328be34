"""What the layers see of the events, from the command line: `--drop-field` and each layer's
featurizer options (`--<layer>-<option>`, e.g. the windows' entity), for `pipeline`, `demo`
and `preprocess`. A model records both in its FeatureSpec, so `score`, `evaluate` and
`retrain` need no flag: they featurize as the model was trained.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from training.errors import ConfigError
from training.layers.featurizer_options import FEATURIZER_OPTIONS

Option = Callable[..., None]


def _dest(layer: str, name: str) -> str:
    return f"{layer}_{name}"


def add_feature_options(parser: argparse.ArgumentParser, option: Option) -> None:
    """Add `--drop-field` and every layer's featurizer options."""
    option(parser, "--drop-field", action="append", metavar="FIELD[,FIELD...]",
           help="leave this event field out of every layer's features, e.g. a field that gives "
                "the labels away (validation warns of one); repeatable. The models record it "
                "and score without it (default: the config's drop_fields, else none)")
    for layer, options in FEATURIZER_OPTIONS.items():
        for name, spec in options.items():
            choices = spec.get("choices")
            option(parser, f"--{layer}-{name}".replace("_", "-"), dest=_dest(layer, name),
                   type=spec.get("type", str), choices=choices,
                   help=f"{layer}: {spec.get('help', name)} (default: the config's "
                        f"[train.{layer}] {name}, else {spec.get('default')})")


def dropped_fields(args: argparse.Namespace) -> list[str]:
    """The fields `--drop-field` names (each flag one or more, comma-separated)."""
    return [name.strip() for value in getattr(args, "drop_field", None) or []
            for name in value.split(",") if name.strip()]


def featurizer_changes(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """{layer: {option: value}} of the featurizer flags given."""
    changes: dict[str, dict[str, Any]] = {}
    for layer, options in FEATURIZER_OPTIONS.items():
        for name in options:
            value = getattr(args, _dest(layer, name), None)
            if value is not None:
                changes.setdefault(layer, {})[name] = value
    return changes


def with_feature_flags(config: Any, args: argparse.Namespace) -> Any:
    """The pipeline config with the flags' dropped fields added and featurizer options set
    (a layer the run does not train ignores its options)."""
    changes = featurizer_changes(args)
    train = {name: replace(settings, features={**settings.features, **changes[name]})
             if name in changes else settings for name, settings in config.train.items()}
    return replace(config, drop_fields=(*config.drop_fields, *dropped_fields(args)),
                   train=train)


def refuse_with_model(args: argparse.Namespace) -> None:
    """Raise ConfigError when feature flags come with `preprocess --model`, whose model's own
    transform decides what is dropped and how."""
    given = (["--drop-field"] if dropped_fields(args) else []) + [
        f"--{layer}-{name}".replace("_", "-")
        for layer, options in featurizer_changes(args).items() for name in options]
    if given:
        raise ConfigError(f"{', '.join(given)} cannot change a model's transform: with --model "
                          "each model featurizes as it was trained (its FeatureSpec); leave "
                          "them out")


def preprocess_layers(args: argparse.Namespace) -> list[Any]:
    """`preprocess --layers`' layers, each set by the flags."""
    from training.layers.configured import configured_layer

    changes, drop = featurizer_changes(args), dropped_fields(args)
    return [configured_layer(name, options=changes.get(name), drop_fields=drop)
            for name in args.layers]
