"""What `retrain` leaves in the registry, on a real capture: the kept epoch's validation loss as
`val_loss` (the gate's test-split loss as `test_loss`), the drift trigger's share of the
features that vary (`--drift-share`), and a warning when a version the gate refused is promoted
by hand or by a rollback (trial D2, D3, D9, G5).

One module fixture runs `preprocess`, `split` and two `retrain`s in process on the 766 flows of
CTU-SME-11: a first model and a challenger trained at a learning rate of 1e-7 for one epoch,
which the gate refuses. The temporal split leaves 7 benign validation flows, too few for a
threshold, so the first model is not deployed either (`gate.thin_calibration`): it is promoted
by hand, as an operator would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from training.cli.main import main
from training.layers.layer1 import Layer1
from training.registry.registry import ModelRegistry
from training.retraining.gate import TOO_FEW_REFERENCE, evaluate_model
from training.tests.cli_run import run_cli

SME = "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"
TSV10 = "slips_zeek_tsv_test10/conn.log"  # another network: clearly different flows
S008 = "stratosphere/008-zeek-mixed/data/conn.log.labeled"  # a year earlier, mostly attacks
MODEL = "layer1_vae"


def _splits(source: Path, folder: Path, *model: str) -> list[str]:
    """`preprocess` (with `--model M --registry-dir R`: the model's transform) and a temporal
    `split` of `source`: the --train-data, --val-data, --test-data flags."""
    run_cli("preprocess", "--source", f"zeek:{source}", "--output", str(folder / "features"),
            *model)
    run_cli("split", "--data", str(folder / "features/layer1_samples.npz"), "--strategy",
            "temporal", "--output", str(folder / "splits"))
    return [flag for split in ("train", "val", "test")
            for flag in (f"--{split}-data", str(folder / f"splits/layer1_{split}.npz"))]


@pytest.fixture(scope="module")
def retrained(datasets, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("retrain")
    flags = [*_splits(datasets / SME, root), "--registry-dir", str(root / "models")]
    first = json.loads(run_cli("retrain", *flags, "--epochs", "3"))
    assert not first["deployed"] and first["comparison"]["rule"] == TOO_FEW_REFERENCE
    assert first["comparison"]["reason"].startswith(
        "not promoted: layer1: its threshold rests on 7 benign validation events, fewer than the "
        "20 a threshold needs")
    run_cli("registry", "promote", "--registry-dir", str(root / "models"), "--model", MODEL,
            "--stage", "production", "--version", first["new_version"])
    refused = json.loads(run_cli("retrain", *flags, "--epochs", "1", "--lr", "1e-7", "--force"))
    assert not refused["deployed"], refused["reason"]
    return {"root": root, "registry": root / "models", "flags": flags, "first": first,
            "refused": refused}


def test_retrain_registers_the_kept_epochs_val_loss_and_the_test_loss_apart(retrained):
    """The registry's `val_loss` of a retrained version was the gate's loss on the test split
    (4.676 where training kept 3.082): now it is the sidecar's kept-epoch validation loss, as
    every other way of registering records it, and the test-split loss is `test_loss`."""
    registry = ModelRegistry(retrained["registry"])
    layer = Layer1()
    test = layer.load_units(retrained["flags"][5])
    for result in (retrained["first"], retrained["refused"]):
        stored = registry.get_metadata(MODEL, result["new_version"])
        loaded = registry.load_model(MODEL, result["new_version"])
        kept = loaded.sidecar["best_value"]
        assert loaded.sidecar["monitor"] == "val_loss"
        assert stored.metrics["val_loss"] == kept == stored.details["training"]["best_val_loss"]
        on_test = evaluate_model(layer, loaded.model, loaded.threshold, test)["val_loss"]
        assert stored.metrics["test_loss"] == pytest.approx(on_test, rel=1e-6)
        assert stored.metrics["test_loss"] != kept  # two losses, on two parts of the data
        assert result["metrics"] == stored.metrics  # what retrain printed is what it recorded
    # the champion's figures in the decision are test-split figures too, named so
    champion = retrained["refused"]["comparison"]["champion_metrics"]
    assert "val_loss" not in champion
    assert champion["test_loss"] == retrained["first"]["metrics"]["test_loss"]
    # registry compare ranks the versions on their validation losses
    compared = json.loads(run_cli("registry", "compare", "--registry-dir",
                                  str(retrained["registry"]), "--model", MODEL, "--metric",
                                  "val_loss", "--json"))
    assert compared["values"] == {r["new_version"]: r["metrics"]["val_loss"]
                                  for r in (retrained["first"], retrained["refused"])}


def test_promoting_a_version_the_gate_refused_warns_with_its_decision(retrained, tmp_path,
                                                                      capsys):
    """`registry promote --stage production` of the refused version said only "now
    production": it still promotes it, with one warning line quoting the gate's decision."""
    registry = shutil.copytree(retrained["registry"], tmp_path / "models")
    refused, first = retrained["refused"]["new_version"], retrained["first"]["new_version"]
    promote = ["registry", "promote", "--registry-dir", str(registry), "--model", MODEL,
               "--stage", "production", "--version"]
    # the first retrain was refused too (7 validation flows): each warns with its own reason
    for key, version in (("refused", refused), ("first", first)):
        assert main([*promote, version]) == 0
        out, err = capsys.readouterr()
        assert out == f"{MODEL} {version}: now production\n"
        assert err.splitlines() == [
            f"warning: {MODEL} {version} was not deployed by the gate that judged it when it "
            f"was registered: \"{retrained[key]['comparison']['reason']}\"; promoting it to "
            "production anyway, as asked"]
        assert ModelRegistry(registry).get_metadata(MODEL, stage="production").version == version


def test_rolling_back_to_a_version_the_gate_refused_warns_as_promoting_it_does(
        retrained, tmp_path, capsys):
    """`registry rollback` put the refused version back in production with no warning, where
    `promote` warned (trial G5): now it warns with the same line, and still rolls back."""
    registry = shutil.copytree(retrained["registry"], tmp_path / "models")
    refused, first = retrained["refused"]["new_version"], retrained["first"]["new_version"]
    where = ["--registry-dir", str(registry), "--model", MODEL]
    for version in (refused, first):  # the refused one in production, then replaced again
        assert main(["registry", "promote", *where, "--stage", "production", "--version",
                     version]) == 0
    capsys.readouterr()
    assert main(["registry", "rollback", *where, "--reason", "test"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{MODEL}: production is now {refused}\n"
    assert err.splitlines() == [
        f"warning: {MODEL} {refused} was not deployed by the gate that judged it when it was "
        f"registered: \"{retrained['refused']['comparison']['reason']}\"; rolling {MODEL} back "
        "to it anyway, as asked"]
    assert ModelRegistry(registry).get_metadata(MODEL, stage="production").version == refused


def test_drift_counts_the_features_that_vary_and_retrain_takes_drift_share(retrained,
                                                                           datasets, tmp_path):
    """Flows of another network against the production model's sample of CTU-SME-11: most of
    layer 1's 128 dims are unused slots, constant and equal on both sides, and counted they
    kept the share below half. `--drift-share` sets the share that fires."""
    registry = ["--registry-dir", str(retrained["registry"])]
    flags = _splits(datasets / TSV10, tmp_path, "--model", MODEL, *registry)
    idle = ["--min-new-samples", "1000000", "--retrain-frequency-days", "1000"]
    result = json.loads(run_cli("retrain", *flags, *registry, *idle, "--drift-share", "0.9"))
    drift = {t["name"]: t for t in result["triggers"]}["drift"]
    figures = drift["details"]
    counted, constant = figures["features_counted"], figures["constant_features"]
    drifted = len(figures["drifted_features"])
    assert counted + constant == 128 and constant > 60  # none without enough values
    assert figures["share"] == drifted / counted > 0.5  # drifted at the default share
    assert not drift["fired"] and not result["retrained"] and figures["drift_share"] == 0.9
    assert drift["reason"] == (
        f"{drifted} of {counted} features that vary drifted ({drifted / counted:.0%}; the data "
        f"drifts at 90%; {constant} constant and equal on both sides left out)")
    assert drifted / 128 < 0.5  # what the old share said: no drift


def test_the_triggers_count_and_compare_only_the_rows_training_learns_from(retrained, datasets,
                                                                           tmp_path):
    """Stratosphere 008's training part is 2,952 threat flows and 1,012 others: the trigger
    said "3,964 new training rows" and measured drift on the attacks too, though training
    drops them (trial G2). Now it counts and compares the rows training keeps: every one of
    them is new here (the capture is a year older than CTU-SME-11)."""
    registry = ["--registry-dir", str(retrained["registry"])]
    flags = _splits(datasets / S008, tmp_path, "--model", MODEL, *registry)
    idle = ["--min-new-samples", "1000000", "--retrain-frequency-days", "1000",
            "--drift-share", "1"]
    result = json.loads(run_cli("retrain", *flags, *registry, *idle))
    layer = Layer1()
    labels = layer.labels(layer.load_units(flags[1]))
    kept, threats = int((labels != 1).sum()), int((labels == 1).sum())
    assert threats > kept > 0
    found = {t["name"]: t for t in result["triggers"]}
    assert found["new_samples"]["details"]["new_samples"] == kept
    assert found["new_samples"]["reason"] == f"{kept} new training rows (< 1000000)"
    assert found["drift"]["details"]["n_current"] == kept
    # the result says what training would learn from, though nothing fired
    assert not result["retrained"] and result["data"]["train_rows"] == kept
    assert result["data"]["excluded_threat_rows"] == threats


def test_exclude_alerted_leaves_the_rows_the_champion_alerts_on_to_the_triggers(
        retrained, datasets, tmp_path):
    """With --exclude-alerted the triggers counted and compared only the rows the production
    model does not alert on, so a model alerting on another network's flows hid them from its
    own triggers, and every scheduled run scored the whole training split. Now the triggers see
    the same rows as without the flag, the champion scores nothing when none fires, and only
    training leaves out the rows it alerts on."""
    registry = ["--registry-dir", str(retrained["registry"])]
    flags = _splits(datasets / TSV10, tmp_path, "--model", MODEL, *registry)
    idle = ["--min-new-samples", "1000000", "--retrain-frequency-days", "1000",
            "--drift-share", "1"]
    layer = Layer1()
    train = layer.load_units(flags[1])
    champion = ModelRegistry(retrained["registry"]).load_model(MODEL, stage="production")
    selected = layer.labels(train) != 1  # the champion learnt from every row not a threat
    alerted = int((selected & (layer.score(champion.model, train) >= champion.threshold)).sum())
    assert 0 < alerted < selected.sum()

    def triggers(result: dict) -> dict:
        return {t["name"]: t for t in result["triggers"] if t["name"] != "age"}

    plain = json.loads(run_cli("retrain", *flags, *registry, *idle))
    excluding = json.loads(run_cli("retrain", *flags, *registry, *idle, "--exclude-alerted"))
    assert triggers(excluding) == triggers(plain)
    assert triggers(excluding)["new_samples"]["details"]["new_samples"] == selected.sum()
    assert not excluding["retrained"] and excluding["data"]["excluded_alerted_rows"] is None
    assert excluding["data"]["train_rows"] == selected.sum()
    # trained: the rows it alerts on are left out of training only
    copy = ["--registry-dir", str(shutil.copytree(retrained["registry"], tmp_path / "models"))]
    forced = json.loads(run_cli("retrain", *flags, *copy, *idle, "--exclude-alerted", "--force",
                                "--epochs", "1"))
    assert forced["retrained"] and triggers(forced) == triggers(plain)
    assert forced["data"]["excluded_alerted_rows"] == alerted
    assert forced["data"]["train_rows"] == selected.sum() - alerted
