"""How one optimisation step runs: the model's loss, device moves, and the CUDA-graph step.

The trainer knows a model only through `loss_module(model, loss_fn)`, a module whose forward
is the training loss of a batch: the model's own `training_step` (the Detector contract), or,
for the original loader-style API, `loss_fn(model(inputs), targets)`. Being a module, it is
what DistributedDataParallel wraps, so gradients are averaged across processes.

On CUDA a small model is launch-bound: each of its hundreds of kernels per step waits on the
CPU. `CapturedStep` records forward, backward, clipping, the optimizer update and the epoch
sums in one CUDA graph and replays it per batch (one copy into a static input buffer, one
replay), which needs an optimizer built with `capturable=True` and a tensor learning rate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from training.detectors.base import Detector
from training.errors import ConfigError

logger = logging.getLogger(__name__)


class DetectorLoss(nn.Module):
    """forward(batch) = model.training_step(batch); validation = model.validation_step."""

    def __init__(self, model: Detector) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> torch.Tensor:
        return self.model.training_step(batch)

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        return self.model.validation_step(batch)

    def batch_size_of(self, batch: Any) -> int:
        return self.model.batch_size_of(batch)


class LossFnLoss(nn.Module):
    """The original API: a batch is `(inputs, targets)` (extra items are ignored) or a lone
    tensor that is its own target (autoencoders); the loss is `loss_fn(model(inputs), targets)`.

    `metric_fns` ({name: fn(outputs, targets) -> scalar}) are added to validation metrics.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor],
                 metric_fns: dict[str, Callable[..., Any]] | None = None) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.metric_fns = dict(metric_fns or {})

    @staticmethod
    def _split(batch: Any) -> tuple[Any, Any]:
        if isinstance(batch, (tuple, list)):
            return (batch[0], batch[1]) if len(batch) > 1 else (batch[0], batch[0])
        return batch, batch

    def forward(self, batch: Any) -> torch.Tensor:
        inputs, targets = self._split(batch)
        return self.loss_fn(self.model(inputs), targets)

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        inputs, targets = self._split(batch)
        outputs = self.model(inputs)
        metrics = {"loss": self.loss_fn(outputs, targets)}
        for name, fn in self.metric_fns.items():
            metrics[name] = torch.as_tensor(fn(outputs, targets), dtype=torch.float32)
        return metrics

    def batch_size_of(self, batch: Any) -> int:
        inputs, _ = self._split(batch)
        return int(inputs.shape[0]) if hasattr(inputs, "shape") else 1


def loss_module(model: nn.Module, loss_fn: Callable[..., torch.Tensor] | None,
                metric_fns: dict[str, Callable[..., Any]] | None) -> nn.Module:
    """The module whose forward is the training loss (see the module docstring)."""
    if loss_fn is not None:
        return LossFnLoss(model, loss_fn, metric_fns)
    if not isinstance(model, Detector):
        raise ConfigError(f"model is a {type(model).__name__}, not a Detector: pass loss_fn "
                          "(loss_fn(model(inputs), targets)) or implement "
                          "training.detectors.Detector")
    if metric_fns:
        raise ConfigError("metric_fns apply to loss_fn-style training; a Detector returns its "
                          "validation metrics from validation_step")
    return DetectorLoss(model)


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


class CapturedStep:
    """One training step (forward, backward, clip, optimizer step, loss and grad-norm sums)
    recorded in a CUDA graph for batches of one fixed shape.

    Args:
        loss: the loss module (forward(batch) -> scalar loss).
        optimizer: built with `capturable=True` (fused Adam/AdamW/SGD) and a tensor lr.
        clip: max gradient norm, or None.
        autocast: a context manager factory for mixed precision (bf16 or fp32 only: fp16
            needs a GradScaler, whose inf checks are not captured here).
        example: a batch with the fixed shape (tensor or tuple of tensors on the GPU).
        sums: (loss_sum, norm_sum) tensors the step adds `loss * rows` and the norm into.

    Warm-up steps on a side stream (needed before capture) are undone: parameters,
    buffers and optimizer state are copied back, so the first replay starts from the same
    state an eager step would.
    """

    def __init__(self, loss: nn.Module, optimizer: torch.optim.Optimizer, clip: float | None,
                 autocast: Callable[[], AbstractContextManager], example: Any,
                 rows: int, sums: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.loss, self.optimizer, self.clip, self.autocast = loss, optimizer, clip, autocast
        self.params = [p for p in loss.parameters() if p.requires_grad]
        self.rows = rows
        self.sums = sums
        self.static = _clone(example)
        saved = self._snapshot()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.optimizer.zero_grad(set_to_none=True)
                self._body()
        torch.cuda.current_stream().wait_stream(side)
        self._restore(saved)
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()

    def _body(self) -> None:
        with self.autocast():
            loss = self.loss(self.static)
        loss.backward()
        if self.clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
            self.sums[1].add_(norm)
        self.optimizer.step()
        self.sums[0].add_(loss.detach().float(), alpha=self.rows)

    def __call__(self, batch: Any) -> None:
        for static, new in zip(_flat(self.static), _flat(batch)):
            static.copy_(new, non_blocking=True)
        self.graph.replay()

    def _snapshot(self) -> dict[str, Any]:
        module_state = {k: v.detach().clone() for k, v in self.loss.state_dict().items()}
        optim_state = {id(t): t.detach().clone() for state in self.optimizer.state.values()
                       for t in state.values() if isinstance(t, torch.Tensor)}
        sums = [s.clone() for s in self.sums]
        return {"module": module_state, "optim": optim_state, "sums": sums}

    def _restore(self, saved: dict[str, Any]) -> None:
        with torch.no_grad():
            for key, value in self.loss.state_dict().items():
                value.copy_(saved["module"][key])
            for state in self.optimizer.state.values():
                for t in state.values():
                    if isinstance(t, torch.Tensor):
                        before = saved["optim"].get(id(t))
                        t.copy_(before) if before is not None else t.zero_()
            for s, before in zip(self.sums, saved["sums"]):
                s.copy_(before)


def _flat(batch: Any) -> Iterable[torch.Tensor]:
    return batch if isinstance(batch, (tuple, list)) else (batch,)


def _clone(batch: Any) -> Any:
    if isinstance(batch, (tuple, list)):
        return type(batch)(t.clone() for t in batch)
    return batch.clone()
