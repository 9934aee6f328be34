"""Errors that say what the user meant (trial F D11): the flag actually typed, the closest
model name (the fused detector among the choices), the registry flag that finds a registry,
an output that is a folder refused before any work, and how to read a folder holding two
formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.cli.main import main
from training.evaluation.calibration import Calibration
from training.evaluation.fusion import Fusion
from training.scoring.fused import save_fusion
from training.tests.registry_fixtures import save_tiny

HONEYPOT = "iot23/CTU-Honeypot-Capture-7-1-labeled.csv"


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    return line


@pytest.fixture()
def workdir(tmp_path) -> Path:
    """A pipeline's working directory as it holds its registry: WORKDIR/models, with a
    layer1_vae version and a fused detector naming it."""
    models = ["--registry-dir", str(tmp_path / "run" / "models")]
    model = save_tiny(tmp_path / "tiny.pt", dim=128)
    assert main(["-q", "registry", "register", "--model", "layer1_vae", "--model-path",
                 str(model), *models]) == 0
    save_fusion(Fusion("min-p", ({"layer": "layer1", "model_name": "layer1_vae",
                                  "version": "1.0.0"},),
                       Calibration.fit(np.arange(100.0), rule="quantile:0.9")),
                tmp_path / "run" / "models")
    return tmp_path / "run"


def _score(datasets, *flags, output="o.parquet", source=None):
    return ["score", "--input", source or f"csv:{datasets / HONEYPOT}", "--output",
            str(output), *flags]


@pytest.mark.parametrize("command, flag", [
    (["score", "--model", "layer1_vae", "--output", "o.parquet", "--input"], "--input"),
    (["collect", "--output", "out", "--source"], "--source"),
    (["pipeline", "--source", "csv:x.csv", "--test-source"], "--test-source"),
])
def test_a_malformed_source_names_the_flag_that_gave_it(command, flag, workdir, capsys,
                                                        monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    extra = ["--workdir", str(workdir)] if command[0] == "score" else []
    assert main([*command, "nope.csv", *extra]) == 2
    assert _error(capsys) == (f"error: {flag} must look like TYPE:PATH or NAME=TYPE:PATH, got "
                              "'nope.csv'")


def test_a_mistyped_model_gets_the_closest_name_and_fused_among_the_choices(
        datasets, workdir, capsys, tmp_path):
    where = ["--workdir", str(workdir)]
    assert main(_score(datasets, "--model", "layer1_vea", *where,
                       output=tmp_path / "o.parquet")) == 1
    assert _error(capsys) == ("error: no model named 'layer1_vea' (did you mean layer1_vae?); "
                              "known: layer1_vae, fused")
    assert main(_score(datasets, "--model", "fusd", *where, output=tmp_path / "o.parquet")) == 1
    assert _error(capsys) == ("error: no model named 'fusd' (did you mean fused?); known: "
                              "layer1_vae, fused")
    # Commands of registered models only (registry show, promote, ...) list those.
    assert main(["registry", "show", "--model", "layer1_vea", *where]) == 1
    assert _error(capsys) == ("error: no model named 'layer1_vea' (did you mean layer1_vae?); "
                              "known: layer1_vae")
    # rollback, history and compare too (trial R: rollback said "has no production version")
    assert main(["registry", "rollback", "--model", "layer1_vea", *where]) == 1
    assert _error(capsys) == ("error: no model named 'layer1_vea' (did you mean layer1_vae?); "
                              "known: layer1_vae")
    for command in ("history", "compare"):
        assert main(["registry", command, "--model", "layer1_vea", *where]) == 1
        assert "'layer1_vea' in " in (said := _error(capsys)), said
        assert said.endswith(("(did you mean layer1_vae?); known: layer1_vae",
                              "(did you mean layer1_vae?); the log has models: layer1_vae"))
    (workdir / "models" / "fusion.json").unlink()  # no fused detector: not a choice
    assert main(_score(datasets, "--model", "layer1_vea", *where,
                       output=tmp_path / "o.parquet")) == 1
    assert _error(capsys).endswith("known: layer1_vae")
    assert not (tmp_path / "o.parquet").exists()


def test_retrain_refuses_a_model_name_one_typo_from_a_registered_one(workdir, capsys):
    """Trial R: `retrain --model-name layer1_vea` registered a new model and promoted it, with
    no production model to beat. A name close to a registered one is refused before any work;
    a name far from every one still starts a new model (here: no splits to train on)."""
    from training.registry.registry import ModelRegistry

    assert main(["retrain", "--workdir", str(workdir), "--model-name", "layer1_vea",
                 "--force"]) == 2
    assert _error(capsys) == (
        f"error: --model-name layer1_vea: no layer1 model of that name in {workdir / 'models'} "
        "(did you mean layer1_vae?); retrain would start a new model, promoted with no "
        "production model to beat; to start one of that name on purpose, add --new-model")
    # Further than two edits, another layer's default name, or --new-model: a new model
    # (here: no splits to train on)
    for name, *flags in (["edge_detector"], ["layer1_vae_dmz"], ["layer1"],
                         ["layer1_vea", "--new-model"]):
        assert main(["retrain", "--workdir", str(workdir), "--model-name", name, "--force",
                     *flags]) != 0
        assert "of that name" not in _error(capsys)
    assert main(["retrain", "--workdir", str(workdir), "--layer", "layer2", "--model-name",
                 "layer2_gnn", "--force"]) != 0
    assert "of that name" not in _error(capsys)
    assert [m.model_name for m in ModelRegistry(workdir / "models").search_models()] == \
        ["layer1_vae"]


def test_a_registry_flag_that_finds_none_says_which_flag_would(datasets, workdir, capsys,
                                                               monkeypatch, tmp_path):
    models = workdir / "models"
    output = tmp_path / "o.parquet"
    assert main(_score(datasets, "--model", "layer1_vae", "--registry-dir", str(workdir),
                       output=output)) == 1
    assert _error(capsys) == (
        f"error: no model registry at {workdir} (it has no registry.db); registering a model "
        f"creates one; did you mean --workdir {workdir}? ({models} holds one: a pipeline's "
        "workdir keeps its registry in models/)")
    assert main(_score(datasets, "--model", "layer1_vae", "--workdir", str(models),
                       output=output)) == 1
    assert _error(capsys).endswith(f"; did you mean --registry-dir {models}? (it holds one "
                                   "itself)")
    monkeypatch.setenv("MAXIMUS_DATA_ROOT", str(tmp_path / "nothing"))  # no flag: the default
    assert main(_score(datasets, "--model", "layer1_vae", output=output)) == 1
    assert _error(capsys) == (
        f"error: no model registry at {tmp_path / 'nothing' / 'models'} (it has no "
        "registry.db); registering a model creates one; a pipeline's registry is "
        "WORKDIR/models: give --workdir WORKDIR (or --registry-dir DIR, or set "
        "MAXIMUS_DATA_ROOT)")
    assert main(["registry", "list", "--registry-dir", str(workdir)]) == 1
    assert _error(capsys).endswith(f"did you mean --workdir {workdir}? ({models} holds one: a "
                                   "pipeline's workdir keeps its registry in models/)")


@pytest.mark.parametrize("model", ["layer1_vae", "fused"])
def test_an_output_that_is_a_folder_is_refused_before_any_work(model, datasets, workdir,
                                                               capsys, tmp_path):
    folder = tmp_path / "out.parquet"
    folder.mkdir()
    assert main(_score(datasets, "--model", model, "--workdir", str(workdir),
                       output=folder)) == 2
    out = capsys.readouterr()
    assert "scored" not in out.out and "collecting" not in out.err  # no work done
    line = [x for x in out.err.splitlines() if x.startswith("error:")]
    assert line == [f"error: --output {folder}: is a folder; score writes one file there and "
                    "its incidents and alerts page beside it: name a file, e.g. "
                    f"{folder / 'scores.parquet'}"]  # trial F: a .outdir.parquet.*.tmp path
    assert list(folder.iterdir()) == []


def test_an_output_in_a_folder_that_did_not_exist_says_it_was_created(datasets, workdir,
                                                                      capsys, tmp_path):
    # trial F D12: a mistyped folder (/srv/alrets/) was created in silence, and the alerts
    # went where no shipper looks
    output = tmp_path / "alrets" / "day1" / "scores.parquet"
    assert main(_score(datasets, "--model", "layer1_vae", "--version", "1.0.0", "--workdir",
                       str(workdir), output=output)) == 0
    assert output.exists()
    note = f"note: created {tmp_path / 'alrets'} for --output (it did not exist)"
    assert note in capsys.readouterr().err.splitlines()
    assert main(_score(datasets, "--model", "layer1_vae", "--version", "1.0.0", "--workdir",
                       str(workdir), output=output.with_name("again.parquet"))) == 0
    assert "note: created" not in capsys.readouterr().err  # the folder is there now


def test_a_zeek_folder_holding_an_eve_file_says_how_to_read_both(datasets, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(datasets / "slips_zeek_tsv_test10" / "conn.log", folder / "conn.log")
    shutil.copy(datasets / "suricata" / "magnc_server_eve.json", folder / "eve.json")
    shutil.copy(datasets / HONEYPOT, folder / "flows.csv")  # no Zeek name: skipped, as before
    assert main(["collect", "--source", f"zeek:{folder}", "--output",
                 str(tmp_path / "c")]) == 2
    line = _error(capsys)
    assert line == (
        f"error: {folder / 'eve.json'}: given as zeek:PATH, but its records carry none of the "
        "fields of Zeek (ts, uid, id.orig_h, _path); this looks like Suricata EVE: use "
        f"suricata:PATH; zeek:{folder} reads the folder's files as Zeek files: to read both, "
        "give each its own source (one --input or --source each): "
        f"zeek:{folder / 'conn.log'} suricata:{folder / 'eve.json'}")
    # As it says: both read.
    sources = [x for spec in line.rsplit(": ", 1)[1].split() for x in ("--source", spec)]
    assert main(["-q", "collect", *sources, "--output", str(tmp_path / "both")]) == 0
    stats = json.loads(capsys.readouterr().out)["sources"]
    assert (stats["zeek0"]["events"], stats["suricata1"]["events"]) == (141, 253)


@pytest.mark.parametrize("given, hint", [
    (["--params", "layer1=a.json", "layer2=b.json"],
     "'layer2=b.json'; --params takes one LAYER=FILE: repeat the flag, --params layer1=a.json "
     "--params layer2=b.json"),
    (["--param=layer1=a.json", "layer2=b.json", "layer3=c.json", "--seed", "1"],  # abbreviated
     "'layer2=b.json'; --params takes one LAYER=FILE: repeat the flag, --params layer1=a.json "
     "--params layer2=b.json --params layer3=c.json"),
    (["--source", "zeek:a.log", "zeek:b.log"],
     "'zeek:b.log'; --source takes one [NAME=]TYPE:PATH: repeat the flag, --source zeek:a.log "
     "--source zeek:b.log"),
    (["--seed", "1", "2"], "'2'"),  # not a repeatable flag: nothing to repeat
])
def test_two_values_after_a_repeatable_flag_say_to_repeat_it(given, hint, capsys):
    """Trial U: `pipeline --params layer1=A layer2=B` said only "unrecognized argument
    'layer2=B'"."""
    assert main(["pipeline", *given]) == 2
    err = capsys.readouterr().err
    assert err == (f"maximus-train pipeline: error: unrecognized argument {hint} "
                   "(see maximus-train pipeline --help)\n")
