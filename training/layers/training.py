"""Training any layer's detector: one function for every layer, through `LayerTrainer`.

    model, results = train_layer(Layer2(), train_graphs, val_graphs, hidden_dim=32)

The layer fits its scaling on the training units (benign ones when there are any: unknown is
never benign; unlabeled traffic is taken as benign), builds its default detector, and trains it:
the loss learns from those units, the validation loss (which picks the best epoch, drives the
scheduler and early stopping) is measured on the same kind of units of the validation part, and
the anomaly threshold is calibrated (`training.evaluation.calibration`) on the validation
scores of that kind of units, by the config's `threshold_rule` (best F1 uses the labels). The
checkpoint's sidecar carries the layer's fitted FeatureSpec, so scoring rebuilds the exact
transform, and the first and last unit time of the training and validation parts
(`training.evaluation.training_span`), so an evaluation on events of that time says so.

`train_layer2_gnn` and `train_layer3_tcn` are the same for one layer each, by their script's
name; the original `train_layer1_vae(features, labels, ...)` is in `training.compat`. All three
refuse a mistyped keyword argument (`hiden_dim=64`) before any work, naming the closest valid
one (`seed_keywords`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from training.errors import ConfigError, UnknownArgumentError, did_you_mean
from training.evaluation.training_span import DataSpan
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
F = TypeVar("F", bound=Callable[..., Any])


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
    # When its data was, in the sidecar: an evaluation on events of that time says so.
    span = DataSpan.of({"train": unit_times(layer, train), "val": times}, layer.window_seconds)
    trainer.data_span = None if span is None else span.to_dict()
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


def seed_keywords(layer: type[Layer], detector: str, sizes: tuple[str, ...]) -> Callable[[F], F]:
    """Decorator of a seed-compatible training function: a keyword argument that neither it
    nor its layer's own detector takes raises `UnknownArgumentError` naming it and the closest
    valid one, before any work. Python said only "got an unexpected keyword argument" (layer
    1's own arguments), or the detector did once the layer was fitted (the arguments layers 2
    and 3 pass on to it, and the keys of layer 1's `model_args`).

    Args:
        layer: the function's layer; its detector is `detector` unless the arguments choose
            another by name ("detector": a row detector, which `Layer.build_detector` checks).
        detector: the layer's own detector class, by its dotted path (imported on the first
            call, as the layer does: "training.detectors.gnn.Layer2GNN").
        sizes: the detector's arguments the layer sets from the data ("input_dim", ...).
    """
    def decorate(function: F) -> F:
        parameters = inspect.signature(function).parameters
        own = [name for name, p in parameters.items()
               if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        passes_on = any(p.kind is p.VAR_KEYWORD for p in parameters.values())

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            unknown = _unknown_keywords(layer, detector, sizes, own, passes_on, kwargs)
            if unknown:
                raise UnknownArgumentError(f"{function.__name__}() got an unknown {unknown}")
            return function(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def _unknown_keywords(layer: type[Layer], detector: str, sizes: tuple[str, ...],
                      own: list[str], passes_on: bool, kwargs: dict[str, Any]) -> str:
    """What `seed_keywords` refuses, each with the closest valid name, and what is valid; ""
    when every keyword is known."""
    if passes_on:  # the keywords it does not name itself go to the detector
        top, model_args = [], {k: v for k, v in kwargs.items() if k not in own}
    else:
        top = [k for k in kwargs if k not in own]
        given = kwargs.get("model_args")
        model_args = dict(given) if "model_args" in own and isinstance(given, Mapping) else {}
    takes: list[str] = []
    if model_args.get("detector") in (None, layer.detector_name):
        module, _, attribute = detector.rpartition(".")
        cls = getattr(importlib.import_module(module), attribute)
        takes = [name for name in inspect.signature(cls).parameters if name not in sizes]
        takes.append("detector")
    where = "keyword argument" if passes_on else "model_args key"
    problems = [f"keyword argument {k!r}{did_you_mean(k, own)}" for k in top]
    problems += [f"{where} {k!r}" + (" (the layer sets it from the data)" if k in sizes else
                                     did_you_mean(str(k), takes + own if passes_on else takes))
                 for k in model_args if takes and k not in takes]
    if not problems:
        return ""
    message = f"{'; '.join(problems)}; it takes {', '.join(own)}"
    if takes:
        message += (f"; {detector.rpartition('.')[2]}'s arguments go "
                    f"{'with them' if passes_on else 'in model_args'}: {', '.join(takes)}")
    return message


@seed_keywords(Layer2, "training.detectors.gnn.Layer2GNN", sizes=("node_dim", "edge_dim"))
def train_layer2_gnn(train_graphs: Any, val_graphs: Any = None,
                     config: TrainingConfig | None = None, *, benign_only: bool | None = None,
                     resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
                     **model_args: Any) -> tuple[Any, dict[str, Any]]:
    """`train_layer` for layer 2's window graphs (`model_args`: see `Layer2.model_options`)."""
    return train_layer(Layer2(), train_graphs, val_graphs, config, model_args=model_args,
                       benign_only=benign_only, resume=resume, callbacks=callbacks)


@seed_keywords(Layer3, "training.detectors.tcn.Layer3TCN", sizes=("input_dim",))
def train_layer3_tcn(train_windows: Any, val_windows: Any = None,
                     config: TrainingConfig | None = None, *, benign_only: bool | None = None,
                     resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
                     **model_args: Any) -> tuple[Any, dict[str, Any]]:
    """`train_layer` for layer 3's windows (`model_args`: see `Layer3.model_options`)."""
    return train_layer(Layer3(), train_windows, val_windows, config, model_args=model_args,
                       benign_only=benign_only, resume=resume, callbacks=callbacks)
