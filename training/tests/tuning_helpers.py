"""Objectives for the tuner's tests, at module level so worker processes can unpickle them."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna


@dataclass(frozen=True)
class RecordingObjective:
    """(x - 3)^2, writing each trial's number and x to `log_dir/trials-<pid>.txt`.

    The first trial of each process waits until `barrier` processes have started one, so every
    worker of a test provably runs trials at the same time as the others.
    """

    log_dir: str
    barrier: int = 1

    def __call__(self, trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10.0, 10.0)
        log = Path(self.log_dir)
        started = log / f"started-{os.getpid()}"
        if not started.exists():
            started.touch()
            give_up = time.monotonic() + 120
            while len(list(log.glob("started-*"))) < self.barrier:
                if time.monotonic() > give_up:
                    raise RuntimeError(f"only {len(list(log.glob('started-*')))} of "
                                       f"{self.barrier} workers started a trial")
                time.sleep(0.02)
        with open(log / f"trials-{os.getpid()}.txt", "a") as handle:
            handle.write(f"{trial.number} {x!r}\n")
        return (x - 3.0) ** 2


def recorded_trials(log_dir: str | Path) -> list[tuple[int, int, float]]:
    """(pid, trial number, x) of every line the RecordingObjective wrote."""
    rows = []
    for path in Path(log_dir).glob("trials-*.txt"):
        pid = int(path.stem.split("-")[1])
        for line in path.read_text().splitlines():
            number, x = line.split()
            rows.append((pid, int(number), float(x)))
    return rows


def write_layer1_splits(folder: Path, n_train: int = 96, seed: int = 7) -> tuple[str, str]:
    """Small layer-1 train/val split files: benign rows near one pattern, threats uniform.

    Validation: 30 benign, 8 threat and 2 unknown rows.
    """
    rng = np.random.default_rng(seed)
    pattern = rng.random(128).astype(np.float32)

    def rows(labels: np.ndarray) -> np.ndarray:
        x = np.clip(pattern + rng.normal(0, 0.05, (len(labels), 128)), 0, 1).astype(np.float32)
        x[labels == 1] = rng.random((int((labels == 1).sum()), 128))
        return x

    train_y = np.zeros(n_train, dtype=np.int8)
    val_y = np.array([0] * 30 + [1] * 8 + [-1] * 2, dtype=np.int8)
    np.savez(folder / "train.npz", features=rows(train_y), labels=train_y)
    np.savez(folder / "val.npz", features=rows(val_y), labels=val_y)
    return str(folder / "train.npz"), str(folder / "val.npz")


@dataclass(frozen=True)
class FailingObjective:
    """Samples x, then raises ValueError("boom"): a bug in an objective."""

    def __call__(self, trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        raise ValueError("boom")
