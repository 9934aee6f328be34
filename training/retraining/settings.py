"""How a challenger is trained: like the production model it challenges.

A challenger trained or thresholded otherwise than the champion is not compared like with
like: with the trainer's "auto" threshold (the benign 0.99-quantile) where the pipeline's
champion used "quantile:0.999", it alerts ten times as often by construction. So a challenger
takes the training settings the production model recorded (its sidecar's `training_config`:
threshold rule, batch size, learning rate, epochs, optimizer, ...); the layer's own settings with
`RETRAINING_CHANGES` only when there is no production model or it recorded none. The caller's
changes (`RetrainingConfig.training_changes`, the `retrain` flags) win over either.

A challenger is also built like the champion: the same detector with the same architecture
(hidden and latent sizes, layers, ... as `train --hidden_dim ...` or `tune` chose them), from the
constructor arguments its sidecar records (`recorded_model_args`), with the widths taken from the
new units; only with `train_layer` (a caller's own train function builds its own model).

    config, model_args, used = challenger_settings(layer, champion, train_units, given=None,
                                                   changes={"threshold_rule": "quantile:0.99"})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import torch

from training.detectors.rows import RowDetector
from training.errors import ConfigError
from training.layers.base import Layer
from training.registry.metadata import sidecar_hyperparameters
from training.registry.registry import RegisteredModel
from training.trainer.config import TrainingConfig

# Without a production model to follow, retraining changes the layer's TrainingConfig so:
# seeded, batches of 256 (it runs on at least min_new_samples units: 8x fewer steps per epoch
# than 32) and one torch thread (the train scripts' default too: as fast for these small
# models, and far faster when other jobs share the cores).
RETRAINING_CHANGES = {"seed": 42, "batch_size": 256, "num_threads": 1}
# The settings the result names (`used`), whatever their origin.
SHOWN = ("threshold_rule", "batch_size", "learning_rate", "num_epochs", "seed")


def recorded_settings(champion: RegisteredModel) -> dict[str, Any]:
    """The TrainingConfig fields the champion's sidecar records, without bookkeeping (folders,
    device, threads) and without fields this version does not know."""
    known = {f.name for f in fields(TrainingConfig)}
    return {name: value for name, value in sidecar_hyperparameters(champion.sidecar).items()
            if name in known}


def challenger_settings(layer: Layer, champion: RegisteredModel | None, units: Any, *,
                        given: TrainingConfig | None, changes: Mapping[str, Any]
                        ) -> tuple[TrainingConfig, dict[str, Any] | None, dict[str, Any]]:
    """The challenger's TrainingConfig, its `train_layer` model_args and, JSON-able, which
    settings it uses and from where.

    Args:
        layer: the layer being retrained.
        champion: the production model, or None.
        units: the training units, or None when the caller's own train function builds the
            model (then there are no model_args).
        given: a whole TrainingConfig chosen by the caller (then no training setting is
            inherited; the architecture still is: a TrainingConfig holds none).
        changes: TrainingConfig fields that override the inherited (or given) settings.

    Returns:
        (config, model_args, used) with used: "from" (where the settings come from),
        "changed" (the caller's changes), the values of `SHOWN` and "model" (model_args).

    Raises:
        ConfigError: the layer cannot build the champion's detector (`recorded_model_args`).
    """
    if given is not None:
        base, origin = given, "RetrainingConfig.training_config"
    else:
        recorded = {} if champion is None else recorded_settings(champion)
        base = layer.default_config(**RETRAINING_CHANGES).replace(**recorded)
        origin = _origin(layer, champion, bool(recorded))
    config = base.replace(**changes)
    model_args = (None if units is None else {} if champion is None
                  else recorded_model_args(layer, champion.model, units))
    used = {"from": origin, "changed": dict(changes),
            **{name: getattr(config, name) for name in SHOWN}, "model": model_args}
    return config, model_args, used


def recorded_model_args(layer: Layer, model: Any, units: Any) -> dict[str, Any]:
    """The `train_layer` model_args that build `model`'s detector with its architecture again
    on `units`: the constructor arguments it records that differ from those
    `layer.build_detector` gives that detector for `units` (so the widths taken from the units
    stay theirs), with a row detector's name and view. {} (the layer's own detector, its
    defaults) for a model that records none (trained through the original `loss_fn` form).

    Raises:
        ConfigError: `layer` builds another detector class than `model`'s.
    """
    args = getattr(model, "init_args", None)
    if args is None:
        return {}
    chosen = ({"detector": model.short_name, "inputs": args["inputs"]}
              if isinstance(model, RowDetector) else {})
    with torch.device("meta"):  # for its arguments only: nothing allocated, no random draws
        fresh = layer.build_detector(units, **chosen)
    if type(fresh) is not type(model):
        raise ConfigError(f"the production model is a {type(model).__name__}, which "
                          f"{layer.name} does not build (its own is a {type(fresh).__name__}); "
                          "retrain it with the train function that made it (train_fn)")
    return {**chosen, **{name: value for name, value in args.items()
                         if name not in fresh.init_args or fresh.init_args[name] != value}}


def _origin(layer: Layer, champion: RegisteredModel | None, recorded: bool) -> str:
    if champion is None:
        return f"the {layer.name} defaults (no production model to follow)"
    name = f"{champion.metadata.model_name} {champion.metadata.version}"
    if recorded:
        return f"the production {name}"
    return f"the {layer.name} defaults (the production {name} records no training settings)"
