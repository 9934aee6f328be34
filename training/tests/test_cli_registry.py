"""`maximus-train registry | score | retrain` and the registry they use: one rule for where it
is, nothing created by commands that read or fail, readable tables, filters that filter, and
metrics, versions, a file's layer and score's output suffix checked before anything is written.

In-process calls of `training.cli.main.main`, the console script's entry point.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.cli.main import main
from training.demo.generator import write_demo_file
from training.registry.registry import ModelRegistry
from training.tests.registry_fixtures import save_tiny


@pytest.fixture
def weights(tmp_path) -> Path:
    """A saved layer-1 model (a TinyDetector on the 128-dim event vectors)."""
    return save_tiny(tmp_path / "src" / "tiny_best.pt", centre=0.5, dim=128, threshold=3.0)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _error_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_one_rule_for_where_the_registry_is(tmp_path, weights, monkeypatch, capsys):
    """--registry-dir, else --workdir W (W/models), else $MAXIMUS_DATA_ROOT/models."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAXIMUS_DATA_ROOT", "root")
    register = ["registry", "register", "--model", "tiny", "--model-path", str(weights)]
    assert main([*register, "--reason", "default"]) == 0
    assert main([*register, "--workdir", "run", "--reason", "workdir"]) == 0
    assert main([*register, "--registry-dir", "elsewhere", "--reason", "dir"]) == 0
    for folder, reason in (("root/models", "default"), ("run/models", "workdir"),
                           ("elsewhere", "dir")):
        assert ModelRegistry(folder, create=False).get_metadata("tiny").description == reason
    capsys.readouterr()
    assert main([*register, "--workdir", "run", "--registry-dir", "x"]) == 2
    assert _error_line(capsys.readouterr().err).startswith(
        "maximus-train registry register: error: argument --registry-dir/--registry_dir: not "
        "allowed with argument --workdir")
    # score and retrain follow the same rule
    assert main(["registry", "promote", "--model", "tiny", "--version", "1.0.0", "--workdir",
                 "run"]) == 0
    events = write_demo_file(tmp_path / "events.json", n_events=200, seed=3)
    capsys.readouterr()
    assert main(["score", "--model", "tiny", "--input", f"json:{events}", "--output",
                 "scores.jsonl", "--workdir", "run"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("scored 200 events (200 layer1 units) with tiny 1.0.0")
    assert "scoring with tiny 1.0.0: 200 events in " in err  # the progress line
    assert main(["score", "--model", "tiny", "--input", f"json:{events}", "--output",
                 "scores.jsonl"]) == 1  # root/models has no production version
    assert "no version in stage 'production'" in _error_line(capsys.readouterr().err)
    assert main(["retrain", "--workdir", "run", "--epochs", "1"]) == 1
    assert _error_line(capsys.readouterr().err) == "error: run/splits/layer1_train.npz: no such file"


READERS = [
    ["registry", "list"], ["registry", "show", "--model", "tiny"],
    ["registry", "history"], ["registry", "history", "--model", "tiny", "--version", "1.0.0"],
    ["registry", "promote", "--model", "tiny", "--version", "1.0.0"],
    ["registry", "alias", "--model", "tiny", "--alias", "x", "--version", "1.0.0"],
    ["registry", "rollback", "--model", "tiny"],
    ["score", "--model", "tiny", "--input", "json:{events}", "--output", "{out}"],
]


@pytest.mark.parametrize("argv", READERS, ids=lambda a: " ".join(a[:2]))
def test_commands_that_do_not_register_refuse_a_missing_registry_and_create_nothing(
        argv, tmp_path, capsys):
    events = tmp_path / "events.json"
    events.write_text("[]")
    argv = [a.format(events=events, out=tmp_path / "s.parquet") for a in argv]
    typo = tmp_path / "modles"
    assert main([*argv, "--registry-dir", str(typo)]) == 1
    assert _error_line(capsys.readouterr().err) == (
        f"error: no model registry at {typo} (it has no registry.db); registering a model "
        "creates one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.json"]


def test_reading_an_existing_registry_leaves_no_file_behind(tmp_path, weights, capsys):
    """No -wal or -shm file (SQLite's, while a connection is open) and the same bytes after
    list, show, history and score."""
    folder = tmp_path / "models"
    flags = ["--registry-dir", str(folder)]
    assert main(["registry", "register", "--model", "tiny", "--model-path", str(weights),
                 *flags]) == 0
    assert main(["registry", "promote", "--model", "tiny", "--version", "1.0.0", *flags]) == 0
    before = _files(folder)
    assert "registry.db" in before and not any(n.endswith(("-wal", "-shm")) for n in before)
    events = write_demo_file(tmp_path / "events.json", n_events=100, seed=4)
    for argv in (["registry", "list"], ["registry", "show", "--model", "tiny", "--json"],
                 ["registry", "history"], ["score", "--model", "tiny", "--input",
                                           f"json:{events}", "--output",
                                           str(tmp_path / "s.parquet")]):
        assert main([*argv, *flags]) == 0, argv
        assert _files(folder) == before, argv


@pytest.fixture
def filled(tmp_path, weights) -> list[str]:
    """Two models: tiny 1.0.0 (archived), 1.1.0 (production), other 1.0.0 (challenger)."""
    flags = ["--registry-dir", str(tmp_path / "models")]
    for model, version in (("tiny", "1.0.0"), ("tiny", "1.1.0"), ("other", "1.0.0")):
        assert main(["-q", "registry", "register", "--model", model, "--version", version,
                     "--model-path", str(weights), "--metrics",
                     json.dumps({"pr_auc": 0.5 if version == "1.0.0" else 0.75}), *flags]) == 0
    for version in ("1.0.0", "1.1.0"):
        assert main(["registry", "promote", "--model", "tiny", "--version", version, "--reason",
                     f"try {version}", *flags]) == 0
    assert main(["registry", "alias", "--model", "other", "--alias", "challenger", "--version",
                 "1.0.0", *flags]) == 0
    return flags


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_list_is_a_table_and_its_filters_filter(filled, capsys):
    capsys.readouterr()
    assert main(["registry", "list", *filled]) == 0
    rows = _table(capsys.readouterr().out)
    assert rows[0] == ["MODEL", "VERSION", "STAGE", "LAYER", "DETECTOR", "CREATED", "(UTC)",
                       "ALIASES", "METRICS"]
    assert [r[:5] + r[7:] for r in rows[1:]] == [
        ["other", "1.0.0", "none", "layer1", "TinyDetector", "challenger", "pr_auc=0.5"],
        ["tiny", "1.0.0", "archived", "layer1", "TinyDetector", "-", "pr_auc=0.5"],
        ["tiny", "1.1.0", "production", "layer1", "TinyDetector", "champion", "pr_auc=0.75"]]
    assert main(["registry", "list", "--model", "other", *filled]) == 0
    assert [r[:2] for r in _table(capsys.readouterr().out)[1:]] == [["other", "1.0.0"]]
    assert main(["registry", "list", "--stage", "production", "--json", *filled]) == 0
    assert [(m["model_name"], m["version"]) for m in json.loads(capsys.readouterr().out)] == \
        [("tiny", "1.1.0")]
    assert main(["registry", "list", "--model", "tiyn", *filled]) == 1
    assert _error_line(capsys.readouterr().err).endswith(
        "no version matches model 'tiyn' in " + filled[1] + "; models: other, tiny")


def test_show_says_when_a_versions_files_are_not_those_registered(filled, capsys):
    """A record that read well while its weights had been replaced (and would not load) gave
    no word of it (red-team trial)."""
    capsys.readouterr()
    assert main(["registry", "show", "--model", "tiny", "--version", "1.1.0", *filled]) == 0
    assert "integrity            as registered (sha256)" in capsys.readouterr().out
    weights = next(Path(filled[1]).glob("**/tiny/1.1.0/model.pt"))
    weights.write_bytes(weights.read_bytes() + b"x")
    assert main(["registry", "show", "--model", "tiny", "--version", "1.1.0", *filled]) == 0
    out, err = capsys.readouterr()
    assert f"integrity            NOT as registered, it will not load: {weights}: sha256 " \
           "mismatch" in out
    assert f"warning: tiny 1.1.0 will not load: {weights}: sha256 mismatch" in err
    assert main(["registry", "show", "--model", "tiny", "--version", "1.1.0", "--json",
                 *filled]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["files_as_registered"] is False
    assert shown["files_problem"].startswith(f"{weights}: sha256 mismatch")
    assert main(["registry", "show", "--model", "tiny", "--version", "1.0.0", "--json",
                 *filled]) == 0  # its own files are intact
    assert json.loads(capsys.readouterr().out)["files_as_registered"] is True


def test_show_and_history_are_tables_with_json_on_request(filled, capsys):
    capsys.readouterr()
    assert main(["registry", "show", "--model", "tiny", "--alias", "champion", *filled]) == 0
    text = capsys.readouterr().out
    fields = {line[:20].strip(): line[20:].strip() for line in text.splitlines()[1:14]}
    assert (fields["model"], fields["version"], fields["stage"], fields["aliases"],
            fields["anomaly threshold"]) == ("tiny", "1.1.0", "production", "champion", "3")
    assert "METRIC  VALUE\npr_auc  0.75" in text
    assert main(["registry", "show", "--model", "tiny", "--version", "1.0.0", "--json",
                 *filled]) == 0
    assert json.loads(capsys.readouterr().out)["stage"] == "archived"
    assert main(["registry", "history", "--model", "tiny", "--version", "1.0.0", *filled]) == 0
    rows = [line.split("  ") for line in capsys.readouterr().out.splitlines()]
    changes = [[c.strip() for c in r if c.strip()][3:] for r in rows[1:]]
    assert [c[:1] + c[2:] for c in changes] == [
        ["register", "registered"], ["none -> production", "try 1.0.0"],
        ["alias champion", "try 1.0.0"],
        ["production -> archived", "replaced by 1.1.0: try 1.1.0"],
        ["unalias champion", "replaced by 1.1.0: try 1.1.0"]]
    assert main(["registry", "history", "--json", *filled]) == 0
    log = json.loads(capsys.readouterr().out)
    assert [(e["model_name"], e["version"], e["event"]) for e in log][-1] == \
        ("other", "1.0.0", "alias")
    assert main(["registry", "history", "--model", "tiny", "--version", "9.9.9", *filled]) == 1
    assert "no transition of model 'tiny', version '9.9.9'" in \
        _error_line(capsys.readouterr().err)


def test_compare_puts_versions_side_by_side_and_names_what_is_not_recorded(filled, tmp_path,
                                                                          weights, capsys):
    assert main(["-q", "registry", "register", "--model", "tiny", "--version", "1.2.0",
                 "--model-path", str(weights), "--metrics", '{"roc_auc": 0.9}', *filled]) == 0
    capsys.readouterr()
    assert main(["registry", "compare", "--model", "tiny", "--metric", "pr_auc", *filled]) == 0
    out = capsys.readouterr().out
    assert _table(out)[:4] == [["VERSION", "STAGE", "PR_AUC"], ["1.0.0", "archived", "0.5"],
                               ["1.1.0", "production", "0.75", "best"],
                               ["1.2.0", "none", "not", "recorded"]]
    assert out.strip().endswith("pr_auc: higher is better")
    assert main(["registry", "compare", "--model", "tiny", "--versions", "1.0.0", "1.2.0",
                 "--metric", "roc_auc", "--json", *filled]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "metric": "roc_auc", "direction": "max", "values": {"1.0.0": None, "1.2.0": 0.9},
        "best": "1.2.0", "missing": ["1.0.0"]}
    assert main(["registry", "compare", "--model", "tyni", *filled]) == 1
    assert _error_line(capsys.readouterr().err).endswith(
        f"no version of model 'tyni' in {filled[1]}; known: other, tiny")
    assert main(["registry", "compare", "--model", "tiny", "--metric", "roc_auk", *filled]) == 2
    assert "metric 'roc_auk' has no known direction (did you mean roc_auc?); use one of " in \
        _error_line(capsys.readouterr().err)


@pytest.mark.parametrize("metrics, message", [
    ("report.json", "--metrics must be a JSON object such as '{\"pr_auc\": 0.9}' or a JSON file "
                    "holding one; 'report.json' is not JSON"),
    ("x", "'x' is not JSON"),
    ("[1]", "--metrics must be a JSON object of metric -> number, got list '[1]'"),
    ('{"pr_auc": "high"}', "--metrics: 'pr_auc' must be a finite number, got 'high'"),
    ('{"pr_auc": NaN}', "--metrics: 'pr_auc' must be a finite number, got nan"),
])
def test_register_checks_its_metrics_before_writing_anything(metrics, message, tmp_path,
                                                             weights, capsys):
    folder = tmp_path / "models"
    assert main(["registry", "register", "--model", "tiny", "--model-path", str(weights),
                 "--metrics", metrics, "--registry-dir", str(folder)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("error: --metrics") and message in line, line
    assert not folder.exists()


def test_register_takes_the_numbers_of_a_report_file(tmp_path, weights, capsys):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"roc_auc": 0.9, "pr_auc": 0.8, "n_samples": 60,
                                  "confusion_matrix": [[1, 2], [3, 4]], "threshold": None,
                                  "passed": True}))
    assert main(["registry", "register", "--model", "tiny", "--model-path", str(weights),
                 "--metrics", str(report), "--registry-dir", str(tmp_path / "models"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == {
        "n_samples": 60.0, "pr_auc": 0.8, "roc_auc": 0.9}


# -- a failed command creates no registry; register checks the file's layer and the version --


def test_a_failed_retrain_leaves_no_registry_behind(tmp_path, monkeypatch, capsys):
    """A mistyped --workdir: retrain fails on its splits and creates nothing."""
    monkeypatch.chdir(tmp_path)
    assert main(["retrain", "--workdir", "typo-dir", "--epochs", "1"]) == 1
    assert _error_line(capsys.readouterr().err) == \
        "error: typo-dir/splits/layer1_train.npz: no such file"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("action", ["list", "history"])
def test_after_a_failed_retrain_readers_say_there_is_no_registry(action, tmp_path, monkeypatch,
                                                                 capsys):
    """Not "typo-dir/models: no model registered" with exit 0, as for an empty registry."""
    monkeypatch.chdir(tmp_path)
    assert main(["retrain", "--workdir", "typo-dir", "--epochs", "1"]) == 1
    capsys.readouterr()
    assert main(["registry", action, "--workdir", "typo-dir"]) == 1
    assert _error_line(capsys.readouterr().err) == (
        "error: no model registry at typo-dir/models (it has no registry.db); registering a "
        "model creates one")


def test_a_register_that_fails_leaves_no_new_registry_and_an_old_one_as_it_was(
        tmp_path, weights, capsys):
    damaged = save_tiny(tmp_path / "damaged.pt", dim=128)
    damaged.write_bytes(damaged.read_bytes() + b"\0")  # no longer the sidecar's sha256
    register = ["registry", "register", "--model", "tiny", "--model-path", str(damaged)]
    assert main([*register, "--workdir", str(tmp_path / "new" / "run")]) == 1
    assert "sha256 mismatch" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()
    flags = ["--registry-dir", str(tmp_path / "models")]
    assert main(["-q", "registry", "register", "--model", "tiny", "--model-path", str(weights),
                 *flags]) == 0
    registry = ModelRegistry(tmp_path / "models", create=False)
    before = (registry.history(), _files(registry.artifacts_dir))
    assert main([*register, *flags]) == 1
    assert (registry.history(), _files(registry.artifacts_dir)) == before


@pytest.fixture
def layer3_weights(tmp_path) -> Path:
    """A saved model whose FeatureSpec is layer 3's."""
    from training.artifacts.model_files import save_model
    from training.features.layer3 import Layer3WindowBuilder
    from training.tests.registry_fixtures import TinyDetector

    path = tmp_path / "src" / "tcn_best.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(TinyDetector(dim=4), path, feature_spec=Layer3WindowBuilder().spec, threshold=1.0)
    return path


@pytest.mark.parametrize("argv, message", [
    (["--model", "layer1_vae"], "is a layer3 model (its sidecar's FeatureSpec), but layer1_vae "
                                "is the name of the layer1 model; register it under layer3_tcn "
                                "or a name of your own, or give a layer1 model"),
    (["--model", "mine", "--layer", "layer1"], "is a layer3 model (its sidecar's FeatureSpec), "
                                               "not --layer layer1; leave --layer out to take "
                                               "the file's"),
])
def test_register_refuses_a_file_of_another_layer(argv, message, tmp_path, layer3_weights,
                                                  capsys):
    folder = tmp_path / "models"
    assert main(["registry", "register", *argv, "--model-path", str(layer3_weights),
                 "--registry-dir", str(folder)]) == 2
    assert _error_line(capsys.readouterr().err) == \
        f"error: --model-path {layer3_weights} {message}"
    assert not folder.exists()


def test_register_records_the_layer_of_the_file(tmp_path, layer3_weights, capsys):
    """No --layer: the file's layer (it was layer1 whatever the file)."""
    assert main(["registry", "register", "--model", "layer3_tcn", "--model-path",
                 str(layer3_weights), "--registry-dir", str(tmp_path / "models"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layer_name"] == "layer3"


@pytest.mark.parametrize("version", ["banana", "1.2", "v1.2.0", "1.2.0.1", "1.2.0-rc1",
                                     "20261127T1425Z"])
def test_register_refuses_a_version_outside_the_registry_schemes(version, tmp_path, weights,
                                                                 capsys):
    folder = tmp_path / "models"
    assert main(["registry", "register", "--model", "tiny", "--model-path", str(weights),
                 "--version", version, "--registry-dir", str(folder)]) == 2
    assert _error_line(capsys.readouterr().err) == (
        "error: --version must be MAJOR.MINOR.PATCH as the registry numbers its versions (e.g. "
        "1.2.0), or a timestamp version (e.g. 20261127T142530123456Z), got "
        f"{version!r}; leave --version out to take the next one")
    assert not folder.exists()


def test_register_takes_a_version_of_either_registry_scheme(tmp_path, weights, capsys):
    flags = ["--registry-dir", str(tmp_path / "models")]
    for version in ("1.2.0", "20261127T142530123456Z"):
        assert main(["-q", "registry", "register", "--model", "tiny", "--model-path",
                     str(weights), "--version", version, *flags]) == 0
    assert [m.version for m in ModelRegistry(flags[1], create=False).list_models("tiny")] == \
        ["1.2.0", "20261127T142530123456Z"]


@pytest.mark.parametrize("output, suffix", [("x.csv", ".csv"), ("x", "a file without a suffix")])
def test_score_refuses_an_output_of_neither_format_before_any_work(output, suffix, tmp_path,
                                                                   weights, capsys):
    flags = ["--registry-dir", str(tmp_path / "models")]
    assert main(["-q", "registry", "register", "--model", "tiny", "--model-path", str(weights),
                 *flags]) == 0
    assert main(["registry", "promote", "--model", "tiny", "--version", "1.0.0", *flags]) == 0
    events = write_demo_file(tmp_path / "events.json", n_events=100, seed=5)
    capsys.readouterr()
    target = tmp_path / output
    assert main(["score", "--model", "tiny", "--input", f"json:{events}", "--output",
                 str(target), *flags]) == 2
    out, err = capsys.readouterr()
    assert out == "" and _error_line(err) == (
        f"error: --output {target}: score writes Parquet (.parquet) or JSON Lines (.jsonl, "
        f".json), not {suffix}; name the file with one of these suffixes")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.json", "models", "src"]
