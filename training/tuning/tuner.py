"""Hyperparameter tuning on Optuna: `TuningConfig`, `HyperparameterTuner(config).tune(objective)`.

A study is a name in a storage (see `training.tuning.storage`): SQLite by default, a journal file
when several local worker processes share it, PostgreSQL when several machines do. Tuning the
same study again resumes it: finished trials are kept, and only the trials still missing from
`n_trials` run. Trials report their validation metric every epoch, and the pruner (median or
Hyperband) stops the unpromising ones there (`training.tuning.pruning`).

The original command line is `python training/hyperparameter_tuner.py` (see `training.cli.tune`)::

    python training/hyperparameter_tuner.py --train_data training/data/splits/layer1_train.npz \\
        --val_data training/data/splits/layer1_val.npz --n_trials 50 --study_name layer1_vae_tuning
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from training.errors import ConfigError
from training.console.progress import progress
from training.tuning.outputs import (
    TuningOutputs, best_trial, copy_file, draw_plots, write_outputs,
)
from training.tuning.storage import StorageSpec, resolve_storage
from training.tuning.study import PRUNERS, SAMPLERS, n_finished, open_study
from training.tuning.workers import (
    LocalBudget, Objective, fail_orphaned_trials, run_trials, run_worker_processes, worker_name)
from training.paths import tuning_dir

logger = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class TuningConfig:
    """How to run a study.

    Args:
        study_name: the study's name in its storage, and its folder under `output_dir`.
        direction: "minimize" (a loss) or "maximize" (e.g. PR-AUC).
        n_trials: finished (complete or pruned) trials the study should have; a resumed study
            runs only the missing ones.
        timeout: seconds after which no new trial starts (None: no limit).
        sampler: "tpe" (multivariate; constant liar when trials run in parallel) or "random".
        use_pruner: stop unpromising trials at the epoch they report.
        pruner_n_startup_trials: trials that run to the end before the median pruner prunes.
        pruner_n_warmup_steps: epochs a trial always runs before it can be pruned.
        storage_url: see `training.tuning.storage`; None picks SQLite or a journal file in the
            study folder.
        output_dir: parent of the study folder, text or `pathlib.Path` (default:
            `training/tuning` under MAXIMUS_DATA_ROOT's root).
        pruner: "median" or "hyperband".
        n_workers: worker processes this command starts (1: trials run in this process).
        seed: sampler seed (worker i uses seed + i); None: not reproducible.
        sampler_n_startup_trials: random trials before TPE starts modelling.
        pruner_max_steps: the most epochs a trial runs (Hyperband's maximum budget); None lets
            Hyperband take it from the first finished trial.
    """

    study_name: str
    direction: str = "minimize"
    n_trials: int = 50
    timeout: float | None = None
    sampler: str = "tpe"
    use_pruner: bool = True
    pruner_n_startup_trials: int = 5
    pruner_n_warmup_steps: int = 10
    storage_url: str | None = None
    output_dir: str | Path = field(default_factory=lambda: str(tuning_dir()))
    pruner: str = "median"
    n_workers: int = 1
    seed: int | None = None
    sampler_n_startup_trials: int = 10
    pruner_max_steps: int | None = None

    def __post_init__(self) -> None:
        name = self.study_name
        if not isinstance(name, str) or not name.strip() or name in (".", "..") \
                or any(sep in name for sep in ("/", "\\")):
            raise ConfigError(f"study_name must be a non-empty name without path separators, "
                              f"got {name!r}")
        _choice("direction", self.direction, DIRECTIONS)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("pruner", self.pruner, PRUNERS)
        for name, value, low in (("n_trials", self.n_trials, 1), ("n_workers", self.n_workers, 1),
                                 ("pruner_n_startup_trials", self.pruner_n_startup_trials, 0),
                                 ("pruner_n_warmup_steps", self.pruner_n_warmup_steps, 0),
                                 ("sampler_n_startup_trials", self.sampler_n_startup_trials, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.pruner_max_steps is not None and (
                isinstance(self.pruner_max_steps, bool) or not isinstance(self.pruner_max_steps, int)
                or self.pruner_max_steps < 1):
            raise ConfigError(f"pruner_max_steps must be an integer >= 1 or None, got "
                              f"{self.pruner_max_steps!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds or None, got {self.timeout!r}")

    @property
    def study_dir(self) -> Path:
        return Path(self.output_dir) / self.study_name


def _choice(name: str, value: Any, valid: Any) -> None:
    if value not in valid:
        raise ConfigError(f"{name} must be one of {', '.join(valid)}, got {value!r}")


@dataclass(eq=False)
class TuningResult(Mapping):
    """What `tune` returns: the study as stored, its best trial and the files written; read
    as a mapping, the original `tune()` dict (`to_dict`: `in`, `get`, `keys`, `dict(result)`).

    Attributes:
        study: the study, reloaded from its storage after every worker ended.
        best_params: the best complete trial's parameters (None if no trial completed).
        best_value: its objective value.
        best_trial: its number.
        ran: trials started by this call (a resumed study's earlier trials not included).
        seconds: wall time of this call's trials.
        outputs: files written and plots skipped.
    """

    study: optuna.Study
    best_params: dict[str, Any] | None
    best_value: float | None
    best_trial: int | None
    ran: int
    seconds: float
    outputs: TuningOutputs

    def count(self, state: optuna.trial.TrialState) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(state,)))

    def to_dict(self) -> dict[str, Any]:
        """The original `tune()` result: best_params, best_value, best_trial_number, n_trials
        (every trial of the study) and study; plus the files written."""
        return {"best_params": self.best_params, "best_value": self.best_value,
                "best_trial_number": self.best_trial, "n_trials": len(self.study.trials),
                "study": self.study, "files": {k: str(v) for k, v in self.outputs.files.items()}}

    def __getitem__(self, key: str) -> Any:
        """`result["best_params"]` and the other keys of `to_dict`, as the original read it."""
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


class HyperparameterTuner:
    """Runs an objective over a study with the configured sampler, pruner, storage and workers.

    Args:
        config: the study settings.
    """

    def __init__(self, config: TuningConfig) -> None:
        if not isinstance(config, TuningConfig):
            raise ConfigError(f"config must be a TuningConfig, got {type(config).__name__}")
        self.config = config
        self.storage: StorageSpec = resolve_storage(config.storage_url, config.n_workers,
                                                    config.study_dir)
        self._drawn: tuple[int, dict[str, Path]] | None = None  # (trials, plots) of `tune`

    @property
    def parallel(self) -> bool:
        """Whether trials may run at the same time (other workers, other machines)."""
        return self.config.n_workers > 1 or self.storage.shared_across_machines

    def load_study(self) -> optuna.Study:
        """The study, created on first use."""
        return open_study(self.config, self.storage, parallel=self.parallel)

    def load_study_for(self, objective: Any) -> optuna.Study:
        """The study with `objective` recorded in it, or checked against what its trials were
        measured with (`objective.attach`).

        Raises:
            ConfigError: the study's trials do not compare with this objective's; a study
                that optimises the other way is refused naming the metric (and the data) that
                changed, not only the direction that follows from them.
        """
        try:
            study = self.load_study()
        except ConfigError:  # the other direction: say why, from what the study recorded
            objective.attach(optuna.load_study(study_name=self.config.study_name,
                                               storage=self.storage.open()))
            raise
        objective.attach(study)
        return study

    def visualize(self) -> dict[str, Path]:
        """The original plots: `<study>_history.png`, `<study>_importances.png` and
        `<study>_parallel.png` in `output_dir` (a plot that cannot be drawn yet is skipped,
        with its reason logged). `tune` draws the same ones in the study folder.

        Returns:
            plot name -> file written.
        """
        name, folder = self.config.study_name, Path(self.config.output_dir)
        paths = {"optimization_history": folder / f"{name}_history.png",
                 "param_importances": folder / f"{name}_importances.png",
                 "parallel_coordinate": folder / f"{name}_parallel.png"}
        study = self.load_study()
        if self._drawn is not None and self._drawn[0] == len(study.trials):
            # `tune` drew these plots of this very study: copied, not drawn again.
            return {name: copy_file(drawn, paths[name]) for name, drawn in self._drawn[1].items()
                    if name in paths}
        return draw_plots(study, paths).files

    def tune(self, objective: Objective) -> TuningResult:
        """Run the trials still missing from `n_trials`, then write the study's outputs.

        Args:
            objective: `objective(trial) -> float`, reporting one value per epoch
                (`trial.report`) for pruning. With several workers it must be picklable.

        Returns:
            The study, its best trial and the files written to `config.study_dir`.
        """
        config = self.config
        study = self.load_study()
        fail_orphaned_trials(study)
        done = n_finished(study)
        left = max(0, config.n_trials - done)
        logger.info("study %s in %s: %d of %d trials finished, running %d with %d worker(s)",
                    config.study_name, self.storage.describe(), done, config.n_trials, left,
                    config.n_workers)
        start = time.time()
        deadline = None if config.timeout is None else start + config.timeout
        # Counted over the study: a resumed one reads "50/50 trials", not "0/0" (trial S).
        with progress(f"tuning {config.study_name}", config.n_trials, "trials",
                      initial=min(done, config.n_trials)) as bar:
            if config.n_workers == 1:
                ran = run_trials(study, objective, LocalBudget(left), config.n_trials, deadline,
                                 worker_name(0), on_trial=bar.update)
            else:
                def finished() -> None:  # trials the workers finished since they started
                    bar.update(max(0, n_finished(study) - bar.n))

                ran = run_worker_processes(config, self.storage, objective, left, deadline,
                                           on_wait=finished)
        seconds = time.time() - start
        study = optuna.load_study(study_name=config.study_name, storage=self.storage.open())
        outputs = write_outputs(study, config.study_dir)
        self._drawn = (len(study.trials), dict(outputs.files))
        best = best_trial(study)
        return TuningResult(study=study, best_params=None if best is None else best.params,
                            best_value=None if best is None else best.value,
                            best_trial=None if best is None else best.number,
                            ran=ran,
                            seconds=seconds, outputs=outputs)

