"""The last-state checkpoint: everything `--resume` needs to continue exactly where it stopped.

One file, `<model_name>_last_state.pt`, rewritten atomically at the end of every epoch: model,
optimizer, scheduler and GradScaler state_dicts, the callbacks' states (early stopping), the
trainer's counters and history, the best weights so far, the batches' generator state, the
random states of torch (CPU and CUDA), numpy and Python, and the fingerprint of the training
data (a resume on other data is refused). It holds only tensors and plain
containers of numbers and strings (the configuration is stored as its JSON text), so it is
read back with `torch.load(weights_only=True)`: nothing in it is executed. The serialized state
is stored with its sha256, checked before it is read: a damaged file is refused.

Files are written by a `BackgroundWriter` while the next epoch trains: serializing and fsyncing
a checkpoint costs 10-30 ms, a tenth of a small model's epoch. The trainer hands it snapshots
(`snapshot` copies every tensor), so training can change the live tensors meanwhile; a crash
still leaves the previous file intact (atomic rename), and `wait` reports any write error.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import random
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.artifacts.atomic import atomic_write
from training.artifacts.model_files import code_refusal
from training.errors import CheckpointError
from training.trainer.callbacks import restore_callback_states
from training.trainer.config import TrainingMetrics

FORMAT = "maximus.trainer_state.v2"
# What to do about a trainer state that cannot be resumed from.
RESUME_ADVICE = ("start without --resume (the run begins at epoch 1 and rewrites the file), or "
                 "delete the file")

logger = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    """The random states of torch (CPU, CUDA), numpy and Python, as tensors and containers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(gauss)],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` (tensors and plain containers) atomically to `path`, with its sha256."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    # The serialized state travels as bytes beside its digest: torch.load alone does not
    # notice a flipped bit inside tensor data.
    outer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(data).hexdigest(),
                "state": torch.frombuffer(bytearray(data), dtype=torch.uint8)}, outer)
    with atomic_write(Path(path)) as handle:
        handle.write(outer.getvalue())


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a last-state checkpoint written by `save_state`, refusing anything else.

    Raises:
        CheckpointError: missing, unreadable, damaged (sha256 mismatch), or not a trainer state.
    """
    path = Path(path)
    outer = _read_checkpoint(path, "no last-state checkpoint to resume from",
                             "the trainer state", RESUME_ADVICE)
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a trainer state (expected format {FORMAT!r})")
    data = outer["state"].numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != outer["sha256"]:
        raise CheckpointError(f"{path}: sha256 mismatch: the trainer state was damaged after "
                              f"it was written; {RESUME_ADVICE}")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:
        _refuse_code(path, exc, "a trainer state", RESUME_ADVICE)
        raise CheckpointError(f"{path}: refused to load a trainer state: {exc}") from exc


def save_weights(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    """Write a plain state_dict (on the CPU) atomically."""
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in state.items()}, buffer)
    with atomic_write(Path(path)) as handle:
        handle.write(buffer.getvalue())


def snapshot(value: Any) -> Any:
    """A copy of `value` whose tensors are detached clones (containers are copied too)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value)
    return value


class BackgroundWriter:
    """Runs file writes one at a time, in submission order, on a worker thread."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending = [f for f in self._pending if not f.done() or f.exception()]
        self._pending.append(self._pool.submit(fn, *args, **kwargs))

    def wait(self) -> None:
        """Block until every submitted write is done; raise the first write error."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def resume_path(resume: bool | str | Path | None, last_state: Path) -> Path | None:
    """The file a run continues from: `last_state` for True (None when it does not exist yet:
    a fresh start), the given path, or None for no resume."""
    if resume is False or resume is None:
        return None
    if resume is True:
        if not last_state.exists():
            logger.info("no %s to resume from; starting fresh", last_state)
            return None
        return last_state
    return Path(resume)


def load_checkpoint(trainer: Any, path: str | Path) -> int:
    """The original `LayerTrainer.load_checkpoint(path) -> epoch`, for both files it writes.

    A last-state file restores everything `load_state` restores (weights, optimizer,
    scheduler, counters, history, random states) and returns the epoch it was written after;
    `train(..., resume=path)` continues from it exactly. A model file (`<name>_best.pt`, a plain
    state_dict) loads its weights, checked against its sidecar's sha256 when it has one, and
    returns the epoch they come from (the sidecar's `best_epoch`; 0 when no sidecar records it).

    Raises:
        CheckpointError: a missing, damaged or foreign file, or weights that do not fit.
    """
    from training.artifacts.model_files import read_sidecar, read_weights, sidecar_path

    path = Path(path)
    outer = _read_checkpoint(path, "no such checkpoint", "the checkpoint",
                             "use another copy, or train again")
    if isinstance(outer, dict) and outer.get("format") == FORMAT:
        trainer.load_state(path)
        return int(trainer.epoch)
    sidecar = read_sidecar(path) if sidecar_path(path).exists() else {}
    state = read_weights(path, sidecar.get("sha256"), map_location=trainer.device)
    try:
        trainer.model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: does not fit {type(trainer.model).__name__}: {exc}") from exc
    epoch = sidecar.get("best_epoch") or sidecar.get("epoch") or 0
    logger.info("loaded the weights of %s (epoch %d)", path, epoch)
    return int(epoch)


def _with_defaults(saved: str, model: Any) -> str:
    """Saved init_args (JSON), with the constructor's default for each argument the model has
    that the checkpoint lacks (added by a later release, e.g. the layer-1 VAE's error_floor)."""
    args, mine = json.loads(saved), getattr(model, "init_args", None)
    if isinstance(args, dict) and isinstance(mine, dict):
        defaults = {name: p.default for name, p in
                    inspect.signature(type(model).__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        args = {**{k: defaults[k] for k in mine.keys() - args.keys() if k in defaults}, **args}
    return json.dumps(args, sort_keys=True)


def restore_trainer(trainer: Any, path: str | Path) -> None:
    """Continue `trainer` from a last-state checkpoint of the same model class and arguments,
    trained on the same training data (when the state records its fingerprint)."""
    path = Path(path)
    state = load_state(path, map_location=trainer.device)
    init_args = json.dumps(getattr(trainer.model, "init_args", None), sort_keys=True)
    if state["model_class"] != type(trainer.model).__name__ or _with_defaults(
            state["init_args"], trainer.model) != init_args:
        raise CheckpointError(f"{path}: saved for {state['model_class']}{state['init_args']}"
                              f", not {type(trainer.model).__name__}{init_args}; resume with "
                              "the same model settings or start without --resume")
    _require_same_data(path, state.get("data_fingerprints"), trainer.data_fingerprints)
    saved_cfg = json.loads(state["config"])
    changed = sorted(k for k, v in trainer.config.to_dict().items()
                     if saved_cfg.get(k) != v and k != "num_epochs")
    if changed:
        logger.warning("resuming %s with changed settings: %s", path, ", ".join(changed))
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and state["scheduler"] is not None:
        trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler is not None and state["scaler"] is not None:
        trainer.scaler.load_state_dict(state["scaler"])
    restore_callback_states(trainer.callbacks, state["callbacks"])
    trainer.epoch = int(state["epoch"])
    trainer.best_val_loss, trainer.best_epoch = float(state["best_val_loss"]), state["best_epoch"]
    trainer._best_state = state["best_state"]
    trainer.should_stop = bool(state["should_stop"])
    trainer.history = [TrainingMetrics(**m) for m in state["history"]]
    if state["data"] is not None and hasattr(trainer._train_data, "load_state_dict"):
        trainer._train_data.load_state_dict(state["data"])
    set_rng_state(state["rng"])
    logger.info("resumed %s at epoch %d", path, trainer.epoch)


def _require_same_data(path: Path, saved: dict[str, str] | None,
                       this_run: dict[str, str]) -> None:
    """Refuse to continue on other training data than the state's: the epochs done would
    have learnt from one set and the rest from another. States written before they recorded
    their data's fingerprint (and trainers not told theirs) resume as before."""
    old, new = (saved or {}).get("train"), this_run.get("train")
    if old is None or new is None or old == new:
        return
    raise CheckpointError(f"{path}: saved by a run on other training data (fingerprint "
                          f"{old[:12]}) than this run's ({new[:12]}); resume with the training "
                          f"data it started on, or {RESUME_ADVICE}")


def _read_checkpoint(path: Path, missing: str, what: str, advice: str) -> Any:
    """`torch.load` of `path` with weights_only (no code runs), its failures as CheckpointError
    naming the file and what to do (`advice`)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {missing}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not {what}") from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, OSError
        _refuse_code(path, exc, what, advice)
        if not zipfile.is_zipfile(path):  # torch writes zip archives: this one lost its end
            raise CheckpointError(
                f"{path}: {what} is damaged or truncated ({path.stat().st_size:,} bytes, not "
                f"a whole file); {advice}") from exc
        raise CheckpointError(f"{path}: refused to load {what}: {exc}; {advice}") from exc


def _refuse_code(path: Path, exc: Exception, what: str, advice: str) -> None:
    """Raise `training.artifacts.model_files.code_refusal` when `exc` is weights_only refusing
    code or objects in the file (PyTorch's text advises an unsafe retry: it is not chained)."""
    refusal = code_refusal(path, exc, f"{what} must hold tensors and plain values only", advice)
    if refusal is not None:
        raise refusal from None
