"""Every command on every hostile input: an error is one `error:` line, never a traceback.

The inputs are those of "Hostile filesystems and poisoned records" (links leaving a source
folder, FIFOs, overflowing and null timestamps, UTF-16/32 and binary exports, a JSON array cut
by the end of the file, links planted in an output folder) and of "Runs that race or die
half-way" (duplicates and malformed lines, a working directory held by another run, a full
disk). Each command runs as `python -m training.cli ...` does (`runpy` of the same module) in
a process forked from the suite's warm server: a real, separate process, without the 4 s of
imports a fresh interpreter pays.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from training.tests.reliability.harness import assert_ok, run_child
from training.tests.reliability.pipeline_runs import pipeline_toml, unlabeled_events

pytestmark = pytest.mark.reliability

AS_MODULE = """
import runpy, sys
sys.argv = ["training.cli", *{argv!r}]
runpy.run_module("training.cli", run_name="__main__", alter_sys=True)
"""


def _lines(n: int, start: int = 0) -> list[str]:
    return [json.dumps({"timestamp": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                        "source_ip": f"10.0.0.{i % 250 + 1}", "dest_ip": "192.0.2.1",
                        "dest_port": 443, "protocol": "tcp", "n": i})
            for i in range(start, start + n)]


def _csv(n: int) -> str:
    return "timestamp,source_ip,dest_port\n" + "".join(
        f"2024-01-01T00:00:{i:02d}Z,10.0.0.{i + 1},443\n" for i in range(n))


def hostile_inputs(root: Path) -> dict[str, tuple[str, Path]]:
    """name -> (source type, path) of every hostile event input."""
    outside = root / "outside"
    outside.mkdir()
    (outside / "shadow").write_text("root:secret\n")
    inputs: dict[str, tuple[str, Path]] = {}

    def add(name: str, kind: str, text: str | bytes | None = None, suffix: str = ".jsonl"):
        path = root / f"{name}{suffix}"
        if isinstance(text, bytes):
            path.write_bytes(text)
        elif text is not None:
            path.write_text(text)
        inputs[name] = (kind, path)
        return path

    linked = root / "linked"
    linked.mkdir()
    (linked / "good.jsonl").write_text("\n".join(_lines(40)) + "\n")
    (linked / "x.jsonl").symlink_to(outside / "shadow")
    (linked / "dir").symlink_to(outside)
    inputs["links-leaving-the-folder"] = ("json", linked)
    os.mkfifo(add("fifo", "json"))
    in_folder = root / "fifo-folder"
    in_folder.mkdir()
    (in_folder / "good.jsonl").write_text("\n".join(_lines(40)) + "\n")
    os.mkfifo(in_folder / "pipe.jsonl")
    inputs["fifo-in-a-folder"] = ("json", in_folder)
    good = _lines(40)
    add("timestamp-1e30-text", "json", "\n".join([good[0].replace(
        '"2024-01-01T00:00:00Z"', '"1e30"')] + good[1:]) + "\n")
    add("timestamp-1e30-number", "json", "\n".join([good[0].replace(
        '"2024-01-01T00:00:00Z"', "1e30")] + good[1:]) + "\n")
    add("timestamp-23-digits", "csv", _csv(40).replace("2024-01-01T00:00:01Z",
                                                       "12345678901234567890123"), ".csv")
    add("null-timestamp", "json", "\n".join([good[0].replace(
        '"2024-01-01T00:00:00Z"', "null")] + good[1:]) + "\n")
    add("utf16", "csv", _csv(20).encode("utf-16"), ".csv")
    add("utf32", "csv", _csv(20).encode("utf-32"), ".csv")
    add("binary", "csv", random.Random(28).randbytes(20_000), ".csv")
    array = json.dumps([json.loads(line) for line in good], indent=1)
    add("json-array-cut", "json", array[:-40], ".json")
    inputs["duplicates-and-malformed"] = ("json", unlabeled_events(root, 200, 10, 3))
    return inputs


def _run(argv: list[str], fault: dict | None = None):
    return run_child(AS_MODULE.format(argv=argv), fault, timeout=60)


def test_no_command_prints_a_traceback_on_hostile_inputs(tmp_path, observed):
    """Stage: pipeline
    Fault: `pipeline`, `score`, `collect`, `retrain` and `tune` (no -v) on each hostile input
        (see the module docstring): each event input as a source of collect, score and
        pipeline, each unusable file as the training data of retrain and tune; collect into
        an output whose quarantine.jsonl or .lock is a planted link; pipeline on a working
        directory held by another run; collect and score with the disk full.
    Expected: no stderr holds "Traceback"; every failure is one `error:` line (the last line
        of stderr) with exit 1 or 2.
    """
    from training.pipeline.lock import workdir_lock

    inputs = hostile_inputs(tmp_path)
    model = tmp_path / "model"
    assert_ok(run_child(AS_MODULE.format(argv=["pipeline", "--config", str(pipeline_toml(
        tmp_path, unlabeled_events(tmp_path, 300), model))])))
    runs: list[tuple[str, object]] = []
    for name, (kind, path) in inputs.items():
        source = f"{kind}:{path}"
        runs.append((f"collect {name}", _run(["collect", "--source", source, "--output",
                                              str(tmp_path / "out" / name)])))
        runs.append((f"score {name}", _run(["score", "--model", "layer1_vae", "--workdir",
                                            str(model), "--input", source, "--output",
                                            str(tmp_path / "scores" / f"{name}.parquet")])))
        config = tmp_path / "configs" / name
        config.mkdir(parents=True)
        toml = pipeline_toml(config, path, tmp_path / "work" / name).read_text().replace(
            'type = "json_file"', f'type = "{ {"json": "json_file", "csv": "csv_file"}[kind]}"')
        (config / "pipeline.toml").write_text(toml)
        runs.append((f"pipeline {name}", _run(["pipeline", "--config",
                                               str(config / "pipeline.toml")])))
    for name in ("fifo", "links-leaving-the-folder", "binary", "utf16"):
        data = inputs[name][1]
        data = data / "x.jsonl" if data.is_dir() else data
        runs.append((f"retrain {name}", _run(["retrain", "--workdir", str(model), "--force",
                                              "--train-data", str(data)])))
        runs.append((f"tune {name}", _run(["tune", "--train-data", str(data), "--val-data",
                                           str(data), "--n-trials", "1", "--max-epochs", "1",
                                           "--output-dir", str(tmp_path / "tuning")])))
    for planted in ("quarantine.jsonl", ".lock"):
        out = tmp_path / "planted" / planted
        out.mkdir(parents=True)
        (out / planted).symlink_to(tmp_path / "outside" / "shadow")
        runs.append((f"collect planted {planted}", _run([
            "collect", "--source", f"json:{inputs['duplicates-and-malformed'][1]}",
            "--output", str(out)])))
    with workdir_lock(model):  # another run holds it
        runs.append(("pipeline workdir in use", _run(["pipeline", "--config", str(
            pipeline_toml(tmp_path, inputs["duplicates-and-malformed"][1], model))])))
    full = {"action": "enospc", "pattern": "*", "after_bytes": 100, "persist": True}
    source = f"json:{inputs['duplicates-and-malformed'][1]}"
    runs.append(("collect disk full", _run(["collect", "--source", source, "--output",
                                            str(tmp_path / "full")], full)))
    runs.append(("score disk full", _run(["score", "--model", "layer1_vae", "--workdir",
                                          str(model), "--input", source, "--output",
                                          str(tmp_path / "full.parquet")], full)))
    tracebacks = [name for name, result in runs if "Traceback" in result.stderr]
    assert tracebacks == [], {n: r.stderr[-2000:] for n, r in runs if n in tracebacks}
    failed = {name: result for name, result in runs if result.returncode != 0}
    for name, result in failed.items():
        assert result.returncode in (1, 2), (name, result.returncode, result.stderr[-2000:])
        assert result.stderr.strip().splitlines()[-1].startswith("error: "), (
            name, result.stderr[-2000:])
    observed(f"{len(runs)} runs of pipeline, score, collect, retrain, tune: {len(failed)} "
             "ended with one error line, none printed a traceback")
