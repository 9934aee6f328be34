"""What a tuning run leaves in its study folder.

- `best_params.json`: the best trial's number, value and parameters, the trial counts by state,
  and the study's attributes (the metric, the data).
- `trials.csv`: every trial, one row each: number, state, value, start, end, duration, epochs
  reported, the worker that ran it, and one column per parameter.
- `optimization_history.png`, `param_importances.png`, `parallel_coordinate.png` (matplotlib).

Each file is written atomically. A plot that cannot be drawn yet (importances need two
finished trials with varied parameters) is skipped with its reason logged and returned. The
parallel coordinates show the parameters that vary among the complete trials: one that holds a
single value (two trials that drew the same batch size) would be an axis whose low and high
limits are equal, which shows nothing and which matplotlib warned of ("identical low and high
ylims makes transformation singular"); optuna already pads a constant objective.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from training.artifacts.atomic import atomic_write
from training.console.quiet import quiet_font_fallback
from training.tuning.workers import WORKER_ATTR

logger = logging.getLogger(__name__)

BEST_PARAMS = "best_params.json"
TRIALS_CSV = "trials.csv"
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


@dataclass
class TuningOutputs:
    """Files written (name -> path) and plots skipped (name -> reason)."""

    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial, or None while no trial has completed."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def write_outputs(study: optuna.Study, study_dir: str | Path) -> TuningOutputs:
    """Write the summary, the trials table and the plots of `study` into `study_dir`."""
    study_dir = Path(study_dir)
    outputs = TuningOutputs()
    trials = study.get_trials(deepcopy=False)
    outputs.files["best_params"] = _write_bytes(study_dir / BEST_PARAMS,
                                                json.dumps(summary(study), indent=2).encode())
    outputs.files["trials"] = _write_bytes(study_dir / TRIALS_CSV, trials_csv(trials).encode())
    drawn = draw_plots(study, {name: study_dir / f"{name}.png" for name in PLOTS})
    outputs.files.update(drawn.files)
    outputs.skipped = drawn.skipped
    return outputs


def draw_plots(study: optuna.Study, paths: dict[str, Path]) -> TuningOutputs:
    """Draw the plots named in `paths` (keys of `PLOTS`) into their files."""
    outputs = TuningOutputs()
    if best_trial(study) is None:
        outputs.skipped = {name: "no complete trial yet" for name in paths}
        logger.warning("study %s has no complete trial yet: no plots drawn", study.study_name)
        return outputs
    plots = _plots()
    with quiet_font_fallback():  # log-scale axes (learning_rate) are mathtext
        for name, path in paths.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    axes = plots[name](study)
            except (ValueError, RuntimeError) as exc:  # too few trials for this plot
                outputs.skipped[name] = str(exc)
                logger.warning("%s not drawn: %s", path, exc)
                continue
            outputs.files[name] = _save_figure(axes, path)
    return outputs


def summary(study: optuna.Study) -> dict[str, Any]:
    """What best_params.json holds."""
    best = best_trial(study)
    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    return {
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "best_trial": None if best is None else best.number,
        "best_value": None if best is None else best.value,
        "params": None if best is None else best.params,
        "best_trial_epochs": None if best is None else _epochs(best),
        "n_trials": dict(sorted(counts.items())),
        "study_attrs": study.user_attrs,
    }


def trials_csv(trials: list[FrozenTrial]) -> str:
    """All trials as CSV text, ordered by number."""
    params = sorted({name for t in trials for name in t.params})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", "state", "value", "datetime_start", "datetime_complete",
                     "duration_s", "epochs", WORKER_ATTR, *(f"param_{p}" for p in params)])
    for t in sorted(trials, key=lambda t: t.number):
        duration = t.duration.total_seconds() if t.duration is not None else None
        writer.writerow([t.number, t.state.name, _cell(t.value), _cell(t.datetime_start),
                         _cell(t.datetime_complete), _cell(duration), _epochs(t),
                         t.user_attrs.get(WORKER_ATTR, ""), *(_cell(t.params.get(p)) for p in params)])
    return buffer.getvalue()


def _epochs(trial: FrozenTrial) -> int:
    """Epochs the trial reported (its intermediate values are one per epoch)."""
    return len(trial.intermediate_values)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


def copy_file(source: Path, path: Path) -> Path:
    """Copy a written output to `path`, atomically."""
    return _write_bytes(path, Path(source).read_bytes())


def _write_bytes(path: Path, data: bytes) -> Path:
    with atomic_write(path) as handle:
        handle.write(data)
    return path


def _save_figure(axes: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    figure.set_size_inches(10, 6)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return _write_bytes(path, buffer.getvalue())


def _plots() -> dict[str, Callable[[optuna.Study], Any]]:
    # Imported when drawing: matplotlib is slow to import and workers never draw.
    from optuna.visualization import matplotlib as plots

    return {"optimization_history": plots.plot_optimization_history,
            "param_importances": plots.plot_param_importances,
            "parallel_coordinate": _parallel_coordinate}


def _parallel_coordinate(study: optuna.Study) -> Any:
    """optuna's parallel coordinates of the parameters that vary (module docstring).

    Raises:
        ValueError: no parameter takes two values among the complete trials (skipped).
    """
    from optuna.visualization import matplotlib as plots

    # the trials optuna draws: complete, with a finite value
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.value is not None and math.isfinite(t.value)]
    names = sorted({name for t in trials for name in t.params})
    varying = [name for name in names  # a trial without the parameter is a value of its own
               if len({(name in t.params, repr(t.params.get(name))) for t in trials}) > 1]
    if not varying:
        raise ValueError(f"no parameter takes two values among the {len(trials)} complete "
                         "trial(s)")
    return plots.plot_parallel_coordinate(study, params=varying)
