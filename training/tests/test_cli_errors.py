"""Every `maximus-train` command meets a bad flag, a bad TOML key and an output folder it cannot
write to: one line on stderr naming the flag, key or path, the exit code of its kind (2 usage or
configuration, 1 anything else), and no traceback (that is what -v is for).

In-process calls of `training.cli.main.main`, the console script's entry point.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from training.cli.main import build_parser, main
from training.cli.parser import walk
from training.demo.generator import write_demo_file
from training.tests.registry_fixtures import save_tiny

COMMANDS = [
    (), ("collect",), ("pipeline",), ("demo",), ("preprocess",), ("validate",), ("split",),
    ("train",), ("train", "layer1"), ("train", "layer2"), ("train", "layer3"), ("evaluate",),
    ("tune",), ("registry",), ("registry", "list"), ("registry", "show"),
    ("registry", "history"), ("registry", "compare"), ("registry", "register"),
    ("registry", "mirror"),
    ("registry", "promote"),
    ("registry", "alias"), ("registry", "rollback"), ("retrain",), ("score",),
]


def _error_line(err: str) -> str:
    """The one line of stderr that is not progress; no traceback anywhere."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    return lines[0]


def test_the_list_holds_every_command():
    assert sorted(path for path, _ in walk(build_parser())) == sorted(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "top")
def test_a_bad_flag_is_one_line_naming_it(path, capsys):
    assert main([*path, "--bogus-flag", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    prog = " ".join(("maximus-train", *path))
    assert _error_line(err) == (f"{prog}: error: unrecognized flag --bogus-flag "
                                f"(see {prog} --help)")


BAD_TOML = [
    ("[train.layer1]\nbogus = 1\n", "[train.layer1]: unknown key(s) bogus; allowed: batch_size, "
                                    "benign_only, beta, detector, dropout, epochs, error_floor, "
                                    "hidden_dim, keep_unknown, latent_dim, learning_rate, "
                                    "params, threshold"),
    ("[train.layer1]\nconfig = 1\n", "[train.layer1]: unknown key(s) config; allowed:"),
    ("config = 1\n", ": unknown key(s) config; allowed: drop_fields, gate, layers, max_events, seed,"),
    ('seed = "abc"\n', ": seed must be an integer, got 'abc'"),
    ('[train.layer3]\nchannels = "wide"\n', "[train.layer3]: channels must be a list of "
                                            "integers, got 'wide'"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Demo events, their layer-1 features and splits (made by the commands themselves), a
    saved layer-1 model and a registry where it is the production version."""
    root = tmp_path_factory.mktemp("cli-errors")
    events = write_demo_file(root / "events.json", n_events=400, seed=7)
    assert main(["-q", "preprocess", "--source", f"json:{events}", "--output",
                 str(root / "features")]) == 0
    features = root / "features" / "layer1_samples.npz"
    assert main(["-q", "split", "--data", str(features), "--strategy", "temporal", "--output",
                 str(root / "splits")]) == 0
    model = save_tiny(root / "tiny_best.pt", centre=0.5, dim=128, threshold=3.0)
    registry = ["--registry-dir", str(root / "models")]
    assert main(["registry", "register", "--model", "tiny", "--model-path", str(model),
                 *registry]) == 0
    assert main(["registry", "promote", "--model", "tiny", "--version", "1.0.0", *registry]) == 0
    return {"root": root, "events": events, "features": features, "model": model,
            "models": root / "models", **{s: root / "splits" / f"layer1_{s}.npz"
                                           for s in ("train", "val", "test")}}


@pytest.mark.parametrize("command", ["pipeline", "demo"])
@pytest.mark.parametrize("text, message", BAD_TOML, ids=[t.split("\n")[-2] for t, _ in BAD_TOML])
def test_a_bad_toml_key_is_one_line_naming_it(command, text, message, inputs, tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    source = (["--source", f"json:{inputs['events']}"] if command == "pipeline" else
              ["--events", "200", "--path", str(tmp_path / "demo.json")])
    assert main([command, "--config", str(config), *source, "--workdir",
                 str(tmp_path / "run")]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {config}") and message in line, line
    assert not (tmp_path / "run").exists()


@pytest.fixture
def unwritable(tmp_path):
    """A folder nothing can be written under: read-only, or, for root (whom permissions do not
    stop), a regular file standing where the folder should be."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
    else:
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        yield blocker


OUTPUTS = {
    "collect": lambda i, u: ["collect", "--source", f"json:{i['events']}", "--output", f"{u}/c"],
    "pipeline": lambda i, u: ["pipeline", "--source", f"json:{i['events']}", "--workdir",
                              f"{u}/run", "--layers", "layer1", "--epochs", "1"],
    "demo": lambda i, u: ["demo", "--events", "200", "--path", f"{u}/demo.json"],
    "preprocess": lambda i, u: ["preprocess", "--source", f"json:{i['events']}", "--output",
                                f"{u}/features"],
    "validate": lambda i, u: ["validate", "--data", str(i["features"]), "--report",
                              f"{u}/quality"],
    "split": lambda i, u: ["split", "--data", str(i["features"]), "--output", f"{u}/splits"],
    "train": lambda i, u: ["train", "layer1", "--train_data", str(i["train"]), "--val_data",
                           str(i["val"]), "--num_epochs", "1", "--hidden_dim", "8",
                           "--latent_dim", "2", "--no_tensorboard", "--checkpoint_dir",
                           f"{u}/checkpoints"],
    "evaluate": lambda i, u: ["evaluate", "--model", str(i["model"]), "--data", str(i["test"]),
                              "--no-latency", "--report", f"{u}/report"],
    "tune": lambda i, u: ["tune", "--train_data", str(i["train"]), "--val_data", str(i["val"]),
                          "--n_trials", "1", "--output_dir", f"{u}/tuning"],
    "registry register": lambda i, u: ["registry", "register", "--model", "tiny",
                                       "--model-path", str(i["model"]), "--registry-dir",
                                       f"{u}/models"],
    "retrain": lambda i, u: ["retrain", "--train-data", str(i["train"]), "--val-data",
                             str(i["val"]), "--test-data", str(i["test"]), "--registry-dir",
                             f"{u}/models", "--epochs", "1"],
    "score": lambda i, u: ["score", "--model", "tiny", "--input", f"json:{i['events']}",
                           "--registry-dir", str(i["models"]), "--output", f"{u}/scores.parquet"],
}


@pytest.mark.parametrize("command", OUTPUTS)
def test_an_unwritable_output_folder_is_one_line_naming_it(command, inputs, unwritable, capsys):
    """The commands that write (registry list/show/history/promote/alias/rollback only read a
    registry that exists, or change its database: test_cli_registry.py)."""
    assert main(OUTPUTS[command](inputs, unwritable)) == 1
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {unwritable}"), line
    assert line.endswith(("Permission denied", "Not a directory", "(Permission denied)",
                          "File exists, and is not a folder")), line


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["score", "demo"])
def test_a_write_error_names_the_output_given_never_a_temporary_name(command, inputs, capsys):
    # /proc takes no new files: the atomic writers' temporary file (or folder) cannot be made.
    output = "/proc/x.jsonl" if command == "score" else "/proc/x.json"
    assert main(OUTPUTS[command](inputs, "/proc")[:-1] + [output]) == 1
    line = _error_line(capsys.readouterr().err)
    assert line == f"error: {output}: cannot be written (No such file or directory)", line


@pytest.fixture(scope="module")
def other_layers(inputs) -> dict[str, Path]:
    """Layer-2 and layer-3 splits of the demo events, cut and saved as the pipeline does
    (WORKDIR/splits/layer<N>_{train,val,test}.npz)."""
    from training.layers.registry import get_layer
    from training.tests.conftest import collect

    events, _ = collect("json", inputs["events"])
    folder = inputs["root"] / "splits23"
    paths = {}
    for name in ("layer2", "layer3"):
        layer = get_layer(name)()
        parts = layer.split(layer.featurize(events), "temporal", (0.7, 0.15, 0.15), 42)
        paths.update({f"{name}_{part}": path
                      for part, path in layer.save_splits(parts, folder).items()})
    return paths


@pytest.mark.parametrize("layer, unit", [("layer2", "edge"), ("layer3", "window")])
def test_a_layer2_or_layer3_split_is_validated_and_named_where_refused(layer, unit, inputs,
                                                                       other_layers, capsys):
    """The pipeline's own layer-2/3 splits: `validate` checks them (drift against their train
    split too); `split` and `evaluate` with a layer-1 model say what the file is and which
    commands take it, not "it is not a dataset split"."""
    test, train = other_layers[f"{layer}_test"], other_layers[f"{layer}_train"]
    report = test.parent / f"{layer}_validation"
    assert main(["validate", "--data", str(test), "--reference", str(train), "--report",
                 str(report)]) in (0, 1)
    out = capsys.readouterr().out
    assert out.startswith("Data validation ") and " rows x " in out, out
    # Its features by the names its spec lists (edge features, bucket aggregates)
    from training.layers.registry import get_layer

    kind = get_layer(layer)()
    names = kind.feature_names(kind.load_units(test))
    text = report.with_suffix(".json").read_text()
    assert names and not re.search(r"feature_\d", text) and f'"{names[0]}"' in text
    assert main(["validate", "--data", str(test), "--reference", str(inputs["train"])]) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: --reference {inputs['train']} holds layer1 events, --data {test} {layer} "
        f"{unit}s; give a reference of the same layer (e.g. its train split)")
    assert main(["split", "--data", str(test), "--output", str(inputs["root"] / "resplit")]) == 1
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {test} holds {layer} features (") and (
        f"not layer-1 rows: it is a {layer} split or features file" in line and
        f"maximus-train train {layer}" in line), line
    assert main(["evaluate", "--model", str(inputs["model"]), "--data", str(test)]) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: --data {test} holds {layer} {unit}s, but --model {inputs['model']} is a "
        f"layer1 model; evaluate it with a {layer} model (--model e.g. "
        f"WORKDIR/checkpoints/{'layer2_gnn' if layer == 'layer2' else 'layer3_tcn'}_best.pt)")


def test_a_damaged_layer1_spec_is_one_line_naming_the_model(tmp_path, capsys):
    """A model file whose l1.v4 value counts are damaged (and its spec's fingerprint made to
    match): `evaluate` names the file, `score` the registered model and version."""
    from training.artifacts.model_files import save_model
    from training.detectors.vae import Layer1VAE
    from training.features.encoding import FeatureSpec
    from training.features.layer1 import Layer1Featurizer
    from training.tests.conftest import collect

    demo = write_demo_file(tmp_path / "demo.json", n_events=300, seed=1)
    spec = Layer1Featurizer(layout="l1.v4").fit(collect("json_file", demo)[0]).spec
    counts = spec.fitted["value_counts"]["counts"]
    field = sorted(counts)[0]
    damaged = {**counts, field: {**counts[field], sorted(counts[field])[0]: "many"}}
    fitted = {**spec.fitted, "value_counts": {**spec.fitted["value_counts"], "counts": damaged}}
    model = tmp_path / "layer1_vae.pt"
    save_model(Layer1VAE(input_dim=128), model, threshold=1.0,
               feature_spec=FeatureSpec(spec.layer, spec.version, spec.config, fitted))
    why = ("its input transform cannot be reproduced (a layer-1 spec's value counts are "
           "damaged: invalid literal for int() with base 10: 'many')")
    assert main(["evaluate", "--model", str(model), "--source", f"json:{demo}"]) == 1
    assert _error_line(capsys.readouterr().err) == f"error: {model}: {why}"
    registry = ["--registry-dir", str(tmp_path / "models")]
    assert main(["registry", "register", "--model", "layer1_vae", "--model-path", str(model),
                 "-q", *registry]) == 0
    capsys.readouterr()
    assert main(["score", "--model", "layer1_vae", "--version", "1.0.0", "--input",
                 f"json:{demo}", "--output", str(tmp_path / "s.parquet"), *registry]) == 1
    assert _error_line(capsys.readouterr().err) == f"error: layer1_vae 1.0.0: {why}"
