"""How a challenger is trained: like the production model it challenges.

A challenger trained or thresholded otherwise than the champion is not compared like with
like: with the trainer's "auto" threshold (the benign 0.99-quantile) where the pipeline's
champion used "quantile:0.999", it alerts ten times as often by construction. So a challenger
takes the training settings the production model recorded (its sidecar's `training_config`:
threshold rule, batch size, learning rate, epochs, optimizer, ...); the layer's own settings with
`RETRAINING_CHANGES` only when there is no production model or it recorded none. The caller's
changes (`RetrainingConfig.training_changes`, the `retrain` flags) win over either.

    config, used = challenger_settings(layer, champion, given=None,
                                       changes={"threshold_rule": "quantile:0.99"})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

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


def challenger_settings(layer: Layer, champion: RegisteredModel | None, *,
                        given: TrainingConfig | None, changes: Mapping[str, Any]
                        ) -> tuple[TrainingConfig, dict[str, Any]]:
    """The challenger's TrainingConfig and, JSON-able, which settings it uses and from where.

    Args:
        layer: the layer being retrained.
        champion: the production model, or None.
        given: a whole TrainingConfig chosen by the caller (then nothing is inherited).
        changes: TrainingConfig fields that override the inherited (or given) settings.

    Returns:
        (config, used) with used: "from" (where the settings come from), "changed" (the
        caller's changes) and the values of `SHOWN`.
    """
    if given is not None:
        base, origin = given, "RetrainingConfig.training_config"
    else:
        recorded = {} if champion is None else recorded_settings(champion)
        base = layer.default_config(**RETRAINING_CHANGES).replace(**recorded)
        origin = _origin(layer, champion, bool(recorded))
    config = base.replace(**changes)
    used = {"from": origin, "changed": dict(changes),
            **{name: getattr(config, name) for name in SHOWN}}
    return config, used


def _origin(layer: Layer, champion: RegisteredModel | None, recorded: bool) -> str:
    if champion is None:
        return f"the {layer.name} defaults (no production model to follow)"
    name = f"{champion.metadata.model_name} {champion.metadata.version}"
    if recorded:
        return f"the production {name}"
    return f"the {layer.name} defaults (the production {name} records no training settings)"
