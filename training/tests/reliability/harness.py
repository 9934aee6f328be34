"""Helpers of the reliability suite: child processes with an injected fault (see faults.py),
file damage, and the docstring fields RELIABILITY.md is generated from."""

from __future__ import annotations

import atexit
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

from training.tests.conftest import REPO
from training.tests.reliability.children import Child, fork_child

CHILD_TIMEOUT_S = 120.0  # a guard against a hang, never reached by a passing run
LABELS = ("Stage", "Fault", "Expected")
_LABEL_LINE = re.compile(r"^\s*(Stage|Fault|Expected):\s*(.+)$")


def fault_fields(doc: str | None) -> dict[str, str]:
    """The labelled fields of a reliability test's docstring (continuation lines joined)."""
    fields: dict[str, str] = {}
    current = None
    for line in inspect.cleandoc(doc or "").splitlines():
        match = _LABEL_LINE.match(line)
        if match:
            current = match.group(1)
            fields[current] = match.group(2).strip()
        elif current and line.strip():
            fields[current] += " " + line.strip()
        else:
            current = None
    return fields


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def child_code(code: str, fault: dict | None = None) -> str:
    """`code` with `fault` armed first (see faults.install)."""
    prelude = ""
    if fault is not None:
        prelude = ("import json, sys\nfrom training.tests.reliability.faults import install\n"
                   f"install(json.loads({json.dumps(json.dumps(fault))}))\n")
    return prelude + textwrap.dedent(code)


_OUTPUTS = Path(tempfile.mkdtemp(prefix="reliability-children-"))
atexit.register(shutil.rmtree, _OUTPUTS, ignore_errors=True)


def start_child(code: str, fault: dict | None = None, cwd: Path | None = None) -> Child:
    """Start `code` in a new process (forked from a warm server, see children.py) with
    `fault` armed first; finish it with `finish(child)`."""
    return fork_child(child_code(code, fault), _OUTPUTS, child_env(), cwd)


def finish(child: Child, timeout: float = CHILD_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Wait for a child; its exit status (negative: the signal), stdout and stderr."""
    return child.wait(timeout)


def run_child(code: str, fault: dict | None = None, cwd: Path | None = None,
              timeout: float = CHILD_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run `code` in a new process with `fault` armed first, and wait for it.

    The code uses the package's public API; what it prints to stdout comes back as text.
    """
    return finish(start_child(code, fault, cwd), timeout)


def wait_for(path: Path, child: Child, timeout: float = CHILD_TIMEOUT_S) -> None:
    """Wait until `path` exists (a paused child's flag); fail if the child ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            raise AssertionError(f"the child ended (exit {child.returncode}) before {path.name}"
                                 f":\n{child.stderr[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def assert_killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -signal.SIGKILL, (
        f"the child was not killed by the injected fault (exit {result.returncode}):\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


def assert_ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stderr[-4000:]}"
    return result.stdout


def last_json(result: subprocess.CompletedProcess) -> dict:
    """The JSON object a child printed last."""
    return json.loads(assert_ok(result).strip().splitlines()[-1])


# -- damage to files ---------------------------------------------------------------------------

def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_bit(path: Path, at: float = 0.5, bit: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= bit
    path.write_bytes(bytes(data))


def temporaries(directory: Path) -> list[Path]:
    """Temporary files of atomic writes (`.<name>.<pid>.tmp`) anywhere under `directory`."""
    return sorted(directory.rglob(".*.tmp"))


# -- inputs ------------------------------------------------------------------------------------

def demo_inputs(directory: Path, n_events: int, n_files: int = 1, bad_every: int = 0
                ) -> tuple[list[Path], list[dict], list[tuple[str, int]]]:
    """Demo events as JSON Lines files, with a malformed line after every `bad_every` events.

    Returns:
        the files, the good events in order, and (file, 1-based line) of each malformed line.
    """
    from training.demo.generator import generate_demo_events

    events = generate_demo_events(max(n_events, 100), seed=11)["events"][:n_events]
    per_file = -(-n_events // n_files)
    paths, bad = [], []
    for k in range(n_files):
        path = directory / f"input{k}.jsonl"
        lines = []
        for event in events[k * per_file:(k + 1) * per_file]:
            lines.append(json.dumps(event))
            if bad_every and len(lines) % bad_every == 0:
                lines.append('{"timestamp": "2024-01-01T00:00:00Z", "unterminated": ')
                bad.append((str(path), len(lines)))
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths, events, bad


COLLECT_ONE = """
import json, re
from training.data_collection import DataCollector, DataSource
from training.errors import PipelineError
collector = DataCollector([DataSource("hostile", {kind!r}, {params!r})], deduplicate=False,
                          progress=False)
try:
    table = collector.collect_table()
    result = {{"events": table.num_rows, "stats": collector.get_stats(),
               "rejects": [r.to_dict() for r in collector.quarantined]}}
except PipelineError as exc:
    result = {{"error": type(exc).__name__, "message": str(exc)}}
# VmHWM is this process's own peak (ru_maxrss would include the parent's at fork time).
peak = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())
result["max_rss_mb"] = int(peak.group(1)) / 1024
print(json.dumps(result))
"""


def collect_in_child(kind: str, params: dict) -> dict:
    """Collect one source in a child process (a crash of the reader, even a segfault, fails
    the test instead of the test run). Returns events, stats and rejects, or the package
    error (any other exception fails), and the child's peak memory in MiB."""
    return last_json(run_child(COLLECT_ONE.format(kind=kind, params=params)))


# -- registry ----------------------------------------------------------------------------------

def small_model(path: Path, seed: int = 0, threshold: float = 0.5) -> Path:
    """A small saved Layer1VAE (weights + sidecar) for registry tests."""
    import torch

    from training.artifacts.model_files import save_model
    from training.detectors.vae import Layer1VAE

    torch.manual_seed(seed)
    save_model(Layer1VAE(hidden_dim=8, latent_dim=2), path, threshold=threshold)
    return path


def seeded_registry(directory: Path):
    """A registry with model "vae": 1.0.0 in production, 1.1.0 registered (stage none), and a
    third saved model (`directory / "new.pt"`) ready to be registered."""
    from training.registry.registry import ModelMetadata, ModelRegistry

    registry = ModelRegistry(directory / "models")
    registry.register_model(small_model(directory / "a.pt", 1), ModelMetadata("vae", "1.0.0",
                                                                            "layer1"))
    registry.transition_stage("vae", "1.0.0", "production", reason="first")
    registry.register_model(small_model(directory / "b.pt", 2), ModelMetadata("vae", "1.1.0",
                                                                            "layer1"))
    small_model(directory / "new.pt", 3)
    return registry


def registry_state(registry) -> dict:
    """What must survive any fault: versions with stages, aliases, the transition log."""
    return {"versions": {m.version: m.stage for m in registry.list_models("vae")},
            "aliases": registry.aliases("vae"),
            "log": [(t.version, t.event, t.from_stage, t.to_stage) for t in registry.history("vae")]}


REGISTRY_CHILD = """
import torch
from training.model_registry import ModelMetadata, ModelRegistry
torch.set_num_threads(1)
registry = ModelRegistry({registry!r})
{body}
print("done")
"""


# -- training and tuning runs shared by a faulted child and the test process -------------------

def train_vae(checkpoint_dir: str, resume: bool) -> dict:
    """Six epochs of a small Layer1VAE through LayerTrainer, with best, periodic (every 2) and
    last-state checkpoints; the same figures in any process (seeded, one thread)."""
    import torch

    from training.detectors.vae import Layer1VAE
    from training.trainer.batches import TensorBatches
    from training.trainer.loop import LayerTrainer, TrainingConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        x = torch.rand(64, 8, generator=torch.Generator().manual_seed(0))
        v = torch.rand(16, 8, generator=torch.Generator().manual_seed(1))
        config = TrainingConfig(model_name="vae", layer_name="layer1",
                                checkpoint_dir=checkpoint_dir, log_dir=checkpoint_dir + "/logs",
                                tensorboard=False, seed=0, num_epochs=6, device="cpu",
                                save_best_only=False, save_frequency=2, lr_scheduler="cosine",
                                early_stopping_patience=None)
        trainer = LayerTrainer(Layer1VAE(input_dim=8, hidden_dim=8, latent_dim=2, dropout=0.3),
                               config=config)
        trainer.train(TensorBatches(x, batch_size=16, shuffle=True, seed=5),
                      TensorBatches(v, batch_size=8), resume=resume)
    finally:
        torch.set_num_threads(threads)
    return {"epochs": [m.epoch for m in trainer.history],
            "train_loss": [m.train_loss for m in trainer.history],
            "weights": {k: t.tolist() for k, t in trainer.model.state_dict().items()}}


TRAIN = """
import json
from training.tests.reliability.harness import train_vae
print(json.dumps(train_vae({ck!r}, {resume!r})))
"""


class KillingObjective:
    """(x - 3)^2 over three reported epochs; SIGKILLs its own process in epoch 2 of trial
    `kill_in_trial` (None: never)."""

    def __init__(self, kill_in_trial: int | None = None) -> None:
        self.kill_in_trial = kill_in_trial

    def __call__(self, trial) -> float:
        x = trial.suggest_float("x", -10.0, 10.0)
        for step in range(3):
            trial.report((x - 3.0) ** 2 + 1.0 / (step + 1), step)
            if trial.number == self.kill_in_trial and step == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        return (x - 3.0) ** 2


def tune_study(out: str, kill_in_trial: int | None = None):
    """Tune the 6-trial SQLite study "crash" in `out` (continuing it if it exists)."""
    from training.tuning.tuner import HyperparameterTuner, TuningConfig

    config = TuningConfig("crash", n_trials=6, output_dir=out, seed=0, use_pruner=False)
    return HyperparameterTuner(config).tune(KillingObjective(kill_in_trial))


TUNE = """
from training.tests.reliability.harness import tune_study
tune_study({out!r}, {kill_in_trial!r})
"""
