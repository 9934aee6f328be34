"""`maximus-train evaluate --source` of the events a model learnt from, on a real capture: a
layer-1 model trained on the benign flows of Stratosphere 008 (`pipeline --benign-only`, time
split) records the time of its training and validation parts, and evaluating it on 008 again
warns with the count of the events of that time; 008 shifted past that time does not warn; a
model saved before models recorded it evaluates as before; `ModelEvaluator` (the Python
counterpart) warns of rows of that time too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.artifacts.model_files import load_model
from training.cli.main import main
from training.evaluation.evaluator import ModelEvaluator
from training.evaluation.training_span import iso

CONN_008 = "stratosphere/008-zeek-mixed/data/conn.log.labeled"
THREE_DAYS = 3 * 86400.0
V0_1 = Path(__file__).parent / "fixtures" / "v0_1"


@pytest.fixture(scope="module")
def run(benign_008_run):
    return benign_008_run


@pytest.fixture(scope="module")
def split_times(run) -> dict[str, np.ndarray]:
    """The unit times of each part the pipeline wrote (train, val, test)."""
    return {part: np.load(run / "splits" / f"layer1_{part}.npz")["timestamps"]
            for part in ("train", "val", "test")}


def _evaluate(capsys, *args: str) -> tuple[int, str, list[str], dict | None]:
    """(exit code, stdout, the warning lines of stderr, the --report JSON or None)."""
    code = main(["evaluate", "--no-latency", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    report = None
    if "--report" in args:
        report = json.loads(Path(args[args.index("--report") + 1] + ".json").read_text())
    return code, out, [line for line in err.splitlines() if line.startswith("warning:")], report


def _shifted(source: Path, target: Path, seconds: float) -> Path:
    """A copy of the Zeek TSV log `source` with every event `seconds` later."""
    lines = []
    for line in source.read_text().splitlines(keepends=True):
        if not line.startswith("#"):
            ts, rest = line.split("\t", 1)
            line = f"{float(ts) + seconds:.6f}\t{rest}"
        lines.append(line)
    target.write_text("".join(lines))
    return target


def test_the_sidecar_records_the_first_and_last_time_of_each_part(run, split_times):
    recorded = load_model(run / "checkpoints" / "layer1_vae_best.pt").sidecar["data_span"]
    assert recorded == {part: {"first": iso(split_times[part].min()),
                               "last": iso(split_times[part].max())}
                        for part in ("train", "val")}
    registered = run / "models" / "artifacts" / "layer1_vae" / "1.0.0" / "model.json"
    assert json.loads(registered.read_text())["data_span"] == recorded


def test_evaluating_the_training_capture_warns_with_the_count(run, split_times, datasets,
                                                            capsys, tmp_path):
    every = np.concatenate(list(split_times.values()))
    first = min(split_times["train"].min(), split_times["val"].min())
    last = max(split_times["train"].max(), split_times["val"].max())
    within = int(((every >= first) & (every <= last)).sum())
    assert 0 < within < len(every)  # the test part lies after the span
    code, out, warnings, report = _evaluate(
        capsys, "--workdir", str(run), "--model", "layer1_vae", "--source",
        f"zeek:{datasets / CONN_008}", "--report", str(tmp_path / "report"))
    assert code == 0
    message = (f"{within:,} of {len(every):,} events fall within the time of the data "
               f"layer1_vae 1.0.0 was trained and validated on ({iso(first)} to {iso(last)}): "
               f"the figures may include what it learnt from; evaluate on events after "
               f"{iso(last)} (logs recorded later, or the same logs with --after-training)")
    assert warnings == [f"warning: {message}"]
    assert (f"  TRAINING DATA: {within:,} of {len(every):,} events lie within the time the "
            f"model was trained and validated on ({iso(first)} to {iso(last)}); see the "
            "notes") in out.splitlines()
    assert f"  - TRAINING DATA: {message}" in out.splitlines()
    overlap = report["training_overlap"]
    assert (overlap["units"], overlap["within"], overlap["before"], overlap["after"],
            overlap["no_time"]) == (len(every), within, 0, len(every) - within, 0)
    assert (overlap["first"], overlap["last"]) == (iso(first), iso(last))
    assert report["notes"][0] == f"TRAINING DATA: {message}"


def test_after_training_evaluates_the_later_events_only(run, split_times, datasets, capsys,
                                                      tmp_path):
    code, _, warnings, report = _evaluate(
        capsys, "--workdir", str(run), "--model", "layer1_vae", "--source",
        f"zeek:{datasets / CONN_008}", "--after-training", "--report", str(tmp_path / "r"))
    assert (code, warnings) == (0, [])
    # What is after the validation part of a time split is its test part.
    assert report["n_units"] == len(split_times["test"])
    assert report["training_overlap"]["within"] == 0
    (layer1,) = json.loads((run / "pipeline.json").read_text())["layers"]
    assert report["roc_auc"] == pytest.approx(layer1["metrics"]["roc_auc"], abs=1e-9)
    assert report["n_alerts"] == layer1["metrics"]["n_alerts"]


def test_events_after_the_training_time_give_no_warning(run, datasets, capsys, tmp_path):
    later = _shifted(datasets / CONN_008, tmp_path / "conn.log", THREE_DAYS)
    code, out, warnings, report = _evaluate(
        capsys, "--workdir", str(run), "--model", "layer1_vae", "--source", f"zeek:{later}",
        "--report", str(tmp_path / "report"))
    assert (code, warnings) == (0, [])
    assert "TRAINING DATA" not in out
    overlap = report["training_overlap"]
    assert (overlap["within"], overlap["after"]) == (0, report["n_units"])


def test_a_model_saved_before_the_span_evaluates_as_before(run, datasets, capsys, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    for name in ("layer1_vae_best.pt", "layer1_vae_best.json"):
        shutil.copy(run / "checkpoints" / name, folder / name)
    side = folder / "layer1_vae_best.json"
    sidecar = json.loads(side.read_text())
    del sidecar["data_span"]
    side.write_text(json.dumps(sidecar))
    source = f"zeek:{datasets / CONN_008}"
    results = {}
    for name, model in (("old", folder), ("new", run / "checkpoints")):
        code, _, warnings, results[name] = _evaluate(
            capsys, "--model", str(model / "layer1_vae_best.pt"), "--source", source,
            "--report", str(tmp_path / name))
        assert code == 0
    assert warnings  # the new one's
    old, new = results["old"], results["new"]
    assert old["training_overlap"] is None and new["training_overlap"]["within"] > 0
    assert old["notes"] == new["notes"][1:]
    for report in (old, new):
        del report["training_overlap"], report["notes"]
    assert old == new
    code, _, warnings, _ = _evaluate(capsys, "--model", str(folder / "layer1_vae_best.pt"),
                                     "--source", source, "--after-training")
    assert code == 2
    assert warnings == []


def test_a_registered_model_of_v0_1_evaluates_on_events_without_a_warning(capsys, tmp_path):
    shutil.copytree(V0_1 / "workdir", tmp_path / "workdir")
    code, out, warnings, report = _evaluate(
        capsys, "--workdir", str(tmp_path / "workdir"), "--model", "layer1_vae", "--source",
        f"json_file:{V0_1 / 'input' / 'events.json'}", "--report", str(tmp_path / "report"))
    assert (code, warnings) == (0, [])
    assert report["training_overlap"] is None and report["n_units"] > 0
    assert "TRAINING DATA" not in out


def test_model_evaluator_warns_of_rows_of_the_training_time(run, caplog):
    loaded = load_model(run / "checkpoints" / "layer1_vae_best.pt")
    for part, within in (("train", True), ("test", False)):
        rows = np.load(run / "splits" / f"layer1_{part}.npz")
        caplog.clear()
        metrics = ModelEvaluator(loaded, rows["features"], rows["labels"],
                                 timestamps=rows["timestamps"]).evaluate(benchmark_latency=False)
        n = len(rows["labels"])
        assert metrics.training_overlap["within"] == (n if within else 0)
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        if not within:
            assert warned == []
            continue
        (message,) = warned
        assert message.startswith(f"{n:,} of {n:,} rows fall within the time of the data "
                                  "layer1_vae was trained and validated on (")
        assert metrics.notes[0] == f"TRAINING DATA: {message}"
