"""`retrain` registers no model the registry holds (trial H2): a refused challenger leaves
production as it was, the triggers fire again on the next cron run, and training on the same
splits with the same settings and seed gave the same weights, registered as 1.1.0, 1.2.0,
1.3.0 with one model.pt. On the 766 flows of CTU-SME-11 (too few benign validation flows for
a threshold, so no retrain deploys: the trigger `no_production_model` fires every time)."""

from __future__ import annotations

import json

from training.cli.main import main
from training.registry.registry import ModelRegistry
from training.retraining.gate import TOO_FEW_REFERENCE
from training.tests.cli_run import run_cli
from training.tests.test_retrain_registry import MODEL, SME, _splits


def test_a_retrain_that_repeats_a_version_registers_nothing(datasets, tmp_path, capsys):
    registry_dir = tmp_path / "models"
    flags = [*_splits(datasets / SME, tmp_path), "--registry-dir", str(registry_dir),
             "--epochs", "2"]
    first = json.loads(run_cli("retrain", *flags))
    assert first["new_version"] == "1.0.0"
    assert first["comparison"]["rule"] == TOO_FEW_REFERENCE and not first["deployed"]
    capsys.readouterr()

    assert main(["retrain", *flags]) == 0  # cron's next run: the same trigger, the same model
    captured = capsys.readouterr()
    again = json.loads(captured.out)
    assert again["success"] and again["retrained"] and not again["deployed"]
    assert again["new_version"] is None  # it was 1.1.0, the same model.pt as 1.0.0
    registry = ModelRegistry(registry_dir)
    assert [m.version for m in registry.search_models(model_name=MODEL)] == ["1.0.0"]
    assert [t.event for t in registry.history(MODEL)] == ["register", "alias"]
    assert first["registered"] is True and again["registered"] is False
    assert again["existing_version"] == "1.0.0"
    assert again["comparison"]["reason"] == first["comparison"]["reason"]
    weights = registry.get_metadata(MODEL, "1.0.0").weights_sha256
    assert again["note"] == again["reason"] == (
        f"not registered: the challenger's weights are byte for byte those of {MODEL} 1.0.0 "
        f"(none; sha256 {weights[:12]}, the same threshold), trained on the same data with the "
        f"same settings; the gate refused it then: {first['comparison']['reason']}; this run's "
        "gate decides the same. Retraining on the same splits repeats it: new data, or other "
        "settings (--epochs, --lr, --threshold, ...), train a new version")
    assert f"warning: {MODEL}: {again['note']}" in captured.err.splitlines()

    # other settings train another model, which is registered
    other = json.loads(run_cli("retrain", *flags[:-1], "3"))
    assert other["registered"] is True and other["new_version"] == "1.1.0"
