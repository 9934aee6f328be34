"""A tuning study in MLflow: one run per study, one nested run per finished trial.

    parent = log_study(window, study, storage="sqlite:///.../study.db",
                       summary={"metric": "pr_auc", "direction": "maximize", ...})
    mirror_new_version(window, registry_dir, "layer1_vae", "1.1.0", parent=parent)

The study's run (`tuning <study>`, tags `maximus.study` and `maximus.storage`) carries the
objective (metric, direction, max epochs, data) as parameters, the best trial's parameters
(tags `best.<name>`) and value; each
trial's run (`<study> trial <n>`, tag `mlflow.parentRunId`) its parameters, its value as
`objective` and its per-epoch values as the curve `epoch_objective`, its state (`maximus.state`:
complete, pruned, fail) and, when pruned, the epoch. Resuming a study logs only the trials not
logged yet, under the same study run. A study is known there by its name and storage, a local
file's by its absolute path: two studies of one name in `tuning/study.db` of two folders are
two studies.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from training.tracking.window import MlflowWindow

logger = logging.getLogger(__name__)

__all__ = ["log_study"]

STUDY_TAG = "maximus.study"
TRIAL_TAG = "maximus.trial"
PARENT_TAG = "mlflow.parentRunId"
_LOGGED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED",
           TrialState.FAIL: "FAILED"}


def log_study(window: MlflowWindow, study: optuna.Study, storage: str,
              summary: dict[str, Any]) -> str | None:
    """Log `study` and its finished trials not logged yet; the study run's id (None: the
    window closed).

    Args:
        storage: where the study lives, in words without a password (`StorageSpec.describe`).
        summary: the objective's description and the tuning summary: `metric`, `direction`,
            `best_params`, `best_value`, `best_trial` and any other figures to tag.
    """
    parent = _study_run(window, study.study_name, storage)
    if parent is None:
        return None
    objective = study.user_attrs.get("objective") or {}
    window.log_params(parent, {k: v for k, v in objective.items()
                               if not k.endswith("_fingerprint")})
    window.set_tags(parent, {f"maximus.dataset.{k.removesuffix('_fingerprint')}": v
                             for k, v in objective.items() if k.endswith("_fingerprint")})
    logged = _logged_trials(window, parent)
    for trial in study.get_trials(deepcopy=False, states=_LOGGED):
        if trial.number not in logged and not window.closed:
            _log_trial(window, parent, study.study_name, trial)
    # Tags, not params: a resumed study's best trial may change, and MLflow's params cannot.
    best = summary.get("best_params") or {}
    window.set_tags(parent, {f"best.{k}": v for k, v in best.items()})
    window.log_metrics(parent, {"best_value": summary.get("best_value"),
                                "best_trial": summary.get("best_trial"),
                                "trials": len(study.get_trials(deepcopy=False, states=_LOGGED))})
    window.end_run(parent)
    return parent


def _study_run(window: MlflowWindow, name: str, storage: str) -> str | None:
    """The study's run: the one an earlier tuning of the same study made (known by the
    storage's absolute path; one logged before, by the storage as given, is taken over, so
    that its trials are not logged again), else a new one."""
    absolute = _absolute(storage)
    for known in dict.fromkeys((absolute, storage)):
        query = f"tags.`{STUDY_TAG}` = '{_quoted(name)}' and tags.`maximus.storage` = " \
                f"'{_quoted(known)}'"
        found = window.guard("search runs", window.client.search_runs, [window.experiment_id],
                             query, max_results=1) or []
        if found:
            if known != absolute:
                window.set_tags(found[0].info.run_id, {"maximus.storage": absolute})
            return found[0].info.run_id
    return window.start_run(f"tuning {name}", {STUDY_TAG: name, "maximus.storage": absolute})


def _absolute(storage: str) -> str:
    """`storage` with a local file's path made absolute: a relative one (`sqlite:///tuning/s/
    study.db`, `journal file tuning/s/journal.log`) names another file in another folder."""
    for prefix in ("sqlite:///", "journal file "):
        path = storage.removeprefix(prefix)
        if path != storage and path != ":memory:" and not path.startswith("/"):
            return prefix + str(Path(path).resolve())
    return storage


def _logged_trials(window: MlflowWindow, parent: str) -> set[int]:
    runs = window.guard("search runs", window.client.search_runs, [window.experiment_id],
                        f"tags.`{PARENT_TAG}` = '{parent}'", max_results=50_000) or []
    return {int(run.data.tags[TRIAL_TAG]) for run in runs if TRIAL_TAG in run.data.tags}


def _log_trial(window: MlflowWindow, parent: str, study_name: str, trial: FrozenTrial) -> None:
    state = trial.state.name.lower()
    run_id = window.start_run(f"{study_name} trial {trial.number}", {
        PARENT_TAG: parent, STUDY_TAG: study_name, TRIAL_TAG: str(trial.number),
        "maximus.state": state})
    window.log_params(run_id, trial.params)
    for epoch, value in sorted(trial.intermediate_values.items()):
        window.log_metrics(run_id, {"epoch_objective": value}, step=epoch)
    figures: dict[str, Any] = {"objective": trial.value}
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        figures["pruned_at_epoch"] = max(trial.intermediate_values)
    if trial.datetime_start and trial.datetime_complete:
        figures["duration_s"] = (trial.datetime_complete - trial.datetime_start).total_seconds()
    window.log_metrics(run_id, figures)
    window.end_run(run_id, _STATUS[trial.state])


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")
