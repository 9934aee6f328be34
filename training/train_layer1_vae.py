"""Train the layer-1 VAE: `train_layer1_vae(...)` and `python training/train_layer1_vae.py`.

    python training/train_layer1_vae.py \\
        --train_data training/data/splits/layer1_train.npz \\
        --val_data training/data/splits/layer1_val.npz --num_epochs 100 --batch_size 32

writes `training/checkpoints/layer1_vae_best.pt` (a plain state_dict: the original
`Layer1VAE().load_state_dict(torch.load(path))` works) and `layer1_vae_best.json` (class,
constructor arguments, the training split's FeatureSpec, the anomaly threshold calibrated on
the validation split, sha256), plus `layer1_vae_last_state.pt` for `--resume` and TensorBoard
scalars under `training/logs/layer1_vae`. Every flag is also accepted with '-' for '_'.
`torchrun --nproc-per-node N training/train_layer1_vae.py ...` trains on N processes.

Labels: the VAE is a semi-supervised anomaly detector. By default (`benign_only=None`), when
the training labels hold both benign (0) and threat (1) rows it trains on the benign rows only
(unknown -1 rows are left out too); otherwise (all benign, all unknown, ...) it keeps every
row. When training on benign rows, the validation loss (which picks the best epoch, drives the
scheduler and early stopping) is measured on the benign validation rows, the same objective on
held-out data; the threshold is calibrated on every validation row with its label (best F1
when both classes are present, else the 99th percentile of benign scores).
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

import numpy as np
import torch

from training.batches import TensorBatches
from training.callbacks import Callback
from training.detectors.vae import Layer1VAE
from training.errors import ConfigError, PipelineError, SchemaError, SourceError
from training.features.encoding import SPEC_FIELD, FeatureSpec
from training.layer_trainer import LayerTrainer, TrainingConfig, seed_everything

__all__ = ["Layer1VAE", "default_config", "read_split", "train_layer1_vae"]

logger = logging.getLogger(__name__)

VAL_BATCH = 4096  # validation batch: results do not depend on it, fewer steps are faster


def default_config(**changes: Any) -> TrainingConfig:
    """The layer-1 VAE's TrainingConfig (model_name "layer1_vae", seed 42), with `changes`."""
    return TrainingConfig(model_name="layer1_vae", layer_name="layer1", seed=42).replace(**changes)


def read_split(path: str | Path) -> tuple[np.ndarray, np.ndarray, FeatureSpec | None]:
    """(features float32 (n, d), labels (n,), FeatureSpec or None) of a split file."""
    try:
        from training.dataset_builder import DatasetSplit
    except ImportError:  # the datasets module is not there: read the same npz fields directly
        return _read_npz(Path(path))
    split = DatasetSplit.load(path)
    return split.features, split.labels, split.spec


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, FeatureSpec | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise SourceError(f"{path}: not a readable .npz of plain arrays ({exc})") from exc
    missing = [k for k in ("features", "labels") if k not in arrays]
    if missing:
        raise SchemaError(f"{path}: no {' or '.join(missing)} array (keys: {sorted(arrays)})")
    spec = FeatureSpec.from_npz(arrays, str(path)) if SPEC_FIELD in arrays else None
    return arrays["features"].astype(np.float32, copy=False), arrays["labels"], spec


def _check_features(name: str, features: np.ndarray, labels: np.ndarray | None,
                    input_dim: int) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != input_dim:
        raise SchemaError(f"{name} must have shape (rows, {input_dim}), got {features.shape}")
    if len(features) == 0:
        raise SchemaError(f"{name} has no rows")
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if len(bad):
        raise SchemaError(f"{name} has NaN or infinite values in {len(bad)} rows (first: row "
                          f"{bad[0]}); clean or re-featurize the data")
    if labels is not None and len(labels) != len(features):
        raise SchemaError(f"{name}: {len(labels)} labels for {len(features)} rows")
    return features


def _training_rows(labels: np.ndarray | None, benign_only: bool | None) -> np.ndarray | None:
    """Row mask of the training rows, or None for all (see the module docstring)."""
    if labels is None or benign_only is False:
        return None
    labels = np.asarray(labels)
    if benign_only is None and not ((labels == 0).any() and (labels == 1).any()):
        return None
    keep = labels == 0
    if not keep.any():
        raise ConfigError("benign_only=True but the training labels have no benign (0) row")
    return keep


def train_layer1_vae(train_features: np.ndarray, train_labels: np.ndarray | None = None,
                     val_features: np.ndarray | None = None,
                     val_labels: np.ndarray | None = None,
                     config: TrainingConfig | None = None, beta: float = 1.0, *,
                     hidden_dim: int | list[int] = 96, latent_dim: int = 64,
                     dropout: float = 0.2, model_args: dict[str, Any] | None = None,
                     feature_spec: FeatureSpec | None = None, benign_only: bool | None = None,
                     resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
                     ) -> tuple[Layer1VAE, dict[str, Any]]:
    """Train a Layer1VAE; returns (model with the best epoch's weights, results).

    Args:
        train_features, train_labels: (n, 128) features in [0, 1]; labels -1/0/1 or None.
        val_features, val_labels: validation split (picks the best epoch, calibrates the
            threshold); None trains without validation (best = lowest training loss).
        config: TrainingConfig; default `default_config()` (checkpoints as layer1_vae_*).
        beta: weight of the KL term.
        hidden_dim, latent_dim, dropout: the model's sizes (hidden_dim may be a list).
        model_args: further Layer1VAE arguments (num_hidden_layers, reconstruction, score).
        feature_spec: the FeatureSpec of the features, written into the sidecar.
        benign_only: None = benign rows only when train_labels has both 0 and 1; True/False
            force it.
        resume: as `LayerTrainer.train`.
        callbacks: extra callbacks (e.g. Optuna pruning).

    Returns:
        (model, results) with results: best_val_loss, best_epoch, epochs_trained,
        final_train_loss, threshold (dict or None), checkpoint (path of the best weights,
        written by process 0), train_rows, history (list of per-epoch dicts), train_time_s.
    """
    config = config if config is not None else default_config()
    args = {"input_dim": int(np.shape(train_features)[-1]), "hidden_dim": hidden_dim,
            "latent_dim": latent_dim, "dropout": dropout, "beta": beta, **(model_args or {})}
    train_features = _check_features("train_features", train_features, train_labels,
                                     args["input_dim"])
    keep = _training_rows(train_labels, benign_only)
    if keep is not None:
        logger.info("training on the %d benign rows of %d", int(keep.sum()), len(keep))
        train_features = train_features[keep]
    val_loss_features = val_features
    if val_features is not None:
        val_features = _check_features("val_features", val_features, val_labels,
                                       args["input_dim"])
        val_loss_features = val_features
        if keep is not None and val_labels is not None:
            val_keep = np.asarray(val_labels) == 0
            if val_keep.any():  # the validation loss measures what training optimises
                val_loss_features = val_features[val_keep]
    if config.seed is not None:
        seed_everything(config.seed)  # the model's initial weights follow the seed
    model = Layer1VAE(**args)
    trainer = LayerTrainer(model, config=config, callbacks=callbacks or (),
                           feature_spec=feature_spec)
    train_data = TensorBatches(torch.from_numpy(train_features), batch_size=config.batch_size,
                               shuffle=True, rank=trainer.rank, world_size=trainer.world_size,
                               seed=None if trainer.world_size == 1 else (config.seed or 0))
    val_data = threshold_data = None
    if val_features is not None:
        val_batch = max(config.batch_size, VAL_BATCH)
        val_data = TensorBatches(torch.from_numpy(val_loss_features), batch_size=val_batch)
        threshold_data = TensorBatches(torch.from_numpy(val_features), batch_size=val_batch)
    start = time.perf_counter()
    history = trainer.train(train_data, val_data, threshold_data=threshold_data, resume=resume,
                            val_labels=None if val_labels is None else np.asarray(val_labels))
    results = {
        **trainer.results(history),
        "train_rows": len(train_features),
        "train_time_s": time.perf_counter() - start,
    }
    return model, results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_layer1_vae.py", description="Train the layer-1 VAE anomaly detector.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    def flag(name: str, **kwargs: Any) -> None:
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        p.add_argument(*names, dest=name, **kwargs)

    flag("train_data", required=True, help="training split (.npz with features, labels)")
    flag("val_data", default=None, help="validation split (best epoch and threshold)")
    flag("num_epochs", type=int, default=100)
    flag("batch_size", type=int, default=32)
    flag("hidden_dim", type=int, default=96)
    flag("latent_dim", type=int, default=64)
    flag("dropout", type=float, default=0.2)
    flag("beta", type=float, default=1.0, help="weight of the KL term")
    flag("learning_rate", type=float, default=1e-3)
    flag("amp", choices=("auto", "off", "fp16", "bf16"), default="auto",
         help="mixed precision: auto = fp16 with GradScaler on CUDA, off on the CPU; "
              "bf16 also works on the CPU")
    flag("device", default="auto", help="auto, cpu, cuda or cuda:N")
    flag("seed", type=int, default=42)
    flag("resume", action="store_true",
         help="continue from <checkpoint_dir>/<model_name>_last_state.pt when it exists")
    flag("deterministic", action="store_true", help="deterministic algorithms only")
    flag("num_threads", type=int, default=1,
         help="torch intra-op threads (1 is as fast for this small model and robust to load; "
              "0 = torch's default)")
    flag("checkpoint_dir", default=None, help="default: training/checkpoints")
    flag("log_dir", default=None, help="default: training/logs")
    flag("model_name", default="layer1_vae")
    flag("patience", type=int, default=10, help="early-stopping patience (0 = off)")
    flag("optimizer", choices=("adam", "adamw", "sgd"), default="adam")
    flag("lr_scheduler", choices=("reduce_on_plateau", "cosine", "step", "none"),
         default="reduce_on_plateau")
    flag("train_on", choices=("auto", "benign", "all"), default="auto",
         help="auto: benign rows only when the training labels have both 0 and 1")
    flag("no_tensorboard", action="store_true")
    return p


def _config(args: argparse.Namespace) -> TrainingConfig:
    if args.amp == "fp16" and (args.device == "cpu" or not torch.cuda.is_available()):
        raise ConfigError("--amp fp16 needs CUDA (it uses a GradScaler); use --amp bf16 on "
                          "the CPU")
    return default_config(
        model_name=args.model_name, num_epochs=args.num_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, device=args.device, seed=args.seed,
        deterministic=args.deterministic, num_threads=args.num_threads or None,
        checkpoint_dir=args.checkpoint_dir, log_dir=args.log_dir,
        early_stopping_patience=args.patience, optimizer=args.optimizer,
        lr_scheduler=args.lr_scheduler, tensorboard=not args.no_tensorboard,
        use_amp=args.amp in ("auto", "fp16", "bf16"),
        amp_dtype="bfloat16" if args.amp == "bf16" else "float16", cpu_amp=args.amp == "bf16")


def main(argv: list[str] | None = None, *, callbacks: list[Callback] | None = None) -> int:
    """The command line; `callbacks` are passed to the trainer (for tests and wrappers)."""
    args = _parser().parse_args(argv)
    # one log per run: processes other than torchrun's rank 0 log warnings only
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s")
    try:
        config = _config(args)
        train_x, train_y, spec = read_split(args.train_data)
        val_x = val_y = None
        if args.val_data:
            val_x, val_y, val_spec = read_split(args.val_data)
            if spec is not None and val_spec is not None:
                spec.require(val_spec, f"validation split {args.val_data}")
        _, results = train_layer1_vae(
            train_x, train_y, val_x, val_y, config, beta=args.beta, hidden_dim=args.hidden_dim,
            latent_dim=args.latent_dim, dropout=args.dropout, feature_spec=spec,
            benign_only={"auto": None, "benign": True, "all": False}[args.train_on],
            resume=args.resume, callbacks=callbacks)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        threshold = results["threshold"]
        print(f"trained {results['epochs_trained']} epochs on {results['train_rows']} rows in "
              f"{results['train_time_s']:.1f} s; best epoch {results['best_epoch']} "
              f"(loss {results['best_val_loss']:.6g})")
        if threshold:
            print(f"anomaly threshold {threshold['value']:.6g} ({threshold['method']})")
        print(f"model: {results['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
