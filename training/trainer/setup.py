"""Setting up a training run: seeds, determinism, processes, device, precision, optimizer and
learning-rate scheduler, each from a `TrainingConfig`."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from training.errors import ConfigError
from training.trainer.config import TrainingConfig


def seed_everything(seed: int) -> None:
    """Seed Python's random, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic() -> None:
    # cuBLAS needs a fixed workspace for deterministic results; harmless on the CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def init_distributed(device: str) -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the torchrun process group when WORLD_SIZE > 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device != "cpu"
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def resolve_device(device: str, local_rank: int | None) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
                          ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; "
                              "use --device cpu")
        if local_rank is not None and resolved.index is None:
            resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    return resolved


def amp_dtype(cfg: TrainingConfig, device: torch.device) -> torch.dtype | None:
    if device.type == "cuda" and cfg.use_amp:
        return getattr(torch, cfg.amp_dtype)
    if device.type == "cpu" and cfg.cpu_amp:
        return torch.bfloat16
    return None


def build_optimizer(cfg: TrainingConfig, params: Iterable[nn.Parameter], device: torch.device,
               capturable: bool) -> torch.optim.Optimizer:
    # Fused kernels (one per step on the CPU and on CUDA) are the fastest update; a captured
    # CUDA graph also needs the learning rate as a tensor so that schedulers can change it.
    lr: float | torch.Tensor = torch.tensor(cfg.learning_rate, device=device) if capturable \
        else cfg.learning_rate
    extra: dict[str, Any] = {"fused": True}
    # One parameter group, possibly empty: a detector fitted in one pass has no parameters,
    # and its optimizer steps are then no-ops (torch refuses a bare empty list).
    groups = [{"params": list(params)}]
    if capturable and cfg.optimizer != "sgd":
        extra["capturable"] = True
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=cfg.weight_decay, **extra)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay, **extra)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           **extra)


def build_scheduler(cfg: TrainingConfig, optimizer: torch.optim.Optimizer) -> Any:
    if cfg.lr_scheduler == "reduce_on_plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=cfg.mode, factor=cfg.scheduler_factor,
            patience=cfg.scheduler_patience, min_lr=cfg.min_lr)
    if cfg.lr_scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.num_epochs,
                                                          eta_min=cfg.min_lr)
    if cfg.lr_scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size,
                                               gamma=cfg.scheduler_factor)
    return None
