"""`maximus-train evaluate` (training.cli.evaluate): data of the model's own transform only, and
a model given as a file or as a registered name, on a real IoT-23 capture."""

from __future__ import annotations

import re

import pytest

from training.artifacts.model_files import save_model
from training.cli.main import main
from training.detectors.vae import Layer1VAE
from training.features.layer1 import Layer1Featurizer
from training.layers.layer1 import Layer1
from training.registry.registry import ModelMetadata, ModelRegistry
from training.tests.conftest import collect

CAPTURE = "iot23/CTU-Malware-Capture-44-1-labeled.csv"
HINT = ("give a model file (<name>.pt beside its <name>.json, e.g. "
        "WORKDIR/checkpoints/layer1_vae_best.pt) or a registered model name with its registry "
        "(--model layer1_vae --workdir WORKDIR, or --registry-dir DIR)")


@pytest.fixture(scope="module")
def capture(datasets, tmp_path_factory):
    """The capture's layer-1 rows in the fitted l1.v5 layout, and a model of each layout
    (untrained: what is checked is which data it takes, not how well it scores)."""
    folder = tmp_path_factory.mktemp("evaluate")
    events = collect("csv_file", datasets / CAPTURE)[0]
    v4 = Layer1Featurizer().fit(events)  # the default, fitted (l1.v5 now)
    rows = Layer1(v4).featurize(events).save(folder / "layer1_test.npz")
    models = {}
    for name, spec in (("v3", Layer1Featurizer(layout="l1.v3").spec), ("v4", v4.spec)):
        models[name] = folder / name / "layer1_vae_best.pt"
        models[name].parent.mkdir()
        save_model(Layer1VAE(input_dim=128), models[name], threshold=1.0, feature_spec=spec)
    return {"rows": rows, "spec": v4.spec, **models}


def _error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_data_of_another_layer1_transform_is_refused_naming_both(capture, capsys):
    rows, spec, old = capture["rows"], capture["spec"], capture["v3"]
    assert main(["evaluate", "--model", str(old), "--data", str(rows), "--no-latency"]) == 1
    assert _error_line(capsys.readouterr().err) == (
        f"error: --data {rows} holds layer1 events made with another transform (l1.v5, "
        f"fingerprint {spec.fingerprint[:12]}) than --model {old}'s (l1.v3, "
        f"{Layer1Featurizer(layout='l1.v3').spec.fingerprint[:12]}), so its scores on them "
        "would mean nothing; evaluate it on events (--source TYPE:PATH: evaluate featurizes "
        "them with the model's transform), or on a split of `maximus-train preprocess "
        "--source ... --model NAME` (a registered model's transform), then `split`")
    assert main(["evaluate", "--model", str(capture["v4"]), "--data", str(rows),
                 "--no-latency"]) == 0
    assert "units alert" in capsys.readouterr().out


def test_a_registered_model_is_evaluated_by_name(capture, tmp_path, capsys):
    registry = ModelRegistry(tmp_path / "models")
    for version, model in (("1.0.0", capture["v3"]), ("1.1.0", capture["v4"])):
        registry.register_model(model, ModelMetadata("layer1_vae", version, "layer1"))
    registry.transition_stage("layer1_vae", "1.1.0", "production")
    where = ["--registry-dir", str(tmp_path / "models"), "--data", str(capture["rows"]),
             "--no-latency"]
    assert main(["evaluate", "--model", "layer1_vae", *where]) == 0  # the production one
    assert "units alert" in capsys.readouterr().out
    assert main(["evaluate", "--model", "layer1_vae", "--version", "1.0.0", *where]) == 1
    assert _error_line(capsys.readouterr().err).endswith(
        "than --model layer1_vae 1.0.0's (l1.v3, "
        f"{Layer1Featurizer(layout='l1.v3').spec.fingerprint[:12]}), so its scores on them "
        "would mean nothing; evaluate it on events (--source TYPE:PATH: evaluate featurizes "
        "them with the model's transform), or on a split of `maximus-train preprocess "
        "--source ... --model layer1_vae` (a registered model's transform), then `split`")
    assert main(["evaluate", "--model", "layer1_vae", "--version", "2.0.0", *where]) == 1
    assert _error_line(capsys.readouterr().err) == (
        "error: layer1_vae has no version '2.0.0'; known: 1.0.0, 1.1.0")


def test_a_model_that_is_no_file_says_so(capture, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAXIMUS_DATA_ROOT", str(tmp_path / "root"))  # no registry there
    data = ["--data", str(capture["rows"])]
    assert main(["evaluate", "--model", "layer1_vae", *data]) == 1
    assert _error_line(capsys.readouterr().err) == (
        f"error: --model layer1_vae: no such file, and no model registry at "
        f"{tmp_path / 'root' / 'models'} to find it in as a registered name; {HINT}")
    missing = tmp_path / "ck" / "layer1_vae_best.pt"
    assert main(["evaluate", "--model", str(missing), *data]) == 1
    assert _error_line(capsys.readouterr().err) == (
        f"error: --model {missing}: no such file; {HINT}")


def test_attack_types_from_the_logs_reach_the_terminal_inert(capture, datasets, tmp_path,
                                                             capsys):
    """The report's per-attack-type table printed a label's escape sequences raw, which could
    retitle or clear the analyst's terminal (review of b5435a8)."""
    hostile = "C&C\x1b]0;pwned\x07\x1b[2J"
    text = (datasets / CAPTURE).read_text().replace(",Malicious,C&C-FileDownload",
                                                    f",Malicious,{hostile}")
    assert hostile in text
    (tmp_path / "capture.csv").write_text(text)
    assert main(["evaluate", "--model", str(capture["v4"]), "--source",
                 f"csv:{tmp_path / 'capture.csv'}", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "C&C\\x1b]0;pwned\\x07\\x1b[2J" in out


def test_sensor_records_are_left_out_as_score_leaves_them_out(capture, datasets, capsys):
    """`evaluate --source` scored Zeek's stats and capture-loss records, which `score` and the
    pipeline leave out (no model learnt from them): 1,833 events where score scores 1,773."""
    assert main(["evaluate", "--model", str(capture["v4"]), "--source",
                 f"zeek:{datasets / 'zeek_zat'}", "--no-latency"]) == 0
    out, err = capsys.readouterr()
    assert "note: 60 sensor records (stats, capture loss, ...) left out: they describe the " \
           "sensor, not traffic" in err
    assert re.search(r"\d+ of 1,773 units alert", out), out
