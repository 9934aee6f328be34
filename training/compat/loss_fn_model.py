"""The original `LayerTrainer(model, loss_fn, config, metric_fns)` form, as a Detector.

The original package trained any `nn.Module` with `loss_fn(model, batch) -> loss` and reported
`metric_fns` values `(model, batch) -> float` on validation batches. `LossFnModel` wraps such a
module so that the trainer sees only the Detector contract. It has no anomaly scores, so it gets
no threshold and no sidecar: its checkpoint is the module's own plain state_dict (same keys as
`module.state_dict()`), which the original `module.load_state_dict(torch.load(path))` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from training.detectors.base import Detector
from training.errors import NotSupportedError

LossFn = Callable[[nn.Module, Any], torch.Tensor]
MetricFn = Callable[[nn.Module, Any], Any]


class LossFnModel(Detector):
    """`module` trained on `loss_fn(module, batch)`.

    Args:
        module: any torch module.
        loss_fn: `loss_fn(module, batch) -> scalar loss`.
        metric_fns: `{name: fn(module, batch) -> float}`, reported as `val_<name>`.
    """

    has_scores = False

    def __init__(self, module: nn.Module, loss_fn: LossFn,
                 metric_fns: dict[str, MetricFn] | None = None) -> None:
        super().__init__()
        self.init_args = None  # not rebuildable from a sidecar: the module is the user's own
        self.module = module
        self.loss_fn = loss_fn
        self.metric_fns = dict(metric_fns or {})

    @property
    def trained_module(self) -> nn.Module:
        """The user's module, as evaluators take it (its forward, its own anomaly_score)."""
        return self.module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The module's own forward: `trainer.model(x)` after training, as the original."""
        return self.module(*args, **kwargs)

    def training_step(self, batch: Any) -> torch.Tensor:
        return self.loss_fn(self.module, batch)

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        metrics = {"loss": self.loss_fn(self.module, batch)}
        for name, fn in self.metric_fns.items():
            metrics[name] = torch.as_tensor(fn(self.module, batch), dtype=torch.float32)
        return metrics

    def anomaly_score(self, batch: Any) -> torch.Tensor:
        raise NotSupportedError("a module trained with loss_fn has no anomaly scores; implement "
                                "training.detectors.Detector to get them")

    # The checkpoint is the module's own state_dict, keys unprefixed (see the module docstring).
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)
