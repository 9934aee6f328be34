"""train_layer1_vae and its command line: the seed README's steps 2-5 as written, exact resume
after SIGKILL, two-process torchrun on the CPU, the label policy."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training.cli.train import build_parser
from training.layers.layer1 import Layer1
from training.artifacts.model_files import load_model, read_sidecar
from training.errors import ConfigError, SchemaError
from training.features.encoding import FeatureSpec
from training.train_layer1_vae import (
    Layer1VAE, default_config, main, read_split, train_layer1_vae,
)
from training.trainer.resume import load_state

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "training" / "train_layer1_vae.py"
STEP4 = ["--train_data", "training/data/splits/layer1_train.npz",
         "--val_data", "training/data/splits/layer1_val.npz", "--batch_size", "32"]

# The README's steps 2 and 3 (corrected step 2 from the project README), as a user runs them.
STEPS_2_3 = """
from training.demo.generator import write_demo_file
write_demo_file("demo/synthetic_events.json", n_events=2000, seed=7)

from training.data_collection import DataCollector, DataSource, DataSourceType
from training.data_preprocessor import DataPreprocessor, LayerType
source = DataSource(name="demo", source_type=DataSourceType.JSON_FILE,
                    connection_params={"path": "demo/synthetic_events.json"})
collector = DataCollector(sources=[source])
events = list(collector.collect(max_events=10000))
preprocessor = DataPreprocessor()
samples = preprocessor.preprocess_batch([e.to_dict() for e in events], LayerType.LAYER1_SENSORY)
preprocessor.save_samples(samples, "layer1_samples")

from training.dataset_builder import DatasetBuilder, SplitStrategy
import numpy as np
data = np.load('training/data/preprocessed/layer1_samples.npz')
builder = DatasetBuilder(features=data['features'], labels=data['labels'],
                         sample_ids=data['sample_ids'].tolist())
splits = builder.create_splits(strategy=SplitStrategy.STRATIFIED)
builder.save_splits(splits, prefix='layer1')
"""

KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from training.trainer.callbacks import Callback
from training.train_layer1_vae import main

class KillAfter(Callback):
    def on_epoch_start(self, trainer, epoch):
        if epoch == {k} + 1:  # epoch {k} and its last-state checkpoint are done
            os.kill(os.getpid(), signal.SIGKILL)

main(sys.argv[1:], callbacks=[KillAfter()])
"""


def run(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=cwd, env={**os.environ, "PYTHONPATH": ""},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A working directory holding the splits made by the README's steps 2-3."""
    pytest.importorskip("training.dataset_builder", reason="steps 2-3 need the dataset builder")
    cwd = tmp_path_factory.mktemp("readme")
    before = os.getcwd()
    os.chdir(cwd)  # the steps use paths relative to the working directory
    try:
        exec(STEPS_2_3, {})
    finally:
        os.chdir(before)
    return cwd


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_readme_step4_as_written_and_step5_loads(workdir: Path) -> None:
    done = run([sys.executable, str(SCRIPT), *STEP4, "--num_epochs", "2"], workdir)
    assert done.returncode == 0, done.stderr
    assert "model: training/checkpoints/layer1_vae_best.pt" in done.stdout
    weights = workdir / "training" / "checkpoints" / "layer1_vae_best.pt"
    sidecar = read_sidecar(weights)
    # the kept value is the validation loss, named as the progress lines name it
    assert sidecar["monitor"] == "val_loss" and (
        f"; best epoch {sidecar['best_epoch']} (val_loss {sidecar['best_value']:.6g})\n"
        in done.stdout)
    # step 5, as written
    model = Layer1VAE()
    model.load_state_dict(torch.load(weights))
    assert sidecar["model_class"] == "Layer1VAE" and sidecar["init_args"] == model.init_args
    assert sidecar["threshold"]["method"] == "best_f1"  # the val split has both classes
    _, labels, _ = read_split(workdir / "training/data/splits/layer1_val.npz")
    scores = load_model(weights).model.anomaly_score(
        torch.from_numpy(read_split(workdir / "training/data/splits/layer1_val.npz")[0]))
    flagged = scores.detach().numpy() >= sidecar["anomaly_threshold"]
    assert flagged.any() and (labels[flagged] == 1).mean() > (labels == 1).mean()
    assert sorted(p.name for p in (workdir / "training" / "logs" / "layer1_vae").iterdir())


def test_sigkill_after_epoch_k_then_resume_ends_with_the_same_weights(workdir: Path) -> None:
    common = [*STEP4, "--num_epochs", "4", "--deterministic", "--lr_scheduler", "cosine",
              "--no_tensorboard", "--dropout", "0.3"]
    killer = workdir / "killer.py"
    killer.write_text(KILLER.format(repo=str(REPO), k=2))
    # the uninterrupted run and the one killed after epoch 2 run side by side
    straight = start([sys.executable, str(SCRIPT), *common, "--checkpoint_dir", "straight"],
                     workdir)
    killed = start([sys.executable, str(killer), *common, "--checkpoint_dir", "killed"], workdir)
    assert killed.wait(timeout=120) == -signal.SIGKILL, killed.stderr.read()
    assert straight.wait(timeout=120) == 0, straight.stderr.read()
    state = load_state(workdir / "killed" / "layer1_vae_last_state.pt")
    assert state["epoch"] in (1, 2)  # epoch 2's file may still have been on its way
    resumed = run([sys.executable, str(SCRIPT), *common, "--checkpoint_dir", "killed",
                   "--resume", "-v"], workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"at epoch {state['epoch']}" in resumed.stderr
    for name in ("layer1_vae_best.pt", "layer1_vae_last_state.pt"):
        if name.endswith("_last_state.pt"):
            a, b = (load_state(workdir / d / name)["model"] for d in ("straight", "killed"))
        else:
            a, b = (torch.load(workdir / d / name, weights_only=True)
                    for d in ("straight", "killed"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_torchrun_two_processes_on_cpu_write_one_checkpoint(workdir: Path) -> None:
    done = run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", str(SCRIPT), *STEP4, "--num_epochs", "2",
                "--device", "cpu", "--checkpoint-dir", "ddp", "--no-tensorboard"], workdir,
               timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (workdir / "ddp").iterdir()) == [
        "layer1_vae_best.json", "layer1_vae_best.pt", "layer1_vae_last_state.pt"]
    assert done.stdout.count("model: ddp/layer1_vae_best.pt") == 1  # rank 0 reports
    # each process trained on half of the benign rows per epoch
    train_rows = int((read_split(workdir / "training/data/splits/layer1_train.npz")[1] == 0).sum())
    assert f"on {train_rows} events" in done.stdout
    load_model(workdir / "ddp" / "layer1_vae_best.pt")


def _toy(n: int, seed: int, threat_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 16)) * 0.3).astype(np.float32)
    y = np.zeros(n, np.int8)
    x[:threat_rows] += 0.6
    y[:threat_rows] = 1
    return x, y


def test_function_label_policy_results_and_sidecar(tmp_path: Path) -> None:
    x, y = _toy(200, 0, threat_rows=20)
    vx, vy = _toy(100, 1, threat_rows=10)
    spec = FeatureSpec("layer1", "test", {"width": 16})
    cfg = default_config(num_epochs=3, checkpoint_dir=str(tmp_path), tensorboard=False,
                         batch_size=32)
    model, results = train_layer1_vae(x, y, vx, vy, cfg, beta=0.5, hidden_dim=12,
                                      latent_dim=3, dropout=0.1, feature_spec=spec)
    assert results["train_units"] == 180  # both classes: benign rows only
    assert results["epochs_trained"] == 3 and len(results["history"]) == 3
    assert results["threshold"]["method"] == "best_f1"
    loaded = load_model(results["checkpoint"], expected_spec=spec)
    assert loaded.model.init_args == model.init_args
    assert model.init_args["hidden_dim"] == 12 and model.beta == 0.5
    assert loaded.threshold == results["threshold"]["value"]
    for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)  # the returned model is the best epoch's
    _, kept = train_layer1_vae(x, y, None, None, cfg.replace(num_epochs=1), benign_only=False)
    assert kept["train_units"] == 200 and kept["threshold"] is None
    _, unlabeled = train_layer1_vae(x, np.full(200, -1), None, None, cfg.replace(num_epochs=1))
    assert unlabeled["train_units"] == 200  # unlabeled: every row


def test_bad_input_is_refused_with_row_and_shape(tmp_path: Path) -> None:
    x, y = _toy(50, 0)
    x[7, 2] = np.nan
    cfg = default_config(num_epochs=1, checkpoint_dir=str(tmp_path), tensorboard=False)
    with pytest.raises(SchemaError, match=r"NaN or infinite values in 1 rows \(first: row 7\)"):
        train_layer1_vae(x, y, config=cfg)
    with pytest.raises(SchemaError, match=r"val_features must have shape \(rows, 16\)"):
        train_layer1_vae(_toy(50, 0)[0], y, np.zeros((5, 3), np.float32), None, cfg)
    with pytest.raises(ConfigError, match="no benign"):
        train_layer1_vae(_toy(50, 0)[0], np.ones(50), config=cfg, benign_only=True)


def test_every_model_flag_takes_effect(workdir: Path, monkeypatch) -> None:
    monkeypatch.chdir(workdir)
    assert main([*STEP4, "--num-epochs", "2", "--hidden-dim", "16", "--latent-dim", "4",
                 "--dropout", "0.1", "--beta", "0.5", "--learning-rate", "0.01", "--seed", "3",
                 "--amp", "bf16", "--device", "cpu", "--checkpoint-dir", "flags",
                 "--model-name", "v", "--no-tensorboard", "--lr-scheduler", "cosine"]) == 0
    sidecar = read_sidecar(workdir / "flags" / "v_best.pt")
    assert sidecar["init_args"] == {"input_dim": 128, "hidden_dim": 16, "latent_dim": 4,
                                    "dropout": 0.1, "num_hidden_layers": 2, "beta": 0.5,
                                    "reconstruction": "mse", "score": "reconstruction",
                                    "error_floor": None}
    cfg = sidecar["training_config"]
    assert (cfg["learning_rate"], cfg["seed"], cfg["cpu_amp"], cfg["device"], cfg["num_epochs"],
            cfg["lr_scheduler"]) == (0.01, 3, True, "cpu", 2, "cosine")
    assert main([*STEP4, "--amp", "fp16", "--device", "cpu"]) == 2


def test_flags_take_dashes_and_errors_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    args = build_parser(Layer1(), "train_layer1_vae.py").parse_args(["--train-data", "a.npz", "--num-epochs", "3", "--batch-size",
                                 "8", "--hidden-dim", "7", "--latent-dim", "2",
                                 "--learning-rate", "0.01", "--amp", "bf16"])
    assert (args.train_data, args.num_epochs, args.batch_size, args.hidden_dim,
            args.latent_dim, args.learning_rate, args.amp) == ("a.npz", 3, 8, 7, 2, 0.01, "bf16")
    monkeypatch.chdir(tmp_path)
    assert main(["--train_data", "missing.npz"]) == 1  # unreadable input, as every command
    assert "missing.npz: no such file" in capsys.readouterr().err
    assert main(["--train_data", "a.npz", "--num_epochs", "x"]) == 2  # bad usage
    config_json = json.loads(default_config(num_epochs=5).to_json())
    assert config_json["model_name"] == "layer1_vae" and config_json["seed"] == 42



@pytest.fixture
def one_epoch(workdir: Path, tmp_path: Path, monkeypatch) -> tuple[list[str], Path]:
    """The flags of a tiny layer-1 run with its checkpoints in tmp_path (the README's splits,
    but for --train_data), and the last state of its first epoch."""
    monkeypatch.chdir(workdir)
    common = ["--val_data", STEP4[3], "--hidden_dim", "8", "--latent_dim", "2",
              "--no_tensorboard", "--checkpoint_dir", str(tmp_path)]
    assert main(["--train_data", STEP4[1], *common, "--num_epochs", "1", "-q"]) == 0
    return common, tmp_path / "layer1_vae_last_state.pt"


RESUME_ADVICE = ("start without --resume (the run begins at epoch 1 and rewrites the file), or "
                 "delete the file")


def test_resume_from_a_truncated_state_names_the_file_and_what_to_do(one_epoch, capsys) -> None:
    common, path = one_epoch
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])  # e.g. a copy cut short
    capsys.readouterr()
    assert main(["--train_data", STEP4[1], *common, "--num_epochs", "2", "--resume"]) == 1
    assert _last_line(capsys) == (
        f"error: {path}: the trainer state is damaged or truncated ({len(whole) // 2:,} bytes, "
        f"not a whole file); {RESUME_ADVICE}")


def test_resume_on_other_training_data_is_refused_naming_both(one_epoch, workdir, capsys
                                                              ) -> None:
    """Named by their fingerprints (the state records no path); a state written before states
    recorded theirs resumes on any data, as before."""
    from training.datasets.split import DatasetSplit
    from training.retraining.gate import split_fingerprint
    from training.trainer.resume import save_state

    common, path = one_epoch
    other = STEP4[3]  # the validation split
    saved = load_state(path)["data_fingerprints"]["train"]
    assert saved == split_fingerprint(Layer1(), DatasetSplit.load(workdir / STEP4[1]))
    this_run = split_fingerprint(Layer1(), DatasetSplit.load(workdir / other))
    capsys.readouterr()
    assert main(["--train_data", other, *common, "--num_epochs", "2", "--resume"]) == 1
    assert _last_line(capsys) == (
        f"error: {path}: saved by a run on other training data (fingerprint {saved[:12]}) than "
        f"this run's ({this_run[:12]}); resume with the training data it started on, or "
        f"{RESUME_ADVICE}")
    old = load_state(path)
    del old["data_fingerprints"]
    save_state(path, old)
    assert main(["--train_data", other, *common, "--num_epochs", "2", "--resume", "-q"]) == 0
    assert load_state(path)["epoch"] == 2


def test_a_logged_warning_reads_as_the_commands_own_lines(one_epoch, capsys) -> None:
    """`warning: ...` as the commands print theirs, not `WARNING training.trainer.resume: ...`;
    with -v, INFO lines keep their level and logger."""
    common, path = one_epoch
    capsys.readouterr()
    assert main(["--train_data", STEP4[1], *common, "--num_epochs", "2", "--resume",
                 "--batch_size", "16", "-v"]) == 0
    err = capsys.readouterr().err
    assert f"warning: resuming {path} with changed settings: batch_size\n" in err, err
    assert "WARNING" not in err
    assert f"INFO training.trainer.resume: resumed {path} at epoch 1" in err


def _last_line(capsys) -> str:
    """The last line of stderr (the error), after checking there is no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.splitlines()[-1]


def test_the_summary_names_the_rows_benign_only_training_left_out(tmp_path: Path,
                                                                  capsys) -> None:
    from training.tests.tuning_helpers import write_layer1_splits

    _, val = write_layer1_splits(tmp_path)  # 30 benign, 8 threat and 2 unknown rows
    flags = ["--train_data", val, "--val_data", val, "--num_epochs", "1", "--hidden_dim", "8",
             "--latent_dim", "2", "--no_tensorboard", "--checkpoint_dir", str(tmp_path)]
    assert main(flags) == 0
    assert ("trained on 30 benign events of 40: 8 threat and 2 unlabeled rows were left out "
            "(benign-only training); --train_on all keeps them"
            ) in capsys.readouterr().out.splitlines()
    assert main([*flags, "--train_on", "all"]) == 0
    out = capsys.readouterr().out
    assert "trained 1 epochs on 40 events" in out and "left out" not in out
    # without validation data the best epoch is the lowest training loss ("loss" in progress)
    assert main([*flags[:2], *flags[4:], "--train_on", "all"]) == 0
    assert re.search(r"; best epoch 1 \(loss \d", capsys.readouterr().out)
