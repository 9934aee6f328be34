"""Tests for training.scoring.follow_state: a state folder belongs to the model it began with.
`score --once` runs in process (`training.cli.main.main`) on conn lines of the Zeek writer
stand-in, with untrained VAEs registered as versions of one model."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import torch

from training.artifacts.model_files import save_model
from training.cli.main import main
from training.detectors.vae import Layer1VAE
from training.features.layer1 import Layer1Featurizer
from training.registry.registry import ModelMetadata, ModelRegistry
from training.tests.test_follow import _threshold
from training.tests.zeek_writer import header, line

T0 = 1_765_000_000.0


def _register(registry_dir: Path, version: str, seed: int, stage: str = "none") -> str:
    """An untrained VAE (weights from `seed`) as vae `version`; returns its weights' sha256."""
    torch.manual_seed(seed)
    weights = registry_dir.parent / f"src-{version}-{seed}" / "vae.pt"
    save_model(Layer1VAE().eval(), weights, feature_spec=Layer1Featurizer().spec,
               threshold=_threshold())
    ModelRegistry(registry_dir).register_model(
        weights, ModelMetadata("vae", version, "layer1", stage=stage))
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def _write(log: Path, numbers: range) -> None:
    with log.open("a") as out:
        out.write(("" if log.exists() and log.stat().st_size else header(T0))
                  + "".join(line(n, T0 + n) for n in numbers))


def _once(root: Path, registry_dir: Path, *flags: str, out: str = "s") -> list[str]:
    return ["score", "--model", "vae", "--registry-dir", str(registry_dir), "--input",
            f"zeek:{root / 'conn.log'}", "--output", str(root / f"{out}.jsonl"), "--alerts",
            str(root / f"{out}.alerts.jsonl"), "--once", *flags]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "conn.log" and "models" not in p.parts
            and not p.parent.name.startswith("src-")}


def test_a_state_refuses_another_version_and_goes_on_with_its_own(tmp_path, capsys):
    models = tmp_path / "models"
    first = _register(models, "1.0.0", seed=0, stage="production")
    _register(models, "1.1.0", seed=1)
    log = tmp_path / "conn.log"
    _write(log, range(20))
    assert main(_once(tmp_path, models)) == 0
    assert "followed with vae 1.0.0: 20 events scored" in capsys.readouterr().out
    state = json.loads((tmp_path / "s.jsonl.state" / "state.json").read_text())
    assert state["model"] == {"name": "vae", "version": "1.0.0", "sha256": first}

    # A promotion between two cron runs: production is now 1.1.0, which scored none of it.
    assert main(["registry", "promote", "--model", "vae", "--version", "1.1.0",
                 "--registry-dir", str(models)]) == 0
    _write(log, range(20, 30))
    before = _files(tmp_path)
    capsys.readouterr()
    assert main(_once(tmp_path, models)) == 1
    out, err = capsys.readouterr()
    assert "followed" not in out and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"error: {tmp_path / 's.jsonl.state'} holds the live scoring of vae 1.0.0, not of vae "
        "1.1.0 that this run scores with: its read positions, totals and open incidents are "
        "that model's. To go on, score with vae 1.0.0 again; to go on with vae 1.1.0 from these "
        "read positions and outputs, add --switch-model (the totals and open incidents start "
        "again with it); to score with vae 1.1.0 from the beginning of the inputs, give it a "
        "new --state folder and new --output and --alerts files")
    assert _files(tmp_path) == before  # nothing read, written or cut back

    # Either way out works: the model it began with goes on where it stopped...
    assert main(_once(tmp_path, models, "--version", "1.0.0")) == 0
    assert "followed with vae 1.0.0: 30 events scored" in capsys.readouterr().out
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 30
    # ...and the new version, in a state and outputs of its own, starts at the beginning.
    assert main(_once(tmp_path, models, out="new")) == 0
    assert "followed with vae 1.1.0: 30 events scored" in capsys.readouterr().out


def test_the_same_version_with_other_weights_is_refused_and_an_older_state_goes_on(
        tmp_path, capsys):
    here, there = tmp_path / "here" / "models", tmp_path / "there" / "models"
    weights = _register(here, "1.0.0", seed=0, stage="production")
    other = _register(there, "1.0.0", seed=1, stage="production")
    _write(tmp_path / "conn.log", range(10))
    assert main(_once(tmp_path, here)) == 0
    capsys.readouterr()
    assert main(_once(tmp_path, there)) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"error: {tmp_path / 's.jsonl.state'} holds the live scoring of vae 1.0.0 (weights "
        f"sha256 {weights[:12]}), not of vae 1.0.0 (weights sha256 {other[:12]}) that this run "
        "scores with: ")

    # A state saved before states recorded the sha256 names the version only: it goes on,
    # and records the sha256 from then on.
    path = tmp_path / "s.jsonl.state" / "state.json"
    state = json.loads(path.read_text())
    state["model"] = {"name": "vae", "version": "1.0.0"}
    path.write_text(json.dumps(state))
    _write(tmp_path / "conn.log", range(10, 15))
    assert main(_once(tmp_path, here)) == 0
    assert "followed with vae 1.0.0: 15 events scored" in capsys.readouterr().out
    assert json.loads(path.read_text())["model"]["sha256"] == weights


def test_a_compressed_input_is_refused_before_any_output_is_created(tmp_path, capsys):
    """A gzipped log cannot be followed: the run says so and leaves no empty alerts or scores
    file behind (it created both before reading: trial I, D9)."""
    models = tmp_path / "models"
    _register(models, "1.0.0", seed=0, stage="production")
    _write(tmp_path / "plain.log", range(5))
    (tmp_path / "conn.log").write_bytes(gzip.compress((tmp_path / "plain.log").read_bytes()))
    assert main(_once(tmp_path, models)) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {tmp_path / 'conn.log'}: a compressed file cannot be followed; score it with "
        "`maximus-train score` without --follow")
    assert not (tmp_path / "s.jsonl").exists() and not (tmp_path / "s.alerts.jsonl").exists()


def test_a_last_line_without_its_newline_is_said_to_wait_for_it(tmp_path, capsys):
    """A record whose line has not ended is not read (it may be half-written): the run says
    so, with its bytes, instead of leaving it unscored without a word (trial I, D8)."""
    models = tmp_path / "models"
    _register(models, "1.0.0", seed=0, stage="production")
    log = tmp_path / "conn.log"
    _write(log, range(5))
    unfinished = line(5, T0 + 5).rstrip("\n")
    with log.open("a") as out:
        out.write(unfinished)
    assert main(_once(tmp_path, models)) == 0
    out = capsys.readouterr().out
    assert "5 events scored" in out
    assert (f"{log}: its last {len(unfinished.encode())} bytes end no line yet: read once a "
            "newline ends them (a line being written, or a last line without one)") in out
    with log.open("a") as more:
        more.write("\n")
    assert main(_once(tmp_path, models)) == 0
    out = capsys.readouterr().out
    assert "6 events scored" in out and "end no line yet" not in out


def test_a_file_that_gave_no_record_is_named(tmp_path, capsys):
    """An empty input, or a header alone, is named as batch score names it; `--once` said
    nothing of it (trial I, D8)."""
    models = tmp_path / "models"
    _register(models, "1.0.0", seed=0, stage="production")
    (tmp_path / "conn.log").write_text(header(T0))  # the header alone
    assert main(_once(tmp_path, models)) == 0
    out = capsys.readouterr().out
    assert "0 events scored" in out
    assert (f"{tmp_path / 'conn.log'}: no records (an empty file or folder, or a header alone): "
            "nothing scored from it yet") in out
    _write(tmp_path / "conn.log", range(3))
    assert main(_once(tmp_path, models)) == 0
    out = capsys.readouterr().out
    assert "3 events scored" in out and "no records" not in out
