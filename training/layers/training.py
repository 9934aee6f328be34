"""Training any layer's detector: one function for every layer, through `LayerTrainer`.

    model, results = train_layer(Layer2(), train_graphs, val_graphs, hidden_dim=32)

The layer fits its scaling on the training units (benign ones when there are any: unknown is
never benign; unlabeled traffic is taken as benign), builds its default detector, and trains it:
the loss learns from those units, the validation loss (which picks the best epoch, drives the
scheduler and early stopping) is measured on the same kind of units of the validation part, and
the anomaly threshold is calibrated (`training.evaluation.calibration`) on the validation
scores of that kind of units, by the config's `threshold_rule` (best F1 uses the labels). The
checkpoint's sidecar carries the layer's fitted FeatureSpec, so scoring rebuilds the exact
transform.

`train_layer2_gnn` and `train_layer3_tcn` are the same for one layer each, by their script's
name; the original `train_layer1_vae(features, labels, ...)` is in `training.compat`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from training.errors import ConfigError
from training.evaluation.units import unit_times
from training.layers.base import Layer
from training.layers.layer2 import Layer2
from training.layers.layer3 import Layer3
from training.retraining.gate import split_fingerprint
from training.trainer.callbacks import Callback
from training.trainer.config import TrainingConfig
from training.trainer.loop import LayerTrainer
from training.trainer.setup import seed_everything

logger = logging.getLogger(__name__)


def train_layer(layer: Layer, train: Any, val: Any = None, config: TrainingConfig | None = None,
                *, model_args: dict[str, Any] | None = None, benign_only: bool | None = None,
                resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
                ) -> tuple[Any, dict[str, Any]]:
    """Train `layer`'s default detector; returns (model with the best epoch's weights, results).

    Args:
        layer: the layer (fitted here on `train`).
        train: training units; val: validation units of the same transform, or None (then
            the best epoch is the lowest training loss, and there is no threshold).
        config: TrainingConfig; default `layer.default_config()`.
        model_args: the detector's own arguments (see `layer.model_options`); "detector"
            chooses another one by name (`layer.detector_names()`: "iforest", "ecod", "knn",
            "autoencoder"), with that detector's arguments (see `Layer.build_detector`).
        benign_only: None = the benign units when there are any, else all; True/False force it.
        resume: as `LayerTrainer.train`.
        callbacks: extra callbacks (e.g. Optuna pruning).

    Returns:
        (model, results) with results: best_val_loss, best_epoch, epochs_trained,
        final_train_loss, threshold (dict or None), calibration (dict or None), checkpoint
        (the best weights, written by process 0), feature_spec (the model's), train_units
        (units learnt from), history (per epoch), train_time_s.

    Raises:
        SchemaError: the validation units were made with another transform.
        ConfigError: nothing to learn from, or an invalid model argument.
    """
    config = config if config is not None else layer.default_config()
    layer.fit(train, benign_only=benign_only)
    if config.seed is not None:
        seed_everything(config.seed)  # the model's initial weights follow the seed
    model = layer.build_detector(train, **(model_args or {}))
    trainer = LayerTrainer(model, config=config, callbacks=callbacks or (),
                           feature_spec=layer.spec)
    # What it learnt from, in the sidecar: the registry's dataset fingerprints come from there.
    trainer.data_fingerprints = {name: split_fingerprint(layer, units) for name, units in
                                 (("train", train), ("val", val)) if units is not None}
    learnt = int(layer.fit_rows(layer.labels(train)).sum())
    logger.info("training %s on %d %s %ss of %d", config.model_name, learnt,
                "benign" if layer.benign_only_ else "(all)", layer.unit, len(layer.labels(train)))
    train_batches = layer.batches(train, config.batch_size, fit_only=True, shuffle=True,
                                  **trainer.shard_options())
    val_loss = threshold_data = val_labels = reference = times = None
    if val is not None:
        _require_reference(layer, val)
        size = max(config.batch_size, layer.score_batch)  # no result depends on it
        val_loss = layer.batches(val, size, fit_only=True)
        threshold_data, val_labels = layer.batches(val, size), layer.labels(val)
        # The threshold's benign distribution: the validation units of the kind training
        # learnt from (every unit of unlabeled data, else the benign ones).
        reference, times = layer.fit_rows(val_labels), unit_times(layer, val)
    start = time.perf_counter()
    history = trainer.train(train_batches, val_loss, threshold_data=threshold_data,
                            val_labels=val_labels, threshold_reference=reference,
                            threshold_times=times, resume=resume)
    return model, {**trainer.results(history), "feature_spec": layer.spec,
                   "train_units": learnt, "train_time_s": time.perf_counter() - start}


def _require_reference(layer: Layer, val: Any) -> None:
    """Refuse validation units with none of the kind training learns from: the validation
    loss and the threshold's reference distribution are measured on those (an empty split or
    one of threats only failed as "no window to train on" or "yielded no batch")."""
    labels = layer.labels(val)
    if layer.fit_rows(labels).any():
        return
    if not len(labels):
        raise ConfigError(f"the validation split is empty (0 {layer.unit}s): give one that holds "
                          f"{layer.unit}s, or none (the training loss then picks the epoch)")
    raise ConfigError(f"the validation split has no benign {layer.unit} among its {len(labels)}: "
                      f"the validation loss and the threshold are measured on its benign "
                      f"{layer.unit}s; give a validation split that holds some (a temporal "
                      "split's later part may be all attack), or learn from every unit "
                      "(--train_on all; benign_only=False)")


def train_layer2_gnn(train_graphs: Any, val_graphs: Any = None,
                     config: TrainingConfig | None = None, *, benign_only: bool | None = None,
                     resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
                     **model_args: Any) -> tuple[Any, dict[str, Any]]:
    """`train_layer` for layer 2's window graphs (`model_args`: see `Layer2.model_options`)."""
    return train_layer(Layer2(), train_graphs, val_graphs, config, model_args=model_args,
                       benign_only=benign_only, resume=resume, callbacks=callbacks)


def train_layer3_tcn(train_windows: Any, val_windows: Any = None,
                     config: TrainingConfig | None = None, *, benign_only: bool | None = None,
                     resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
                     **model_args: Any) -> tuple[Any, dict[str, Any]]:
    """`train_layer` for layer 3's windows (`model_args`: see `Layer3.model_options`)."""
    return train_layer(Layer3(), train_windows, val_windows, config, model_args=model_args,
                       benign_only=benign_only, resume=resume, callbacks=callbacks)
