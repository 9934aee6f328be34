"""The contract every detector model keeps, and the registry the checkpoint loader rebuilds from.

The trainer, the evaluator, the registry gate and scoring know only this contract (DESIGN.md
principles 5 and 6): a model gives its loss and its anomaly scores; everything else (device,
precision, optimizer, checkpoints) belongs to the caller. Scores point one way: higher means
more anomalous.

The package folder is `detectors/`, not `models/`, because `training/models` is the model
registry's default directory (relative to the working directory, as the original system had it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from training.errors import ConfigError, NotSupportedError

DETECTORS: dict[str, type[Detector]] = {}
# Units per model call when scoring or validating: small enough to stay in cache (faster than
# 64k rows); no result depends on it.
SCORE_BATCH = 4096


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make `cls` loadable from a checkpoint sidecar by its class name."""
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise ConfigError(f"register_detector takes a Detector subclass, got {cls!r}")
    known = DETECTORS.get(cls.__name__)
    if known is not None and known is not cls:
        raise ConfigError(f"two detector classes are named {cls.__name__}: "
                          f"{known.__module__} and {cls.__module__}")
    DETECTORS[cls.__name__] = cls
    return cls


def detector_class(name: str) -> type[Detector]:
    """The registered class called `name`; nothing outside the registry is ever imported."""
    if name not in DETECTORS:
        _import_builtin_detectors()
    try:
        return DETECTORS[name]
    except KeyError:
        raise ConfigError(f"unknown detector class {name!r}; known: "
                          f"{', '.join(sorted(DETECTORS)) or 'none'}") from None


BUILTIN = ("vae", "gnn", "tcn", "ecod", "knn", "iforest", "autoencoder")


def _import_builtin_detectors(modules: tuple[str, ...] = BUILTIN) -> None:
    # The package's own models register themselves on import; import them lazily so that
    # loading a checkpoint does not need the caller to have imported its module first.
    import importlib

    for module in modules:
        try:
            importlib.import_module(f"training.detectors.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"training.detectors.{module}":
                raise


class Detector(nn.Module, ABC):
    """A trainable anomaly detector.

    Subclasses pass their keyword-only constructor arguments (JSON-able values) to
    `super().__init__(**init_args)`; they are stored unchanged in `init_args`, saved in the
    checkpoint sidecar, and used to rebuild the model before its state_dict is loaded.

    A batch is whatever the model's data yields (a tensor, a tuple of tensors, a PyG Batch);
    the trainer only moves it to the device and hands it over.

    Class attributes:
        has_scores: the model scores units (`anomaly_score`), so training calibrates its
            threshold and saves a sidecar to rebuild it from. False only for a plain module
            trained through the original `loss_fn` form (`training.compat.loss_fn_model`).
        max_epochs: the most epochs training can use; None = as many as the config allows.
            A detector that learns in one pass over the data (ECOD, kNN, an isolation forest:
            `training.detectors.fitted`) says 1.
        graph_capturable: the training step is pure tensor work, so the trainer may record it
            in a CUDA graph; False for a step with Python side effects (collecting rows).
        added_state: state_dict keys added after the detector was first released: a model
            file saved before lacks them, and the loader lets it; the detector's own
            `_load_from_state_dict` fills them so that it scores as the older release did.
        loss_args: the constructor arguments that define what `validation_step`'s "loss"
            measures (a term's weight, the error it takes): two models of one class whose
            values differ report losses on different scales, which `registry compare` does not
            rank. Models of two classes never compare on a loss.
    """

    has_scores: ClassVar[bool] = True
    max_epochs: ClassVar[int | None] = None
    graph_capturable: ClassVar[bool] = True
    added_state: ClassVar[tuple[str, ...]] = ()
    loss_args: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **init_args: Any) -> None:
        super().__init__()
        self.init_args = dict(init_args)

    @abstractmethod
    def training_step(self, batch: Any) -> torch.Tensor:
        """The scalar loss to minimise on `batch` (train mode, gradients on)."""

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Validation metrics of `batch` (eval mode, no gradients); "loss" at least."""
        return {"loss": self.training_step(batch)}

    @abstractmethod
    def anomaly_score(self, batch: Any) -> torch.Tensor:
        """One score per unit of `batch` (event, edge or window); higher = more anomalous.

        Shapes:
            returns (units,), float32, finite.
        """

    def feature_terms(self, batch: Any) -> torch.Tensor:
        """The additive terms of `anomaly_score` (its explanation): each row sums to the unit's
        score. Detectors that cannot split their score raise NotSupportedError.

        Shapes:
            returns (units, terms), float32; terms are the model's own (per input feature for
            a reconstruction error).
        """
        raise NotSupportedError(f"{type(self).__name__} does not split its scores into "
                                "per-feature terms")

    def fit_after_training(self, batches: Iterable[Any]) -> None:
        """Called once when training ends, on the best epoch's weights (eval mode, no
        gradients), with the validation batches of the units training learnt from (the benign
        ones, unless told to learn from all), before the threshold is calibrated: a detector
        whose score has parts fitted on those units fits them here (the layer-1 VAE's error
        weights). Most detectors need nothing."""

    def batch_size_of(self, batch: Any) -> int:
        """Number of units in `batch`, used to weight per-batch losses into epoch means."""
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return int(first.shape[0]) if hasattr(first, "shape") else 1

    def on_train_epoch_end(self) -> None:
        """Called by the trainer after each epoch's training pass, before validation.

        Gradient models need nothing here; a one-pass detector fits on the rows its
        `training_step` collected.
        """


def model_device(model: nn.Module) -> torch.device:
    """Where `model` lives: its first parameter's device, else its first buffer's (a
    detector fitted in one pass has only buffers), else the CPU."""
    first = next(chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def row_batches(x: torch.Tensor, size: int = SCORE_BATCH) -> Iterator[torch.Tensor]:
    """Consecutive slices of `size` rows of `x` (views, no copies)."""
    return (x[i:i + size] for i in range(0, len(x), size))


@torch.inference_mode()
def model_scores(model: Detector, batches: Iterable[Any]) -> np.ndarray:
    """`model.anomaly_score` over `batches` (eval mode, on the model's device), concatenated
    as float32 on the CPU."""
    model.eval()
    device = model_device(model)
    parts = [model.anomaly_score(to_device(batch, device)).float().cpu().numpy()
             for batch in batches]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def to_device(batch: Any, device: torch.device) -> Any:
    """`batch` with every tensor on `device` (tensors, tuples/lists/dicts of them, or any
    object with `.to`, such as a PyG Batch)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    to = getattr(batch, "to", None)
    return to(device) if callable(to) else batch
