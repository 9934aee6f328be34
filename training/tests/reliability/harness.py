"""Helpers of the reliability suite: child processes with an injected fault (see faults.py),
file damage, and the docstring fields RELIABILITY.md is generated from."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from training.tests.conftest import REPO

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


def child_command(code: str, fault: dict | None = None) -> list[str]:
    """`python -c` running `code` with `fault` armed first (see faults.install)."""
    prelude = ""
    if fault is not None:
        prelude = ("import json, sys\nfrom training.tests.reliability.faults import install\n"
                   f"install(json.loads({json.dumps(json.dumps(fault))}))\n")
    return [sys.executable, "-c", prelude + textwrap.dedent(code)]


def run_child(code: str, fault: dict | None = None, cwd: Path | None = None,
              timeout: float = CHILD_TIMEOUT_S, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python process, with `fault` armed first (see faults.install).

    The code uses the package's public API; what it prints to stdout comes back as text.
    """
    return subprocess.run(child_command(code, fault), cwd=cwd, env=env or child_env(),
                          capture_output=True, text=True, timeout=timeout)


def start_child(code: str, fault: dict | None = None, cwd: Path | None = None
                ) -> subprocess.Popen:
    """`run_child` in the background; finish it with `finish(process)`."""
    return subprocess.Popen(child_command(code, fault), cwd=cwd, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = CHILD_TIMEOUT_S
           ) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = CHILD_TIMEOUT_S) -> None:
    """Wait until `path` exists (a paused child's flag); fail if the child ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the child ended (exit {process.returncode}) before {path.name}"
                                 f":\n{process.stderr.read()[-3000:]}")
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
    from training.demo_data import generate_demo_events

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

    from training.detectors.vae import Layer1VAE
    from training.model_files import save_model

    torch.manual_seed(seed)
    save_model(Layer1VAE(hidden_dim=8, latent_dim=2), path, threshold=threshold)
    return path


def seeded_registry(directory: Path):
    """A registry with model "vae": 1.0.0 in production, 1.1.0 registered (stage none), and a
    third saved model (`directory / "new.pt"`) ready to be registered."""
    from training.model_registry import ModelMetadata, ModelRegistry

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
