"""Samplers, pruners and opening a study: what every worker process builds for itself.

Samplers and pruners are registries (plain dicts of builders), so `TuningConfig` validates a
name against them and a wrong name lists the valid ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from training.errors import ConfigError
from training.tuning.storage import StorageSpec

if TYPE_CHECKING:
    from training.tuning.tuner import TuningConfig

logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _tpe(config: TuningConfig, parallel: bool, seed: int | None) -> optuna.samplers.BaseSampler:
    # Multivariate TPE models the parameters jointly (learning rate and batch size interact).
    # With trials in parallel, the constant liar counts running trials as bad results, so
    # workers do not all sample the same promising point.
    return optuna.samplers.TPESampler(multivariate=True, constant_liar=parallel, seed=seed,
                                      n_startup_trials=config.sampler_n_startup_trials)


def _random(config: TuningConfig, parallel: bool, seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _median(config: TuningConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=config.pruner_n_startup_trials,
                                       n_warmup_steps=config.pruner_n_warmup_steps)


def _hyperband(config: TuningConfig) -> optuna.pruners.BasePruner:
    # Steps are epochs; no trial is stopped before the warm-up epochs (at least one). Without
    # a maximum, Hyperband takes the epochs of the first trial that finishes (fewer than the
    # limit if early stopping ended it).
    low, high = max(1, config.pruner_n_warmup_steps), config.pruner_max_steps
    return optuna.pruners.HyperbandPruner(min_resource=low if high is None else min(low, high),
                                          max_resource=high or "auto")


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {"tpe": _tpe, "random": _random}
PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": _median, "hyperband": _hyperband}


def make_sampler(config: TuningConfig, parallel: bool, worker_index: int = 0,
                 n_existing: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler.

    A seeded sampler is seeded from (seed, worker index, trials already in the study), so
    seeded workers do not repeat each other, nor a resumed study its first trials.
    """
    seed = None
    if config.seed is not None:
        seed = (config.seed * 1_000_003 + worker_index * 10_007 + n_existing) % 2**32
    return SAMPLERS[config.sampler](config, parallel, seed)


def make_pruner(config: TuningConfig) -> optuna.pruners.BasePruner:
    if not config.use_pruner:
        return optuna.pruners.NopPruner()
    return PRUNERS[config.pruner](config)


def open_study(config: TuningConfig, storage: StorageSpec, *, parallel: bool,
               worker_index: int = 0) -> optuna.Study:
    """Create the study, or load it when it exists (how an interrupted study resumes).

    Raises:
        ConfigError: the stored study optimises in the other direction.
    """
    study = optuna.create_study(
        study_name=config.study_name, storage=storage.open(), direction=config.direction,
        sampler=optuna.samplers.RandomSampler(), pruner=make_pruner(config),
        load_if_exists=True)
    study.sampler = make_sampler(config, parallel, worker_index,
                                 len(study.get_trials(deepcopy=False)))
    stored = study.direction.name.lower()
    if stored != config.direction:
        raise ConfigError(f"study {config.study_name!r} in {storage.describe()} was created to "
                          f"{stored}, but direction={config.direction!r}; use another study_name")
    return study


def n_finished(study: optuna.Study) -> int:
    """Trials that count towards n_trials: complete or pruned (failed ones are retried)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))
