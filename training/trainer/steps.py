"""How the training and validation passes of an epoch run, step by step.

The trainer knows a model only through `DetectorLoss(model)`, a module whose forward is the
model's `training_step` (the Detector contract). Being a module, it is what
DistributedDataParallel wraps, so gradients are averaged across processes.

Speed: the step loop does no per-step host sync: losses and gradient norms are summed as
tensors and read once per epoch.

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

from training.detectors.base import Detector, to_device
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

    def on_train_epoch_end(self) -> None:
        self.model.on_train_epoch_end()


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


class EpochPasses:
    """The training and validation passes over an epoch's batches, on one device.

    Args:
        loss: `DetectorLoss` of the model being trained.
        optimizer: built over `loss.parameters()`.
        scaler: a GradScaler (fp16 on CUDA) or None.
        autocast: a context manager factory for mixed precision (a null context without).
        clip: max gradient norm, or None.
        device: where batches go.
        world_size: processes training together (gradients all-reduced by DDP past 1).
        graph_ok: capture the step in a CUDA graph for in-memory batches of full size.
    """

    def __init__(self, loss: DetectorLoss, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler | None,
                 autocast: Callable[[], AbstractContextManager], clip: float | None,
                 device: torch.device, world_size: int, graph_ok: bool) -> None:
        self.loss, self.optimizer, self.scaler, self.autocast = loss, optimizer, scaler, autocast
        self.clip, self.device, self.world_size, self.graph_ok = clip, device, world_size, graph_ok
        # The parameters the optimizer was built over, listed once: walking the module tree
        # (`loss.parameters()`) on every step costs tens of generator calls per step.
        self.params = list(loss.parameters())
        if not self.params:
            self.clip = None  # nothing to clip: a detector fitted in one pass has no parameters
        # One process: call the loss directly (no module-call hooks per step); several: through
        # DDP, whose forward prepares the gradient all-reduce.
        self.step_loss: Callable[[Any], torch.Tensor] = loss.forward
        if world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.step_loss = DistributedDataParallel(loss, device_ids=ids)
        self.captured: CapturedStep | None = None
        self.sums = (torch.zeros((), device=device), torch.zeros((), device=device))

    def train(self, batches: Iterable[Any], in_memory: bool) -> tuple[float, float | None]:
        """One pass over the training batches; (mean loss, mean gradient norm).

        `in_memory`: the batches are already on the device (`TensorBatches`), of fixed shape.
        """
        self.loss.train()
        loss_sum, norm_sum = self.sums
        loss_sum.zero_()
        norm_sum.zero_()
        graph_ok = self.graph_ok and in_memory
        rows = steps = 0
        for batch in batches:
            if not in_memory:
                batch = to_device(batch, self.device)
            n = self.loss.batch_size_of(batch)
            if graph_ok and self.captured is None and n == batches.batch_size:
                self.captured = self._capture(batch, n)
            if self.captured is not None and n == self.captured.rows:
                self.captured(batch)
            else:
                self._eager_step(batch, n)
            rows += n
            steps += 1
        if rows == 0:
            raise ConfigError("the training data yielded no batch")
        self.loss.on_train_epoch_end()  # a one-pass detector fits here, before validation
        totals = torch.stack([loss_sum, norm_sum, torch.tensor(float(rows), device=self.device),
                              torch.tensor(float(steps), device=self.device)])
        if self.world_size > 1:
            torch.distributed.all_reduce(totals)
        loss, norm, rows_all, steps_all = totals.tolist()  # the epoch's one host sync
        return loss / rows_all, (norm / steps_all if self.clip else None)

    def _eager_step(self, batch: Any, rows: int) -> None:
        loss_sum, norm_sum = self.sums
        with self.autocast():
            loss = self.step_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if self.clip is not None:
                norm_sum.add_(nn.utils.clip_grad_norm_(self.params, self.clip))
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            if self.clip is not None:
                self.scaler.unscale_(self.optimizer)
                norm_sum.add_(nn.utils.clip_grad_norm_(self.params, self.clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
        loss_sum.add_(loss.detach().float(), alpha=rows)

    def _capture(self, batch: Any, rows: int) -> CapturedStep | None:
        try:
            step = CapturedStep(self.loss, self.optimizer, self.clip, self.autocast, batch, rows,
                                self.sums)
        except Exception as exc:  # capture support depends on the model's ops: fall back
            logger.warning("cannot capture the training step in a CUDA graph (%s: %s); "
                           "stepping eagerly", type(exc).__name__, exc)
            self.graph_ok = False
            return None
        logger.info("training step captured in a CUDA graph (batch %d)", rows)
        return step

    @torch.no_grad()
    def validate(self, batches: Iterable[Any]) -> dict[str, float]:
        """Weighted means of `validation_step` over the batches, as {"val_<name>": value}."""
        self.loss.eval()
        sums: dict[str, torch.Tensor] = {}
        rows = 0
        with self.autocast():
            for batch in batches:
                batch = to_device(batch, self.device)
                n = self.loss.batch_size_of(batch)
                for name, value in self.loss.validation_step(batch).items():
                    weighted = value.detach().float() * n
                    sums[name] = sums[name] + weighted if name in sums else weighted
                rows += n
        if rows == 0:
            raise ConfigError("the validation data yielded no batch")
        values = torch.stack(list(sums.values())).div_(rows).tolist()  # one host sync
        return {f"val_{name}": v for name, v in zip(sums, values)}
