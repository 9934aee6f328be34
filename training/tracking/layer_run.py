"""One MLflow run per trained layer: the window's part in a pipeline run or a training script.

    tracked = LayerRun.start(window, "20261206T155700.123456Z-3fa2c1 layer1", tags)
    train_layer(..., callbacks=tracked.callbacks)      # per-epoch metrics
    tracked.finish(metrics, report_folder, "layer1", registry, "layer1_vae", "1.1.0")
    # or, for a training script that registers nothing:
    tracked.finish_training(results)

Used as a context manager, a run that raises ends FAILED instead of staying RUNNING.

With no window (None, or closed) every step does nothing.
"""

from __future__ import annotations

import base64
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.tracking.mirror import CLASS_TAG, REGISTRY_TAG, mirror_version, registry_identity
from training.tracking.window import MlflowWindow
from training.trainer.callbacks import Callback

if TYPE_CHECKING:
    from training.registry.registry import ModelRegistry
    from training.trainer.config import TrainingMetrics
    from training.trainer.loop import LayerTrainer

__all__ = ["EpochMetrics", "LayerRun"]

# The report's figures are PNGs inlined in its HTML (training.evaluation.figures).
_FIGURE = re.compile(r'<img[^>]*alt="([^"]*)"[^>]*src="data:image/png;base64,([^"]+)"'
                     r'|<img[^>]*src="data:image/png;base64,([^"]+)"')


class EpochMetrics(Callback):
    """Logs every epoch's losses, learning rate and validation metrics to an MLflow run, and
    when training ends the kept (best) epoch's figures.

    The per-epoch validation loss is the curve `epoch_val_loss`; `val_loss` is the kept epoch's
    alone, the value the registry records for the model (MLflow shows a metric's last step,
    which would be the last epoch's, not the registered weights').
    """

    rank_zero_only = True  # one process logs

    def __init__(self, window: MlflowWindow, run_id: str) -> None:
        self.window = window
        self.run_id = run_id

    def on_epoch_end(self, trainer: LayerTrainer, metrics: TrainingMetrics) -> None:
        others = {k: v for k, v in metrics.val_metrics.items() if k != "val_loss"}
        values = {"train_loss": metrics.train_loss, "epoch_val_loss": metrics.val_loss,
                  "learning_rate": metrics.learning_rate, "epoch_time_s": metrics.epoch_time,
                  "grad_norm": metrics.grad_norm, **others}
        self.window.log_metrics(self.run_id, values, step=metrics.epoch)

    def on_train_end(self, trainer: LayerTrainer, history: list[TrainingMetrics]) -> None:
        """The kept epoch's figures: `best_val_loss` (the monitored value), `best_epoch`, and
        `val_loss` of that epoch, the weights that are saved and registered."""
        best = trainer.best_epoch
        kept = next((m for m in history if m.epoch == best), None)
        self.window.log_metrics(self.run_id, {
            "best_val_loss": trainer.best_val_loss, "best_epoch": best,
            "epochs_trained": trainer.epoch,
            "val_loss": None if kept is None else kept.val_loss}, step=best or 0)


@dataclass
class LayerRun:
    """An MLflow run of one layer's training (`run_id` None: not tracked)."""

    window: MlflowWindow | None = None
    run_id: str | None = None
    callbacks: list[Callback] = field(default_factory=list)
    ended: bool = False

    @classmethod
    def start(cls, window: MlflowWindow | None, name: str, tags: dict[str, str]) -> LayerRun:
        if window is None or window.closed:
            return cls()
        run_id = window.start_run(name, tags)
        if run_id is None:
            return cls()
        return cls(window, run_id, [EpochMetrics(window, run_id)])

    def __enter__(self) -> LayerRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: Any) -> None:
        """A run whose training or registration raised ends FAILED (KILLED on Ctrl-C) with the
        error as a tag, not RUNNING forever in the MLflow UI."""
        if error is None or self.window is None or self.run_id is None or self.ended:
            return
        self.window.set_tags(self.run_id, {"maximus.error": f"{kind.__name__}: {error}"[:500]})
        self._end("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    def _end(self, status: str = "FINISHED") -> None:
        self.window.end_run(self.run_id, status)
        self.ended = True

    def finish(self, metrics: dict[str, Any], report: Path | None, layer: str,
               registry: ModelRegistry, model_name: str, version: str) -> None:
        """Log the version's hyperparameters, the test metrics, the layer's report (its pages
        and figures), mirror the version into the Model Registry, and end the run."""
        window, run_id = self.window, self.run_id
        if window is None or run_id is None:
            return
        stored = registry.get_metadata(model_name, version)
        window.log_params(run_id, stored.hyperparameters)
        window.set_tags(run_id, {"maximus.version": version, "maximus.stage": stored.stage,
                                 REGISTRY_TAG: registry_identity(registry),
                                 **({} if stored.model_class is None
                                    else {CLASS_TAG: stored.model_class}),
                                 **{f"maximus.dataset.{k}": v
                                    for k, v in stored.dataset_fingerprints.items()}})
        window.log_metrics(run_id, {f"test_{k}": v for k, v in metrics.items()})
        if report is not None:
            pages = sorted(report.glob(f"{layer}.*")) + [report / "index.html"]
            window.log_files(run_id, pages, "report")
            html = report / f"{layer}.html"
            if html.is_file():
                with tempfile.TemporaryDirectory(prefix="maximus-figures-") as folder:
                    window.log_files(run_id, _figures(html, Path(folder)), "figures")
        mirror_version(window, registry, model_name, version, run_id)
        self._end()


    def finish_training(self, results: dict[str, Any]) -> None:
        """For a run that trains only (a training script): log the hyperparameters and data
        fingerprints of the saved model's sidecar, the training figures, the weights and
        sidecar as plain artifacts, and end the run."""
        import json

        from training.registry.metadata import sidecar_hyperparameters

        window, run_id = self.window, self.run_id
        if window is None or run_id is None:
            return
        weights = Path(results["checkpoint"])
        sidecar_path = weights.with_suffix(".json")
        if sidecar_path.is_file():
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
            window.log_params(run_id, sidecar_hyperparameters(sidecar))
            window.set_tags(run_id, {CLASS_TAG: sidecar.get("model_class"),
                                     **{f"maximus.dataset.{k}": v for k, v in
                                        (sidecar.get("dataset_fingerprints") or {}).items()}})
        # best_val_loss, best_epoch and the kept epoch's val_loss: EpochMetrics
        window.log_metrics(run_id, {k: results.get(k) for k in ("train_units", "train_time_s")})
        window.log_files(run_id, [weights, sidecar_path], "model")
        self._end()


def _figures(html: Path, folder: Path) -> list[Path]:
    """The report's inlined PNG figures, written to `folder` as files."""
    written = []
    for number, match in enumerate(_FIGURE.finditer(html.read_text(encoding="utf-8")), 1):
        alt, data = match.group(1) or "", match.group(2) or match.group(3)
        stem = re.sub(r"[^a-z0-9]+", "_", alt.lower()).strip("_") or "figure"
        path = folder / f"{number:02d}_{stem[:60]}.png"
        path.write_bytes(base64.b64decode(data))
        written.append(path)
    return written
