"""Layer-3 entity windows as TCN batches, and TCN scores back to the events they cover.

`fit_layer3_scaling(windows)` fits one standardizer of the bucket features on the target buckets
of the training windows (benign ones by default: Background/unknown is never benign) and returns
the model's FeatureSpec. `Layer3Data(windows, spec)` applies it to histories and targets alike
and yields `(history, target, fit)` batches (`fit`: the windows the loss counts). A window's
score belongs to its target bucket, so `window_events(scores)` gives each of that bucket's
events the window's score.
"""

from __future__ import annotations

import numpy as np
import torch

from training.detectors.base import Detector, model_device
from training.errors import ConfigError
from training.features.encoding import FeatureSpec
from training.features.layer3_windows import Layer3Windows
from training.features.scaling import (
    Standardizer,
    data_spec,
    require_finite,
    scaling_of,
    with_scaling,
)
from training.trainer.batches import TensorBatches


def fit_layer3_scaling(windows: Layer3Windows, *, benign_only: bool = True) -> FeatureSpec:
    """The model spec for `windows` (the training split): the bucket-feature standardizer.

    Raises:
        ConfigError: no window to fit on.
    """
    rows = windows.labels == 0 if benign_only else np.ones(len(windows), bool)
    if not rows.any():
        raise ConfigError(f"the training windows have no {'benign ' if benign_only else ''}"
                          f"window ({len(windows)} windows); pass benign_only=False to learn "
                          "from unlabeled traffic as if it were benign")
    return with_scaling(windows.spec, {"bucket": Standardizer.fit(windows.target[rows], "bucket")})


class Layer3Data:
    """Scaled histories and targets of `windows`, under the model spec `spec`.

    Args:
        windows: windows built with the spec `spec` was fitted on.
        spec: the model's FeatureSpec (from `fit_layer3_scaling`, or a model's sidecar).
        benign_only: training batches hold the benign windows only; else every window.

    Raises:
        SchemaError: `windows` were built with another transform than `spec`'s, or `spec` has
            no fitted scaling.

    Shapes:
        history: (windows, T, F) float32; target: (windows, F) float32.
    """

    def __init__(self, windows: Layer3Windows, spec: FeatureSpec, *,
                 benign_only: bool = True) -> None:
        data_spec(spec).require(windows.spec, "the layer-3 windows")
        scaler = scaling_of(spec, {"bucket": windows.target.shape[1]})["bucket"]
        require_finite(windows.X, "the layer-3 histories (X)")
        require_finite(windows.target, "the layer-3 targets")
        self.windows = windows
        self.spec = spec
        self.history = torch.from_numpy(scaler.transform(windows.X))
        self.target = torch.from_numpy(scaler.transform(windows.target))
        self.fit_rows = np.flatnonzero(windows.labels == 0 if benign_only
                                       else np.ones(len(windows), bool))

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def input_dim(self) -> int:
        return int(self.target.shape[1])

    def batches(self, batch_size: int, *, shuffle: bool = False, training: bool = False,
                **sharding: int | None) -> TensorBatches:
        """`(history, target, fit)` batches, `fit` marking the windows the loss counts.

        `training` keeps only those windows (the training split); otherwise every window comes,
        in order (validation loss over the fit ones, scores and threshold over all). Shuffling
        draws from torch's global generator, which the trainer's checkpoints cover, unless
        `sharding` gives a seed (with rank and world_size for multi-process training; see
        `training.trainer.batches.TensorBatches`).
        """
        fit = torch.zeros(len(self), dtype=torch.bool)
        fit[torch.from_numpy(self.fit_rows)] = True
        if not training:
            return TensorBatches(self.history, self.target, fit, batch_size=batch_size,
                                 shuffle=shuffle, **sharding)
        if not len(self.fit_rows):
            raise ConfigError("no window to train on (none is benign); train on benign traffic "
                              "or pass benign_only=False")
        rows = torch.from_numpy(self.fit_rows)
        return TensorBatches(self.history[rows], self.target[rows], fit[rows],
                             batch_size=batch_size, shuffle=shuffle, **sharding)

    def labels(self) -> np.ndarray:
        """Labels of every window, in the order of `batches()` (unshuffled)."""
        return self.windows.labels

    @torch.no_grad()
    def scores(self, model: Detector, batch_size: int = 1024) -> np.ndarray:
        """`model.anomaly_score` of every window, in window order (float64, (windows,))."""
        was_training = model.training
        model.eval()
        device = model_device(model)
        try:
            parts = [model.anomaly_score((x.to(device), y.to(device))).double().cpu().numpy()
                     for x, y, _ in self.batches(batch_size)]
        finally:
            model.train(was_training)
        return np.concatenate(parts) if parts else np.zeros(0)

    def window_events(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """Every target-bucket event with the score of its window.

        Returns:
            {"event_row", "event_id", "score", "window"}, each (events,).
        """
        w = self.windows
        scores = np.asarray(scores)
        if scores.shape != (len(w),):
            raise ConfigError(f"scores has shape {scores.shape}; there are {len(w)} windows")
        window = np.repeat(np.arange(len(w)), np.diff(w.event_ptr))
        ids = w.event_id.to_numpy(zero_copy_only=False)
        return {"event_row": w.event_row, "event_id": ids.astype(str) if len(ids) else ids,
                "score": scores[window], "window": window}
