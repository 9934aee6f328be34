"""LayerTrainer speed against a plain training loop and PyTorch Lightning (CPU).

Same model (the default Layer1VAE, 128 -> 96 -> 96 -> 64), same data (synthetic 10,000 x 128
training rows in [0, 1], 2,000 validation rows), same epochs, in one process, runs of the three
interleaved so that a change of machine load hits all of them:

* baseline: in-memory tensors, one randperm per epoch and slicing, fused Adam, gradient
  clipping by norm 1.0, a validation pass per epoch, the epoch loss summed as a tensor;
* LayerTrainer: `TensorBatches` and the trainer with its defaults (ReduceLROnPlateau,
  best-checkpoint and last-state files every epoch, TensorBoard scalars, threshold
  calibration at the end), early stopping off so that every run does all epochs;
* Lightning: `lightning.Trainer` (fit with the same TensorBatches for training and
  validation, gradient_clip_val=1.0, the same fused Adam; logger, checkpoints, progress bar and
  model summary off).

Each figure is the median over `--repeats` runs of `--epochs` epochs, extrapolated to 100
epochs; wall time, and the process's CPU time (less sensitive to other processes' load).

    .venv/bin/python benchmarks/bench_trainer.py                 # batch 32 and 256, 10 epochs x 3
    .venv/bin/python benchmarks/bench_trainer.py --epochs 100 --repeats 1 --batch-sizes 32

Lightning is the optional extra `bench` (`pip install -e '.[bench]'`); without it the script says
so in one line and compares the other two.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from training.detectors.vae import Layer1VAE  # noqa: E402
from training.console.progress import set_mode as set_progress_mode  # noqa: E402
from training.trainer.batches import TensorBatches  # noqa: E402
from training.trainer.loop import LayerTrainer, TrainingConfig  # noqa: E402

ROWS, VAL_ROWS, DIM = 10_000, 2_000, 128


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows near a few prototypes with noise, clipped to [0, 1] (a learnable structure)."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(8, DIM, generator=g)
    def rows(n: int) -> torch.Tensor:
        pick = torch.randint(0, 8, (n,), generator=g)
        return (prototypes[pick] + 0.1 * torch.randn(n, DIM, generator=g)).clamp_(0, 1)
    return rows(ROWS), rows(VAL_ROWS)


def baseline(x: torch.Tensor, val: torch.Tensor, batch: int, epochs: int) -> float:
    torch.manual_seed(0)
    model = Layer1VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5, fused=True)
    n = len(x)
    for _ in range(epochs):
        model.train()
        total = torch.zeros(())
        shuffled = x[torch.randperm(n)]
        for start in range(0, n, batch):
            loss = model.training_step(shuffled[start:start + batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.detach()
        model.eval()
        with torch.no_grad():
            val_loss = sum(model.validation_step(val[i:i + 4096])["loss"]
                           for i in range(0, len(val), 4096))
        float(total), float(val_loss)  # noqa: B018 - the per-epoch read a real loop does
    return float(total) / -(-n // batch)


def layer_trainer(x: torch.Tensor, val: torch.Tensor, batch: int, epochs: int,
                  directory: str) -> float:
    torch.manual_seed(0)
    config = TrainingConfig(model_name="bench", layer_name="layer1", batch_size=batch,
                            num_epochs=epochs, early_stopping_patience=None, device="cpu",
                            checkpoint_dir=directory, log_dir=directory)
    trainer = LayerTrainer(Layer1VAE(), config=config)
    history = trainer.train(TensorBatches(x, batch_size=batch, shuffle=True),
                            TensorBatches(val, batch_size=4096))
    return history[-1].train_loss


def lightning_run(x: torch.Tensor, val: torch.Tensor, batch: int, epochs: int) -> float:
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = Layer1VAE()

        def training_step(self, batch, batch_idx):
            return self.model.training_step(batch)

        def validation_step(self, batch, batch_idx):
            return self.model.validation_step(batch)["loss"]

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3, weight_decay=1e-5, fused=True)

    torch.manual_seed(0)
    module = Module()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    trainer.fit(module, TensorBatches(x, batch_size=batch, shuffle=True),
                TensorBatches(val, batch_size=4096))
    return float(trainer.callback_metrics.get("train_loss", float("nan")))


def timed(fn, *args) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-lightning", action="store_true",
                        help="skip the Lightning comparison (skipped anyway when Lightning is "
                             "not installed)")
    args = parser.parse_args()
    if not args.no_lightning and importlib.util.find_spec("lightning") is None:
        print("Lightning is not installed (pip install -e '.[bench]' adds it): the Lightning "
              "comparison is skipped")
        args.no_lightning = True
    torch.set_num_threads(args.threads)
    set_progress_mode("off")  # no epoch bars in the timings (Lightning's is off too)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    x, val = make_data()
    scale = 100 / args.epochs
    print(f"torch {torch.__version__}, {args.threads} intra-op thread(s), load average "
          f"{os.getloadavg()[0]:.1f}; {args.epochs} epochs x {args.repeats} runs, figures "
          "per 100 epochs (median)")
    with tempfile.TemporaryDirectory() as directory:
        for batch in args.batch_sizes:
            runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "LayerTrainer": []}
            if not args.no_lightning:
                runs["Lightning"] = []
            if not args.no_lightning:  # warm up Lightning's imports outside the timings
                lightning_run(x[:256], val[:256], batch, 1)
            for _ in range(args.repeats):
                runs["baseline"].append(timed(baseline, x, val, batch, args.epochs))
                runs["LayerTrainer"].append(timed(layer_trainer, x, val, batch, args.epochs,
                                                  directory))
                if not args.no_lightning:
                    runs["Lightning"].append(timed(lightning_run, x, val, batch, args.epochs))
            base_wall = statistics.median(w for w, _ in runs["baseline"]) * scale
            base_cpu = statistics.median(c for _, c in runs["baseline"]) * scale
            for name, values in runs.items():
                wall = statistics.median(w for w, _ in values) * scale
                cpu = statistics.median(c for _, c in values) * scale
                print(f"batch {batch:4d}  {name:13s} wall {wall:7.1f} s ({wall / base_wall:4.2f}x)"
                      f"  cpu {cpu:7.1f} s ({cpu / base_cpu:4.2f}x)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
