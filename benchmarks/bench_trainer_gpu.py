"""LayerTrainer on a GPU: eager fp32, AMP (fp16 + GradScaler, bf16) and the CUDA-graph step.

The default Layer1VAE on 10,000 x 128 rows (2,000 validation rows), GPU-resident data, batch 32
and 256. Each variant trains `--epochs` epochs through LayerTrainer; the figure is the median
epoch time after the first epoch (which includes the capture) times 100, with the last
epoch's training loss (the variants should agree to within run-to-run noise). A plain eager
loop (randperm slicing, fused Adam, clipping, per-epoch validation) is the baseline.

    .venv/bin/python benchmarks/bench_trainer_gpu.py                  # about 3-4 minutes on an H100
    .venv/bin/python benchmarks/bench_trainer_gpu.py --epochs 20 --batch-sizes 32

Writes a JSON of the figures to $OUT/bench_trainer_gpu.json when OUT is set.
"""

from __future__ import annotations

import argparse
import json
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
from training.trainer.batches import TensorBatches  # noqa: E402
from training.console.progress import set_mode as set_progress_mode  # noqa: E402
from training.trainer.loop import LayerTrainer, TrainingConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_trainer import make_data  # noqa: E402

VARIANTS = {  # name: TrainingConfig changes
    "eager fp32": {"cuda_graph": False, "use_amp": False},
    "eager AMP fp16 + GradScaler": {"cuda_graph": False, "use_amp": True,
                                    "amp_dtype": "float16"},
    "eager AMP bf16": {"cuda_graph": False, "use_amp": True, "amp_dtype": "bfloat16"},
    "captured fp32": {"cuda_graph": True, "use_amp": False},
    "captured bf16": {"cuda_graph": True, "use_amp": True, "amp_dtype": "bfloat16"},
    # fp16 needs the GradScaler, whose step is not captured: the trainer runs it eagerly
    "captured fp16 (falls back to eager)": {"cuda_graph": True, "use_amp": True,
                                            "amp_dtype": "float16"},
}


def baseline(x: torch.Tensor, val: torch.Tensor, batch: int, epochs: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = Layer1VAE().cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5, fused=True)
    times, n = [], len(x)
    for _ in range(epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.train()
        total = torch.zeros((), device="cuda")
        shuffled = x[torch.randperm(n, device="cuda")]
        for i in range(0, n, batch):
            loss = model.training_step(shuffled[i:i + batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.detach()
        model.eval()
        with torch.no_grad():
            float(model.validation_step(val)["loss"])
        loss = float(total) / -(-n // batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * 100, loss


def trainer_run(x: torch.Tensor, val: torch.Tensor, batch: int, epochs: int,
                changes: dict, directory: str) -> tuple[float, float, bool]:
    torch.manual_seed(0)
    config = TrainingConfig(model_name="bench", batch_size=batch, num_epochs=epochs,
                            early_stopping_patience=None, device="cuda",
                            checkpoint_dir=directory, log_dir=directory, **changes)
    trainer = LayerTrainer(Layer1VAE(), config=config)
    history = trainer.train(TensorBatches(x, batch_size=batch, shuffle=True),
                            TensorBatches(val, batch_size=4096))
    epoch_times = [m.epoch_time for m in history]
    return (statistics.median(epoch_times[1:]) * 100, history[-1].train_loss,
            trainer._captured is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark needs a GPU")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("training.trainer.loop").setLevel(logging.INFO)
    set_progress_mode("off")  # no epoch bars in the timings
    x, val = (t.cuda() for t in make_data())
    gpu = torch.cuda.get_device_name()
    print(f"{gpu}, torch {torch.__version__}; {args.epochs} epochs per variant, "
          "seconds per 100 epochs (median epoch after the first x 100)")
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for batch in args.batch_sizes:
            wall, loss = baseline(x, val, batch, args.epochs)
            results.append({"batch": batch, "variant": "plain eager loop", "s_per_100": wall,
                            "final_loss": loss, "captured": False})
            for name, changes in VARIANTS.items():
                wall, loss, captured = trainer_run(x, val, batch, args.epochs, changes, directory)
                results.append({"batch": batch, "variant": f"LayerTrainer {name}",
                                "s_per_100": wall, "final_loss": loss, "captured": captured})
            for r in results:
                if r["batch"] == batch:
                    print(f"batch {batch:4d}  {r['variant']:50s} {r['s_per_100']:7.1f} s  "
                          f"loss {r['final_loss']:.4f}  captured={r['captured']}")
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"]) / "bench_trainer_gpu.json"
        path.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__,
                                    "epochs": args.epochs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
