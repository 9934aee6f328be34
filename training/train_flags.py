"""Command-line flags shared by the layer-2 and layer-3 training scripts.

The same names as `training/train_layer1_vae.py` (`--train_data`, `--val_data`, `--num_epochs`,
`--batch_size`, `--learning_rate`, `--device`, `--seed`, `--resume`, ...), each also accepted
with '-' for '_', mapped onto one `TrainingConfig`.
"""

from __future__ import annotations

import argparse
from typing import Any

from training.errors import ConfigError
from training.layer_trainer import TrainingConfig

TRAIN_ON = {"auto": None, "benign": True, "all": False}


def add_flag(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """`--name`, also as `--na-me` when the name has underscores."""
    names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*names, dest=name, **kwargs)


def add_training_flags(parser: argparse.ArgumentParser, *, model_name: str, num_epochs: int,
                       batch_size: int, learning_rate: float, units: str) -> None:
    """The data, loop, checkpoint and device flags every training script has."""
    flag = lambda name, **kw: add_flag(parser, name, **kw)  # noqa: E731
    flag("train_data", required=True, help="training data (.npz written by the featurizer)")
    flag("val_data", default=None, help="validation data (best epoch and threshold)")
    flag("num_epochs", type=int, default=num_epochs)
    flag("batch_size", type=int, default=batch_size, help=f"{units} per batch")
    flag("learning_rate", type=float, default=learning_rate)
    flag("amp", choices=("auto", "off", "fp16", "bf16"), default="auto",
         help="mixed precision: auto = fp16 with GradScaler on CUDA, off on the CPU")
    flag("device", default="auto", help="auto, cpu, cuda or cuda:N")
    flag("seed", type=int, default=42)
    flag("resume", action="store_true",
         help="continue from <checkpoint_dir>/<model_name>_last_state.pt when it exists")
    flag("deterministic", action="store_true", help="deterministic algorithms only")
    flag("num_threads", type=int, default=1,
         help="torch intra-op threads (1 suits these small models; 0 = torch's default)")
    flag("checkpoint_dir", default=None, help="default: training/checkpoints")
    flag("log_dir", default=None, help="default: training/logs")
    flag("model_name", default=model_name)
    flag("patience", type=int, default=10, help="early-stopping patience (0 = off)")
    flag("optimizer", choices=("adam", "adamw", "sgd"), default="adam")
    flag("lr_scheduler", choices=("reduce_on_plateau", "cosine", "step", "none"),
         default="reduce_on_plateau")
    flag("train_on", choices=tuple(TRAIN_ON), default="auto",
         help=f"auto: the benign {units} when there are any (unknown is never benign), "
              "else all of them (unlabeled data)")
    flag("no_tensorboard", action="store_true")


def training_config(args: argparse.Namespace, base: TrainingConfig) -> TrainingConfig:
    """`base` with the flags' values."""
    if args.amp == "fp16" and args.device == "cpu":
        raise ConfigError("--amp fp16 needs CUDA (it uses a GradScaler); use --amp bf16 on "
                          "the CPU")
    return base.replace(
        model_name=args.model_name, num_epochs=args.num_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, device=args.device, seed=args.seed,
        deterministic=args.deterministic, num_threads=args.num_threads or None,
        checkpoint_dir=args.checkpoint_dir, log_dir=args.log_dir,
        early_stopping_patience=args.patience, optimizer=args.optimizer,
        lr_scheduler=args.lr_scheduler, tensorboard=not args.no_tensorboard,
        use_amp=args.amp in ("auto", "fp16", "bf16"),
        amp_dtype="bfloat16" if args.amp == "bf16" else "float16", cpu_amp=args.amp == "bf16")


def benign_units(labels: Any, benign_only: bool | None) -> bool:
    """Whether to learn from the benign units only: forced by `benign_only`, else (None) when
    there is any benign unit (Background/unknown is never benign)."""
    if benign_only is None:
        return bool((labels == 0).any())
    return bool(benign_only)


def print_results(results: dict[str, Any], units: str) -> None:
    """The CLI summary of a training run (stdout)."""
    threshold = results["threshold"]
    print(f"trained {results['epochs_trained']} epochs on {results['train_units']} {units} in "
          f"{results['train_time_s']:.1f} s; best epoch {results['best_epoch']} "
          f"(loss {results['best_val_loss']:.6g})")
    if threshold:
        print(f"anomaly threshold {threshold['value']:.6g} ({threshold['method']})")
    print(f"model: {results['checkpoint']}")
