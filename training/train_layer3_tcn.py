"""Train the layer-3 TCN: `train_layer3_tcn(...)` and `python training/train_layer3_tcn.py`.

    python training/train_layer3_tcn.py \\
        --train_data training/data/splits/layer3_train.npz \\
        --val_data training/data/splits/layer3_val.npz --num_epochs 50 --batch_size 128

The data files are entity windows saved by `Layer3Windows.save`. The run writes
`training/checkpoints/layer3_tcn_best.pt` (a plain state_dict) and `layer3_tcn_best.json`
(class, constructor arguments, the FeatureSpec with the bucket scaling fitted on the training
windows, the anomaly threshold calibrated on the validation windows, sha256), plus
`layer3_tcn_last_state.pt` for `--resume` and TensorBoard scalars under `training/logs/layer3_tcn`.
Every flag is also accepted with '-' for '_'.

Labels: the TCN learns what an entity's next bucket looks like from benign windows. By default
(`benign_only=None`) it trains on the benign windows (label 0) when there are any, and on every
window of unlabeled data otherwise; threat and unknown (Background) windows are never learnt
as normal. The validation windows keep every window: the loss of their benign windows picks
the best epoch, and all their labels set the threshold.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: sys.path[0] is training/, not the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from training.callbacks import Callback
from training.detectors.tcn import Layer3TCN
from training.errors import PipelineError
from training.features.layer3_windows import Layer3Windows
from training.layer3_data import Layer3Data, fit_layer3_scaling
from training.layer_trainer import LayerTrainer, TrainingConfig, seed_everything
from training.train_flags import (
    TRAIN_ON, add_flag, add_training_flags, benign_units, print_results, training_config,
)

__all__ = ["Layer3TCN", "default_config", "train_layer3_tcn"]

logger = logging.getLogger(__name__)

VAL_BATCH = 4096  # validation batch: results do not depend on it, fewer steps are faster


def default_config(**changes: Any) -> TrainingConfig:
    """The layer-3 TCN's TrainingConfig (model_name "layer3_tcn", 128 windows per batch)."""
    base = TrainingConfig(model_name="layer3_tcn", layer_name="layer3", seed=42, batch_size=128,
                          num_epochs=50, learning_rate=3e-3)
    return base.replace(**changes)


def train_layer3_tcn(train_windows: Layer3Windows, val_windows: Layer3Windows | None = None,
                     config: TrainingConfig | None = None, *,
                     channels: list[int] | tuple[int, ...] = (16, 16, 16, 16), kernel_size: int = 3,
                     dilations: list[int] | None = None, dropout: float = 0.1,
                     benign_only: bool | None = None, resume: bool | str | Path = False,
                     callbacks: list[Callback] | None = None,
                     ) -> tuple[Layer3TCN, dict[str, Any]]:
    """Train a Layer3TCN; returns (model with the best epoch's weights, results).

    Args:
        train_windows: training windows.
        val_windows: validation windows of the same transform (best epoch, threshold); None
            trains without validation (best = lowest training loss, no threshold).
        config: TrainingConfig; default `default_config()` (checkpoints as layer3_tcn_*).
        channels, kernel_size, dilations, dropout: the model's shape (see Layer3TCN).
        benign_only: None = benign windows when there are any, else all; True/False force it.
        resume: as `LayerTrainer.train`.
        callbacks: extra callbacks (e.g. Optuna pruning).

    Returns:
        (model, results) with results: best_val_loss, best_epoch, epochs_trained,
        final_train_loss, threshold (dict or None), checkpoint, feature_spec (the model's
        FeatureSpec), train_units (windows learnt from), history, train_time_s.

    Raises:
        SchemaError: the validation windows were made with another transform.
        ConfigError: nothing to learn from, or an invalid model argument.
    """
    config = config if config is not None else default_config()
    benign = benign_units(train_windows.labels, benign_only)
    spec = fit_layer3_scaling(train_windows, benign_only=benign)
    train = Layer3Data(train_windows, spec, benign_only=benign)
    val = Layer3Data(val_windows, spec, benign_only=benign) if val_windows is not None else None
    if config.seed is not None:
        seed_everything(config.seed)  # the model's initial weights follow the seed
    model = Layer3TCN(input_dim=train.input_dim, channels=list(channels),
                      kernel_size=kernel_size, dilations=dilations, dropout=dropout)
    trainer = LayerTrainer(model, config=config, callbacks=callbacks or (), feature_spec=spec)
    train_batches = train.batches(config.batch_size, shuffle=True, training=True,
                                  **trainer.shard_options())
    logger.info("training on %d %s windows of %d", train_batches.num_rows,
                "benign" if benign else "(all)", len(train))
    start = time.perf_counter()
    history = trainer.train(
        train_batches, val.batches(max(config.batch_size, VAL_BATCH)) if val is not None else None,
        val_labels=val.labels() if val is not None else None, resume=resume)
    results = {
        **trainer.results(history),
        "feature_spec": spec,
        "train_units": train_batches.num_rows,
        "train_time_s": time.perf_counter() - start,
    }
    return model, results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_layer3_tcn.py", description="Train the layer-3 TCN forecasting detector.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_training_flags(parser, model_name="layer3_tcn", num_epochs=50, batch_size=128,
                       learning_rate=3e-3, units="windows")
    add_flag(parser, "hidden_dim", type=int, default=16, help="channels of every block")
    add_flag(parser, "num_levels", type=int, default=4,
             help="residual blocks; block i has dilation 2**i unless --dilations is given")
    add_flag(parser, "kernel_size", type=int, default=3)
    add_flag(parser, "dilations", type=int, nargs="+", default=None,
             help="dilation of each block (as many as --num_levels)")
    add_flag(parser, "dropout", type=float, default=0.1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        config = training_config(args, default_config())
        train = Layer3Windows.load(args.train_data)
        val = Layer3Windows.load(args.val_data, train.spec) if args.val_data else None
        _, results = train_layer3_tcn(
            train, val, config, channels=[args.hidden_dim] * args.num_levels,
            kernel_size=args.kernel_size, dilations=args.dilations, dropout=args.dropout,
            benign_only=TRAIN_ON[args.train_on], resume=args.resume)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print_results(results, "windows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
