"""Complete registry metadata: a version trained by every path (pipeline, train script, tuning
with --train-best, retrain) has its hyperparameters and dataset fingerprints, shown by
`registry show`; a promoted challenger loses the challenger alias."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from training.cli.main import main
from training.layers.layer1 import Layer1
from training.registry.registry import ModelMetadata, ModelRegistry
from training.retraining.continuous import RETRAINING_CHANGES
from training.retraining.gate import split_fingerprint


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A pipeline run's working directory: layer 1, one epoch, on the demo data."""
    from training.demo.generator import write_demo_file

    root = tmp_path_factory.mktemp("meta")
    demo = write_demo_file(root / "demo.json", n_events=1_500, seed=3)
    assert main(["pipeline", "--source", f"json:{demo}", "--layers", "layer1", "--epochs", "1",
                 "--batch-size", "64", "--workdir", str(root / "w"), "-q"]) == 0
    return root / "w"


def _fingerprint(path: Path) -> str:
    layer = Layer1()
    return split_fingerprint(layer, layer.load_units(path))


def _show(capsys, registry: Path, version: str) -> dict[str, str]:
    """`registry show` of layer1_vae `version`: its table rows as name -> value."""
    capsys.readouterr()
    assert main(["registry", "show", "--model", "layer1_vae", "--version", version,
                 "--registry-dir", str(registry)]) == 0
    rows = (re.split(r"\s{2,}", line.strip(), maxsplit=1)
            for line in capsys.readouterr().out.splitlines())
    return {row[0]: row[1] for row in rows if len(row) == 2}


def _check(shown: dict[str, str], work: Path, batch_size: int) -> None:
    assert shown["batch_size"] == str(batch_size)
    assert float(shown["learning_rate"]) > 0 and int(shown["num_epochs"]) >= 1
    assert json.loads(shown["model"])["input_dim"] == 128  # the VAE's constructor arguments
    splits = work / "splits"
    assert shown["train"] == _fingerprint(splits / "layer1_train.npz")
    assert shown["val"] == _fingerprint(splits / "layer1_val.npz")


def test_a_pipeline_version(work, capsys):
    shown = _show(capsys, work / "models", "1.0.0")
    _check(shown, work, 64)
    assert shown["test"] == _fingerprint(work / "splits" / "layer1_test.npz")
    assert shown["keep_unknown"] == "False"


def test_a_version_of_the_train_script_registered_by_hand(work, tmp_path, capsys):
    splits = work / "splits"
    assert main(["train", "layer1", "--train_data", str(splits / "layer1_train.npz"),
                 "--val_data", str(splits / "layer1_val.npz"), "--num_epochs", "1",
                 "--batch_size", "16", "--checkpoint_dir", str(tmp_path / "ck"),
                 "--no_tensorboard", "-q"]) == 0
    assert main(["registry", "register", "--model", "layer1_vae", "--model-path",
                 str(tmp_path / "ck" / "layer1_vae_best.pt"),
                 "--registry-dir", str(tmp_path / "models")]) == 0
    _check(_show(capsys, tmp_path / "models", "1.0.0"), work, 16)


def test_a_tuned_version_trained_with_train_best(work, tmp_path, capsys):
    splits = work / "splits"
    assert main(["tune", "--train_data", str(splits / "layer1_train.npz"), "--val_data",
                 str(splits / "layer1_val.npz"), "--n_trials", "1", "--max_epochs", "1",
                 "--train_best", "--best_epochs", "1", "--output_dir", str(tmp_path / "t"),
                 "--registry-dir", str(tmp_path / "models"), "-q"]) == 0
    best = json.loads(capsys.readouterr().out)
    shown = _show(capsys, tmp_path / "models", best["train_best"]["version"])
    _check(shown, work, best["best_params"]["batch_size"])


def test_a_retrained_version(work, capsys):
    assert main(["retrain", "--workdir", str(work), "--force", "--epochs", "1", "-q"]) == 0
    version = json.loads(capsys.readouterr().out)["new_version"]
    shown = _show(capsys, work / "models", version)
    _check(shown, work, RETRAINING_CHANGES["batch_size"])  # continuous training's own
    assert shown["test"] == _fingerprint(work / "splits" / "layer1_test.npz")


def test_a_promoted_challenger_is_no_longer_the_challenger(work, tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    checkpoint = work / "checkpoints" / "layer1_vae_best.pt"

    for version in ("1.0.0", "1.1.0"):
        registry.register_model(checkpoint, ModelMetadata("layer1_vae", version, "layer1"))
    registry.transition_stage("layer1_vae", "1.0.0", "production")
    registry.set_alias("layer1_vae", "challenger", "1.1.0")
    registry.transition_stage("layer1_vae", "1.1.0", "production", reason="it won")
    assert registry.aliases("layer1_vae") == {"champion": "1.1.0"}
    unalias = [t for t in registry.history("layer1_vae") if t.event == "unalias"
               and t.alias == "challenger"]
    assert [(t.version, t.reason) for t in unalias] == [("1.1.0", "it won")]
    # promoting another version leaves a challenger pointing elsewhere alone
    registry.set_alias("layer1_vae", "challenger", "1.0.0")
    registry.register_model(checkpoint, ModelMetadata("layer1_vae", "1.2.0", "layer1"))
    registry.transition_stage("layer1_vae", "1.2.0", "production")
    assert registry.aliases("layer1_vae") == {"champion": "1.2.0", "challenger": "1.0.0"}
