"""Run history: every pipeline run in its own folder, all listed in the working directory's
index, `--keep N` pruning the oldest (training.pipeline.history)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from training.cli.main import main
from training.errors import ConfigError
from training.pipeline.history import list_runs, new_run, prune_runs


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from training.demo.generator import write_demo_file

    return write_demo_file(tmp_path_factory.mktemp("demo") / "demo.json", n_events=1_500, seed=3)


def _pipeline(demo: Path, work: Path, *more: str) -> int:
    return main(["pipeline", "--source", f"json:{demo}", "--layers", "layer1", "--epochs", "1",
                 "--workdir", str(work), "-q", *more])


def test_two_runs_keep_their_own_reports_and_tensorboard_runs(demo, tmp_path, capsys):
    work = tmp_path / "w"
    assert _pipeline(demo, work) == 0
    assert _pipeline(demo, work) == 0
    first, second = list_runs(work)
    for run in (first, second):
        assert (run / "report" / "index.html").exists()
        assert (run / "report" / "layer1.html").exists()
        assert (run / "report" / "validation.txt").exists()
        assert json.loads((run / "pipeline.json").read_text())["run"] == run.name
        (events,) = (run / "logs" / "layer1_vae").iterdir()  # one TensorBoard run each
        assert events.name.startswith("events.out.tfevents")
    # each run registered its own version, and its report says which
    versions = [json.loads((r / "pipeline.json").read_text())["layers"][0]["version"]
                for r in (first, second)]
    assert versions == ["1.0.0", "1.1.0"]
    index = (work / "report" / "index.html").read_text()
    for run in (first, second):
        assert f'href="../runs/{run.name}/report/index.html"' in index
        assert f'href="../runs/{run.name}/report/layer1.html"' in index
    assert index.index(second.name) < index.index(first.name)  # newest first
    # the latest run's figures where they always were
    assert json.loads((work / "pipeline.json").read_text())["run"] == second.name
    out = capsys.readouterr().out
    assert f"report: {second / 'report' / 'index.html'}" in out
    assert f"every run: {work / 'report' / 'index.html'}" in out


def test_keep_prunes_the_oldest_runs(demo, tmp_path):
    work = tmp_path / "w"
    older = [new_run(work).folder for _ in range(3)]  # earlier runs (they stopped early)
    assert _pipeline(demo, work, "--keep", "2") == 0
    runs = list_runs(work)
    assert len(runs) == 2 and runs[0] == older[2] and not older[0].exists()
    index = (work / "report" / "index.html").read_text()
    assert older[0].name not in index and older[2].name in index
    assert "no summary: the run stopped early" in index


@pytest.mark.parametrize("keep", [0, -1])
def test_keep_below_one_is_refused_before_anything_runs(demo, tmp_path, capsys, keep):
    assert _pipeline(demo, tmp_path / "w", "--keep", str(keep)) == 2
    assert f"keep must be an integer >= 1, got {keep}" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_prune_keeps_the_current_run_and_ignores_other_folders(tmp_path):
    runs = [new_run(tmp_path) for _ in range(3)]
    (tmp_path / "runs" / "notes").mkdir()
    assert prune_runs(tmp_path, 1, runs[0]) == [runs[1].folder, runs[2].folder]
    assert list_runs(tmp_path) == [runs[0].folder] and (tmp_path / "runs" / "notes").is_dir()
    assert prune_runs(tmp_path, 1) == []
    with pytest.raises(ConfigError, match="keep must be an integer >= 1, got 0"):
        prune_runs(tmp_path, 0)


def test_a_failed_run_says_so_on_the_front_page_with_its_error_line(datasets, tmp_path, capsys):
    """A run that stops on an error (here the alerts-per-day rule on a 24-minute IoT-23
    capture) leaves the front page saying it failed, with the line the command printed, not
    "did not finish (or is still going)"; the run's folder keeps the line too."""
    work = tmp_path / "w"
    capture = datasets / "iot23" / "CTU-Malware-Capture-44-1-labeled.csv"
    assert main(["pipeline", "--source", f"csv:{capture}", "--layers", "layer1", "--epochs", "1",
                 "--threshold", "alerts-per-day:10", "--workdir", str(work), "-q"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: the alerts-per-day threshold rule needs validation data "
                            "spanning at least a day"), error
    (run,) = list_runs(work)
    assert (run / "failed.txt").read_text() == error.removeprefix("error: ") + "\n"
    index = (work / "report" / "index.html").read_text()
    assert "did not finish" not in index
    assert "<h1>MAXIMUS pipeline runs: the latest failed</h1>" in index
    assert f"<strong>The latest run, {run.name} (started " in index
    assert f"<pre>{html.escape(error.removeprefix('error: '))}</pre>" in index
    assert "<strong>failed</strong>: the alerts-per-day threshold rule" in index  # its row


def test_a_failed_run_from_python_says_so_on_the_front_page(datasets, tmp_path):
    """`run_pipeline` called from Python, not the CLI, records its failure the same way: the
    front page says the run failed, with the exception's line, and the exception goes on."""
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline

    work = tmp_path / "w"
    capture = datasets / "iot23" / "CTU-Malware-Capture-44-1-labeled.csv"
    config = config_from_dict({
        "sources": [{"type": "csv", "path": str(capture)}], "layers": ["layer1"],
        "workdir": str(work), "train": {"epochs": 1, "threshold": "alerts-per-day:10"}})
    with pytest.raises(ConfigError, match="the alerts-per-day threshold rule needs validation "
                                          "data spanning at least a day") as raised:
        run_pipeline(config)
    line = str(raised.value).splitlines()[0]
    (run,) = list_runs(work)
    assert (run / "failed.txt").read_text() == line + "\n"
    index = (work / "report" / "index.html").read_text()
    assert "did not finish" not in index and "unfinished" not in index
    assert "<h1>MAXIMUS pipeline runs: the latest failed</h1>" in index
    assert f"<pre>{html.escape(line)}</pre>" in index


@pytest.mark.parametrize(("stop", "code", "line"), [
    ("SIGINT", 130, "interrupted (Ctrl-C or SIGINT)"), ("SIGTERM", 143, "terminated (SIGTERM)")])
def test_an_interrupted_run_is_listed_as_such_beside_the_runs_before(demo, tmp_path, stop, code,
                                                                      line):
    """Ctrl-C during a run: the front page lists every run again, the interrupted one as
    failed with its line, instead of the "unfinished" page of that run alone (trial N). So
    does SIGTERM (`kill`, `timeout`), which killed the run without a word in its history
    and left its MLflow run RUNNING (trial V)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from training.tests.conftest import REPO

    work = tmp_path / "w"
    assert _pipeline(demo, work) == 0
    command = [sys.executable, "-m", "training.cli", "pipeline", "--source", f"json:{demo}",
               "--layers", "layer1", "--epochs", "500", "--workdir", str(work), "-q"]
    child = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list_runs(work)) < 2 or not list((work / "checkpoints").rglob("*")):
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
        time.sleep(0.1)  # until the second run trains
    child.send_signal(getattr(signal, stop))
    _, err = child.communicate(timeout=120)
    assert child.returncode == code, err
    assert err.strip().splitlines()[-1] == f"error: {line.split(' (')[0]}" + (
        " (SIGTERM)" if stop == "SIGTERM" else "")
    first, second = list_runs(work)
    assert (second / "failed.txt").read_text() == f"{line}\n"
    index = (work / "report" / "index.html").read_text()
    assert "unfinished" not in index and first.name in index and second.name in index
    assert f"<strong>failed</strong>: {line}" in index
