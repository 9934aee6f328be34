"""The promotion decision on real Windows recordings: host windows of 10 s over two OTRF
recordings leave layer 3 one validation window, too few to set a threshold on (trial F, D3), so
its model is registered, not promoted, by the pipeline and by `retrain` alike, and `score` with
it warns."""

from __future__ import annotations

import json
import re
import shutil
import zipfile

import pytest

from training.cli.main import main
from training.registry.registry import ModelRegistry
from training.retraining.gate import TOO_FEW_REFERENCE
from training.tests.cli_run import run_cli

OTRF = "windows_otrf_security_datasets"
RECORDINGS = (f"{OTRF}/cmd_psexec_lsa_secrets_dump.zip",
              f"{OTRF}/covenant_copy_smb_CreateRequest.zip")
LSASS = f"{OTRF}/psh_lsass_memory_dump_comsvcs.zip"


@pytest.fixture(scope="module")
def run(datasets, tmp_path_factory):
    work = tmp_path_factory.mktemp("promotion") / "win"
    sources = [arg for path in RECORDINGS for arg in ("--source", f"windows:{datasets / path}")]
    code = main(["pipeline", *sources, "--layers", "layer3", "--layer3-entity", "host",
                 "--layer3-bucket-seconds", "10", "--epochs", "1", "--workdir", str(work), "-q"])
    assert code == 0
    return work


def test_a_layer_calibrated_on_one_validation_window_is_registered_not_promoted(run):
    (outcome,) = json.loads((run / "pipeline.json").read_text())["layers"]
    decision = outcome["decision"]
    assert (outcome["version"], outcome["stage"]) == ("1.0.0", "none")
    assert decision["deploy"] is False and decision["rule"] == TOO_FEW_REFERENCE
    assert decision["reason"].startswith(
        "not promoted: layer3: its threshold rests on 1 validation window, fewer than the 20 a "
        "threshold needs (it is at or just above that window's score, expected alert rate "
        "100.00%); give the run more data, a larger [split] val_ratio or windows shorter than "
        "10 s (--layer3-bucket-seconds) (the gate alone would promote it: ")
    registry = ModelRegistry(run / "models")
    assert registry.get_metadata("layer3_tcn", "1.0.0").stage == "none"
    assert registry.load_model("layer3_tcn", alias="challenger").calibration.n_scores == 1


def test_scoring_with_it_warns_of_its_threshold(run, datasets, capsys):
    capsys.readouterr()
    code = main(["score", "--workdir", str(run), "--model", "layer3_tcn", "--alias",
                 "challenger", "--input", f"windows:{datasets / LSASS}", "--output",
                 str(run.parent / "w3.parquet"), "--top", "0", "-q"])
    out, err = capsys.readouterr()
    assert code == 0 and "expected 100.000%" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: layer3_tcn")]
    assert warnings == [
        "warning: layer3_tcn 1.0.0: its threshold rests on 1 validation window, fewer than the "
        "20 a threshold needs (it is at or just above that window's score, expected alert rate "
        "100.00%): its alerts, percentiles and expected alert rate say little; retrain it on "
        "more data before acting on them"]
    assert re.search(r"^scored \d+ events \(\d+ layer3 units\)", out, re.M)
    # Live scoring warns of it as well (it did not: review R5). A zip cannot be followed.
    with zipfile.ZipFile(datasets / LSASS) as archive:
        (member,) = archive.namelist()
        plain = run.parent / "lsass.json"
        plain.write_bytes(archive.read(member))
    code = main(["score", "--workdir", str(run), "--model", "layer3_tcn", "--alias",
                 "challenger", "--input", f"windows:{plain}", "--once", "--output",
                 str(run.parent / "w3.jsonl"), "--alerts", str(run.parent / "w3a.jsonl")])
    out, err = capsys.readouterr()
    assert code == 0
    assert [line for line in err.splitlines() if line.startswith("warning: layer3_tcn")] == \
        warnings
    # The fused detector over it names it too (its summary had no such caution).
    code = main(["score", "--workdir", str(run), "--model", "fused", "--input",
                 f"windows:{datasets / LSASS}", "--output", str(run.parent / "wf.parquet"), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line for line in err.splitlines() if "say little" in line] == [
        "warning: fused layer3_tcn 1.0.0: layer3_tcn 1.0.0: its threshold rests on 1 validation window, "
        "fewer than the 20 a threshold needs (it is at or just above that window's score, "
        "expected alert rate 100.00%): its alerts, percentiles and expected alert rate say "
        "little; retrain it on more data before acting on them"]


def test_retrain_does_not_deploy_a_challenger_calibrated_on_one_validation_window(run, tmp_path):
    """`retrain` on the same splits deployed its challenger: the rule lived in the pipeline's
    promotion only, and without a production model the unlabeled gate could not refuse a
    threshold whose expected alert rate is 100%. Now it refuses it as the pipeline does."""
    work = shutil.copytree(run, tmp_path / "win")  # the module's run stays as it is
    # another learning rate: with the pipeline's settings it trains the pipeline's 1.0.0
    # again, byte for byte, which retrain does not register twice (test_retrain_repeated)
    result = json.loads(run_cli("retrain", "--workdir", str(work), "--layer", "layer3",
                                "--epochs", "1", "--lr", "0.0005"))
    decision = result["comparison"]
    assert result["retrained"] and not result["deployed"]
    assert decision["deploy"] is False and decision["rule"] == TOO_FEW_REFERENCE
    assert decision["reason"].startswith(  # its unlabeled validation units count as benign
        "not promoted: layer3: its threshold rests on 1 benign validation window, fewer than the "
        "20 a threshold needs (it is at or just above that window's score, expected alert rate "
        "100.00%); give the run more data, a larger validation split (split --val-ratio) or "
        "a model of windows shorter than 10 s (retrain keeps the model's; train one with "
        "pipeline --layer3-bucket-seconds) (the gate alone would promote it: ")
    registry = ModelRegistry(work / "models")
    stored = registry.get_metadata("layer3_tcn", result["new_version"])
    assert stored.stage == "none" and stored.details["decision"]["rule"] == TOO_FEW_REFERENCE
    assert registry.aliases("layer3_tcn")["challenger"] == result["new_version"]
