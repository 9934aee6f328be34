"""`maximus-train pipeline` on the data a security team has: real folders as they are, no
labels, no header, too little data, labels that come from alerts, a test part of one class,
training on one capture and evaluating on another.

Every run is a real `maximus-train` process on files of ../shared/datasets; they start
together (a few at a time, `runs`) and each test waits for its own. Epochs are 1 except for
the README's first example, which runs exactly as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from training.tests.conftest import DATASETS, REPO

D = "../shared/datasets"
README_RUNS = re.compile(r"<!-- real-data -->\n```bash\n(.*?)```", re.S)
PARALLEL = 3
S011 = f"zeek:{D}/stratosphere/011-zeek-mixed/data"
S008 = f"zeek:{D}/stratosphere/008-zeek-mixed/data"


def readme_commands() -> list[list[str]]:
    """The README's real-data examples, as argument lists."""
    (block,) = README_RUNS.findall((REPO / "README.md").read_text())
    return [line.split()[1:] for line in block.splitlines()
            if line.startswith("maximus-train ")]


def _runs() -> dict[str, list[str]]:
    zat, eve, kdd = readme_commands()
    one = ["--epochs", "1"]
    return {
        "zat_tsv": zat,  # as README writes it: no other flag
        "eve": eve + one,
        "nsl_kdd": kdd + one,
        "zat_json": ["pipeline", "--source", f"zeek:{D}/zeek_zat/json", "--workdir", "zj", *one],
        "slips_json": ["pipeline", "--source", f"zeek:{D}/slips_zeek_json_test9", "--workdir",
                       "s9", *one],
        "slips_tsv": ["pipeline", "--source", f"zeek:{D}/slips_zeek_tsv_test10", "--workdir",
                      "s10", *one],
        "slips_portscan": ["pipeline", "--source", f"zeek:{D}/slips_portscan_zeek", "--workdir",
                           "sp", *one],
        "slips_sme": ["pipeline", "--source", f"zeek:{D}/slips_ctu_sme_11_labeled_zeek",
                      "--workdir", "ss", *one],
        "honeypot": ["pipeline", "--source",
                     f"csv:{D}/iot23/CTU-Honeypot-Capture-4-1-labeled.csv", "--workdir", "hp",
                     *one],
        "011_on_008": ["pipeline", "--source", S011, "--benign-only", "--test-source", S008,
                       "--workdir", "x", *one],
    }


class Runs:
    """Starts the runs PARALLEL at a time, each in its own folder under `root` (where
    ../shared/datasets is reachable through a link), and hands out their results."""

    def __init__(self, root: Path) -> None:
        self.root, self.waiting = root, dict(_runs())
        self.running: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.done: dict[str, tuple[subprocess.CompletedProcess, Path]] = {}

    def _start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        while self.waiting and len(self.running) < PARALLEL:
            name = next(iter(self.waiting))  # in the order of `_runs`
            args = self.waiting.pop(name)
            cwd = self.root / name / "repo"
            cwd.mkdir(parents=True)
            (cwd.parent / "shared").symlink_to(DATASETS.parent)
            self.running[name] = (subprocess.Popen(
                [sys.executable, "-m", "training.cli", *args], cwd=cwd, env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE), cwd)

    def get(self, name: str) -> tuple[subprocess.CompletedProcess, Path]:
        self._start()
        deadline = time.monotonic() + 900
        while name not in self.done:
            for key, (process, cwd) in list(self.running.items()):
                if process.poll() is not None:
                    out, err = process.communicate()
                    self.done[key] = (subprocess.CompletedProcess(process.args,
                                                                  process.returncode, out, err),
                                      cwd)
                    del self.running[key]
            self._start()
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {name} did not finish")
            time.sleep(0.2)
        return self.done[name]

    def close(self) -> None:
        for process, _ in self.running.values():
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def runs(datasets, tmp_path_factory):
    started = Runs(tmp_path_factory.mktemp("unlabeled"))
    started._start()
    yield started
    started.close()


def _ok(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    return run.stdout


def _lines(stdout: str) -> dict[str, str]:
    return {line.split(":")[0]: line for line in stdout.splitlines()
            if re.match(r"layer\d: ", line)}


def _report(work: Path) -> Path:
    """The report folder of the latest run in `work` (training.pipeline.history)."""
    return max((work / "runs").iterdir()) / "report"


RULE = "threshold: unlabeled: threshold at the 99.9th percentile of validation scores"


THIN = re.compile(r"not promoted: (layer\d): its threshold rests on (\d+) validation "
                  r"(?:edge|window|event)s?, fewer than the 20 a threshold needs \(")


def test_an_unlabeled_zeek_folder_as_readme_writes_it(runs):
    run, cwd = runs.get("zat_tsv")
    lines = _lines(_ok(run))
    assert "-> production (no labels" in lines["layer1"] and RULE in lines["layer1"]
    # A few minutes of logs leave layers 2 and 3 a handful of validation edges and windows:
    # registered, not promoted (the threshold would be the largest of those few scores).
    for layer in ("layer2", "layer3"):
        assert "-> none (no labels" in lines[layer] and RULE in lines[layer], lines[layer]
        (named, count), = THIN.findall(lines[layer])
        assert named == layer and 0 < int(count) < 20
    # What gives more units, as far as the user can ask for it: layer 2's window has no flag.
    assert "a larger [split] val_ratio (the gate" in lines["layer2"]
    assert "windows shorter than 60 s (--layer3-bucket-seconds)" in lines["layer3"]
    work = cwd / "maximus-run"
    page = (_report(work) / "index.html").read_text()
    assert page.count("unlabeled: threshold at the 99.9th percentile of validation scores") == 3
    report = json.loads((_report(work) / "layer2.json").read_text())
    assert report["threshold_rule"].startswith(RULE.removeprefix("threshold: "))
    assert "cannot support that percentile" in report["threshold_rule"]  # a few edges only
    assert report["roc_auc"] is None and report["n_samples"] == 0 and report["n_units"] > 0
    sidecar = json.loads((work / "checkpoints" / "layer3_tcn_best.json").read_text())
    assert sidecar["calibration"]["rule"].startswith(RULE.removeprefix("threshold: "))
    assert sidecar["calibration"]["reference"] == "all"
    from training.registry.registry import ModelRegistry

    registry = ModelRegistry(work / "models")
    for name in ("layer1_vae", "layer2_gnn", "layer3_tcn"):
        version = registry.get_metadata(name, "1.0.0")
        assert version.details["threshold_rule"].startswith(RULE.removeprefix("threshold: "))
        loaded = registry.get_model(name, "1.0.0")
        assert loaded.calibration.threshold == loaded.threshold
    assert registry.load_model("layer3_tcn", alias="challenger").metadata.version == "1.0.0"


def test_retrain_after_the_pipeline_on_unlabeled_logs(runs, tmp_path):
    """The scheduled job after that first run: `retrain` finds nothing new and no drift in the
    pipeline's own workdir, and, forced, retrains on splits that carry no label at all."""
    _, cwd = runs.get("zat_tsv")
    work = shutil.copytree(cwd / "maximus-run", tmp_path / "w")  # the run above stays as is
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    from training.registry.registry import ModelRegistry

    # The pipeline left layers 2 and 3 unpromoted (too few validation units for a threshold):
    # a person promotes them, as one would to try them out anyway.
    for name in ("layer2_gnn", "layer3_tcn"):
        ModelRegistry(work / "models").transition_stage(name, "1.0.0", "production",
                                                        reason="tried out", actor="test")

    def retrain(*flags: str) -> dict:
        run = subprocess.run([sys.executable, "-m", "training.cli", "retrain", "--workdir",
                              str(work), *flags], env=env, text=True, capture_output=True)
        return json.loads(_ok(run))

    idle = retrain()
    fired = {t["name"]: t for t in idle["triggers"]}
    assert not idle["retrained"], idle["reason"]
    assert fired["new_samples"]["details"]["new_samples"] == 0
    assert not fired["drift"]["fired"]
    for name in ("layer1_vae", "layer2_gnn", "layer3_tcn"):  # the drift baseline is kept
        assert "reference.npz" in ModelRegistry(work / "models").get_metadata(
            name, stage="production").files
    forced = retrain("--force", "--epochs", "1")
    assert forced["retrained"] and forced["new_version"], forced["reason"]
    assert forced["comparison"]["metric"] == "val_loss"  # the unlabeled rule decided
    # Layer 3 counts benign-labeled windows in its loss, and none is labeled: the losses the
    # unlabeled rule compared on the test split are recorded as test_loss, not a 0 that would
    # win every comparison; val_loss is the kept epoch's, from the sidecar (trial D2).
    windows = retrain("--force", "--epochs", "1", "--layer", "layer3")
    decision = windows["comparison"]
    assert windows["metrics"]["test_loss"] == decision["challenger"] > 0, decision["reason"]
    assert decision["champion_metrics"]["test_loss"] == decision["champion"] > 0
    registry = ModelRegistry(work / "models")
    stored = registry.get_metadata("layer3_tcn", windows["new_version"])
    assert stored.metrics["test_loss"] == decision["challenger"]
    assert stored.metrics["val_loss"] == registry.load_model(
        "layer3_tcn", windows["new_version"]).sidecar["best_value"] > 0


def test_preprocess_with_a_model_featurizes_with_its_own_transform(runs, tmp_path):
    """New data for `retrain` must be featurized as the production model was (the fitted
    l1.v5 counts included): `preprocess --model` does, plain `preprocess` the default layout."""
    from training.features.vectors import LayerArrays
    from training.registry.registry import ModelRegistry

    _, cwd = runs.get("zat_tsv")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    spec = {}
    for name, flags in (("own", ["--model", "layer1_vae"]), ("plain", ["--layers", "layer1"])):
        run = subprocess.run([sys.executable, "-m", "training.cli", "preprocess", "--source",
                              f"zeek:{D}/zeek_zat/json", "--registry-dir",
                              str(cwd / "maximus-run" / "models"), "--output",
                              str(tmp_path / name), *flags], env=env, text=True,
                             capture_output=True)
        _ok(run)
        spec[name] = LayerArrays.load(tmp_path / name / "layer1_samples.npz").spec
    production = ModelRegistry(cwd / "maximus-run" / "models").load_model(
        "layer1_vae", stage="production").feature_spec
    assert spec["own"].fingerprint == production.fingerprint and spec["own"].version == "l1.v5"
    assert spec["plain"].fingerprint != production.fingerprint


def test_a_zeek_json_folder_skips_the_logs_without_timestamps(runs):
    run, _ = runs.get("zat_json")
    out = _ok(run)
    # loaded_scripts.log (50 lines, no time) is the sensor's, as `score` counts it, beside
    # the folder's 10 other sensor records
    assert not [line for line in out.splitlines() if line.startswith("note: skipped")]
    assert ("note: 60 sensor records of the sources (stats, capture loss, ...) left out: they "
            "describe the sensor, not traffic") in out.splitlines()
    lines = _lines(out)
    # A short capture: every layer's validation part is too few units for a threshold
    assert all("-> none" in lines[layer] and RULE in lines[layer]
               and THIN.findall(lines[layer])[0][0] == layer
               for layer in ("layer1", "layer2", "layer3"))


def test_a_suricata_eve_file_as_it_is(runs):
    """Labels come from the alerts: layer 3 builds l3.v2 windows without them, the figures of
    layers 1-2 (whose units are the alerts) are marked circular everywhere."""
    run, cwd = runs.get("eve")
    out = _ok(run)
    assert "note: the labels come from alert events" in out
    lines = _lines(out)
    for layer in ("layer1", "layer2"):
        assert "(CIRCULAR " in lines[layer] and f"  {layer}: CIRCULAR: the labels come from" in out
    assert "CIRCULAR" not in lines["layer3"] and "layer3_tcn 1.0.0 ->" in lines["layer3"]
    work = cwd / "eve-run"
    spec = json.loads(json.loads((work / "checkpoints" / "layer3_tcn_best.json").read_text())
                      ["feature_spec"])
    assert spec["version"] == "l3.v2" and "alerts" not in spec["config"]["features"]
    assert "severity_max" not in spec["config"]["features"]
    page = (_report(work) / "index.html").read_text()
    assert "<h2>Circular figures</h2>" in page and page.count("(circular)") == 2
    layer1 = json.loads((_report(work) / "layer1.json").read_text())
    assert layer1["circular"].startswith("the labels come from alert events")
    assert "CIRCULAR" in (_report(work) / "layer1.txt").read_text()
    layers = json.loads((work / "pipeline.json").read_text())["layers"]
    assert [o["circular"] is not None for o in layers] == [True, True, False]


def test_a_header_less_csv_trains_layer1_and_says_why_layers_2_3_are_skipped(runs):
    run, cwd = runs.get("nsl_kdd")
    out = _ok(run)
    assert ("note: the events have no timestamps, so the split is random instead of temporal"
            in out)
    lines = _lines(out)
    assert "layer1: layer1_vae 1.0.0 ->" in lines["layer1"] and "ROC-AUC" in lines["layer1"]
    why = ("(of 25,192 events, 25,192 have no timestamp and 25,192 no source or destination "
           "address)")
    assert lines["layer2"] == f"layer2: skipped: 0 edges, fewer than the 20 it needs {why}"
    assert lines["layer3"] == f"layer3: skipped: 0 windows, fewer than the 20 it needs {why}"
    assert (cwd / "kdd-run" / "checkpoints" / "layer1_vae_best.pt").exists()


@pytest.mark.parametrize("name, trained, skipped", [
    ("slips_json", {"layer1", "layer3"}, {"layer2"}),
    ("slips_tsv", {"layer1"}, {"layer2", "layer3"}),
    ("slips_portscan", set(), {"layer1", "layer2", "layer3"}),
    ("slips_sme", {"layer1"}, {"layer2", "layer3"}),
])
def test_slips_folders_train_the_layers_with_enough_units(runs, name, trained, skipped):
    """A few minutes of traffic each: every layer with its minimum of units trains, the
    others are skipped with one line saying what they have and need."""
    run, _ = runs.get(name)
    lines = _lines(_ok(run))
    assert set(lines) == trained | skipped
    for layer in trained:
        assert re.match(rf"{layer}: layer\d_\w+ 1\.0\.0 -> ", lines[layer]), lines[layer]
    for layer in skipped:
        assert re.match(rf"{layer}: skipped: [\d,]+ (events|edges|windows)(, fewer than the "
                        rf"\d+ it needs| in \d window graph| at \d distinct time)", lines[layer]
                        ), lines[layer]


def test_a_test_part_of_one_class_is_reported_as_such(runs):
    run, cwd = runs.get("honeypot")  # IoT-23 honeypot 4-1: every flow benign
    out = _ok(run)
    lines = _lines(out)
    for layer, unit in (("layer1", "events"), ("layer2", "edges"), ("layer3", "windows")):
        assert "one class:" in lines[layer] and "0 threat" in lines[layer]
        assert f"  {layer}: the test part has one class (" in out and f"0 threat {unit})" in out
    report = json.loads((_report(cwd / "hp") / "layer1.json").read_text())
    assert report["roc_auc"] is None and report["confusion_matrix"] is not None
    assert any(n.startswith("The test part has one class") for n in report["notes"])
    assert "The test part has one class" in (_report(cwd / "hp") / "layer1.html").read_text()


def test_train_on_the_benign_rows_of_011_evaluate_on_008(runs):
    run, cwd = runs.get("011_on_008")
    out = _ok(run)
    lines = _lines(out)
    result = json.loads((cwd / "x" / "pipeline.json").read_text())
    assert result["test_events"] > 0
    for outcome in result["layers"]:
        layer = outcome["layer"]
        assert "ROC-AUC" in lines[layer] and outcome["train"]["learnt_from"] == (
            "benign (is_threat 0) units")
        assert outcome["threshold_rule"].startswith(
            "benign labels: threshold at the 99.9th percentile of benign validation scores")
        report = json.loads((_report(cwd / "x") / f"{layer}.json").read_text())
        assert report["n_samples"] > 0 and report["roc_auc"] is not None
        assert (_report(cwd / "x") / f"{layer}.html").exists()
    # the test part is 008's events, featurized with the same transform
    assert (cwd / "x" / "test_events.parquet").exists()


def test_retrain_after_a_run_with_test_sources_names_its_test_features(runs):
    """Such a run saves its test part with the features, not in splits/: retrain says where
    and which flag takes it."""
    _, cwd = runs.get("011_on_008")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "training.cli", "retrain", "--workdir", "x",
                          "--force", "--epochs", "1"], cwd=cwd, env=env, text=True,
                         capture_output=True)
    features = os.path.join("x", "features", "test_layer1_samples.npz")
    assert run.returncode != 0 and run.stderr.strip().splitlines()[-1] == (
        f"error: {os.path.join('x', 'splits', 'layer1_test.npz')}: no such file; the pipeline "
        f"run in x had test sources (--test-source), whose layer1 events it saved as {features}:"
        f" pass --test-data {features} to judge the challenger on them (or another split)")


def test_evaluate_any_source_with_a_model_of_every_layer(runs):
    """`evaluate --source`: events of another folder, featurized with each model's own spec,
    reported without labels (units, alerts at the threshold and how it was set)."""
    run, cwd = runs.get("zat_tsv")
    _ok(run)
    checkpoints = cwd / "maximus-run" / "checkpoints"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = {model: subprocess.Popen(
        [sys.executable, "-m", "training.cli", "evaluate", "--model",
         str(checkpoints / f"{model}_best.pt"), "--source", f"zeek:{D}/zeek_zat/json",
         "--no-latency", "--report", f"ev/{model}"], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for model in ("layer1_vae", "layer2_gnn", "layer3_tcn")}
    scoring = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "score", "--registry-dir", "maximus-run/models",
         "--model", "layer1_vae", "--input", f"zeek:{D}/zeek_zat/json", "--output", "s.jsonl"],
        cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = scoring.communicate(timeout=600)
    assert scoring.returncode == 0, err[-2000:]
    assert "; unlabeled: threshold at the 99.9th percentile of validation scores" in out
    for model, process in started.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0 and "Traceback" not in err, err[-2000:]
        assert "(unlabeled: threshold at the 99.9th percentile of validation scores" in out
        assert "No test unit has a benign or threat label" in out
        report = json.loads((cwd / "ev" / f"{model}.json").read_text())
        assert report["n_units"] > 0 and report["n_alerts"] is not None
        assert report["threshold_rule"].startswith(RULE.removeprefix("threshold: "))


def test_a_grace_period_trains_on_the_past_and_tests_on_the_rest(datasets, tmp_path):
    from training.dataset_builder import load_splits
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline

    capture = datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv"  # 20:06 .. 22:01 UTC
    config = config_from_dict({
        "workdir": tmp_path, "layers": ["layer1"], "train": {"epochs": 1},
        "sources": [{"type": "csv", "path": str(capture)}],
        "split": {"train_until": "2019-01-10T21:30:00Z"}})
    (outcome,) = run_pipeline(config).layers
    assert outcome.stage is not None and outcome.metrics["n_units"] > 0
    splits = load_splits(tmp_path / "splits", "layer1")
    cut = np.datetime64("2019-01-10T21:30:00", "us")
    assert splits["train"].columns["timestamps"].max() < cut
    assert splits["val"].columns["timestamps"].max() < cut
    assert splits["test"].columns["timestamps"].min() >= cut
    assert sum(len(s) for s in splits.values()) == 237


def test_an_alert_budget_per_day_needs_a_day_of_validation_data(datasets, tmp_path):
    from training.demo.generator import write_demo_file
    from training.errors import ConfigError
    from training.pipeline.config import config_from_dict
    from training.pipeline.run import run_pipeline

    demo = write_demo_file(tmp_path / "demo.json", n_events=1_500, seed=3)  # a week of events
    config = config_from_dict({
        "workdir": tmp_path / "week", "layers": ["layer1"],
        "sources": [{"type": "json", "path": str(demo)}],
        "train": {"epochs": 1, "threshold": "alerts-per-day:5"}})
    (outcome,) = run_pipeline(config).layers
    assert re.fullmatch(r"unlabeled: threshold for 5 alerts per day \(the 9\d\.\d+th percentile "
                        r"of validation scores\)", outcome.threshold_rule), outcome.threshold_rule
    capture = datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv"  # two hours
    short = config_from_dict({"workdir": tmp_path / "hours", "layers": ["layer1"],
                              "sources": [{"type": "csv", "path": str(capture)}],
                              "train": {"epochs": 1, "threshold": "alerts-per-day:5"}})
    with pytest.raises(ConfigError, match=r"alerts-per-day threshold rule needs validation data "
                                          r"spanning at least a day; it spans 0.\d+ hours; use a "
                                          r"longer capture or the rule quantile:Q"):
        run_pipeline(short)
