"""Tuning against a real PostgreSQL server, as several machines would share one study.

`.ci/run` starts a throwaway server and sets MAXIMUS_TEST_POSTGRES_URL (and
MAXIMUS_TEST_POSTGRES_REQUIRED=1, which turns a missing server into a failure). Elsewhere the
test is skipped unless that variable points at a server, e.g.
MAXIMUS_TEST_POSTGRES_URL=postgresql://USER@127.0.0.1:5432/DB.
"""

from __future__ import annotations

import os
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from training.tests.tuning_helpers import RecordingObjective, recorded_trials
from training.tuning.storage import resolve_storage
from training.tuning.tuner import HyperparameterTuner, TuningConfig

URL_VARIABLE = "MAXIMUS_TEST_POSTGRES_URL"


@pytest.fixture(scope="module")
def postgres_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    required = os.environ.get("MAXIMUS_TEST_POSTGRES_REQUIRED") == "1"
    if not url:
        if required:
            pytest.fail(f"{URL_VARIABLE} is not set but MAXIMUS_TEST_POSTGRES_REQUIRED=1")
        pytest.skip(f"no PostgreSQL server: set {URL_VARIABLE} (.ci/run starts one)")
    import psycopg
    from sqlalchemy.engine import make_url

    spec = resolve_storage(url, 1, ".")
    parts = make_url(spec.target)
    try:
        psycopg.connect(host=parts.host, port=parts.port, user=parts.username,
                        password=parts.password, dbname=parts.database, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        if required:
            pytest.fail(f"PostgreSQL at {spec.describe()} is not reachable: {exc}")
        pytest.skip(f"PostgreSQL at {spec.describe()} is not reachable: {exc}")
    return url


def test_workers_and_another_command_share_one_postgresql_study(postgres_url, tmp_path):
    name = f"pg-{uuid.uuid4().hex[:12]}"  # the database may outlive this run
    config = TuningConfig(name, n_trials=8, n_workers=2, storage_url=postgres_url,
                          output_dir=str(tmp_path), seed=3)
    tuner = HyperparameterTuner(config)
    assert tuner.storage.kind == "rdb" and tuner.parallel
    result = tuner.tune(RecordingObjective(str(tmp_path), barrier=2))
    assert result.ran == 8

    # The same command elsewhere (here: a second tuner in this process) joins the study and
    # runs only the trials still missing from its n_trials.
    more = TuningConfig(name, n_trials=11, storage_url=postgres_url, output_dir=str(tmp_path))
    assert HyperparameterTuner(more).tune(RecordingObjective(str(tmp_path))).ran == 3

    study = optuna.load_study(study_name=name, storage=tuner.storage.open())
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(11))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    records = recorded_trials(tmp_path)
    assert sorted(number for _, number, _ in records) == list(range(11))  # none lost, none twice
    assert len({pid for pid, number, _ in records if number < 8}) == 2
    by_number = {t.number: t for t in trials}
    assert all(by_number[number].params["x"] == x for _, number, x in records)
    assert (tmp_path / name / "best_params.json").exists()
