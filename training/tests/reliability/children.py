"""Child processes for the reliability suite, forked from a warm parent.

Nearly every stage imports torch (3-5 s of CPU per process on this machine), and the suite
runs a few dozen children. So one server process (`python -m
training.tests.reliability.children`) imports the pipeline once, then forks a child per
request: the child is a real, separate process (it arms its fault, runs its code, and is
SIGKILLed or exits on its own), but starts in milliseconds. The server imports modules only:
no thread pool, connection or file of the pipeline exists in it when it forks.

Protocol (JSON lines on the server's stdin/stdout):
    {"op": "run", "code": ..., "out": path, "err": path, "cwd": path|null} -> {"pid": n}
    {"op": "wait", "pid": n, "block": bool, "timeout": s} -> {"returncode": int|null}
A child that outlives `timeout` is SIGKILLed and reported as "timeout".
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

WARM_IMPORTS = ("torch", "optuna", "training.data_collection", "training.data_preprocessor",
                "training.dataset_builder", "training.layer_trainer", "training.model_registry",
                "training.hyperparameter_tuner",
                # Loading any model imports every detector (torch_geometric: seconds per child).
                "training.detectors.vae", "training.detectors.gnn", "training.detectors.tcn",
                # Whole commands (test_no_traceback, pipeline runs): the CLI and its stages.
                "training.cli.main", "training.pipeline.run", "training.scoring.batch",
                "training.retraining.continuous", "training.cli.tune")


def _child(request: dict) -> None:
    """In the forked child: redirect stdio to the request's files, run the code, exit."""
    status = 1
    try:
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                                (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            os.dup2(os.open(path, flags, 0o644), fd)
        if request.get("cwd"):
            os.chdir(request["cwd"])
        # Ctrl-C as in a terminal: a test runner started in the background (nohup, `&` in a
        # script) inherits SIGINT ignored, and Python then leaves it ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            exec(compile(request["code"], "<child>", "exec"), {"__name__": "__main__"})
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def _wait(pid: int, block: bool, timeout: float) -> int | str | None:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if not block:
            return None
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.005)


def serve() -> None:
    for name in WARM_IMPORTS:
        __import__(name)
    replies = sys.stdout
    print(json.dumps({"ready": os.getpid()}), file=replies, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "run":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request)
            reply = {"pid": pid}
        else:
            reply = {"returncode": _wait(request["pid"], request["block"], request["timeout"])}
        print(json.dumps(reply), file=replies, flush=True)


@dataclass
class Child:
    """A child forked by the server (the test side's handle)."""

    pid: int
    out: Path
    err: Path
    returncode: int | str | None = None

    def poll(self) -> int | str | None:
        if self.returncode is None:
            self.returncode = _server().call(op="wait", pid=self.pid, block=False, timeout=0)[
                "returncode"]
        return self.returncode

    def wait(self, timeout: float) -> subprocess.CompletedProcess:
        if self.returncode is None:
            self.returncode = _server().call(op="wait", pid=self.pid, block=True,
                                             timeout=timeout)["returncode"]
        if self.returncode == "timeout":
            raise TimeoutError(f"child {self.pid} ran past {timeout} s and was killed:\n"
                               f"{self.stderr[-3000:]}")
        return subprocess.CompletedProcess([f"<child {self.pid}>"], self.returncode,
                                           self.out.read_text(errors="replace"), self.stderr)

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


class _Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "training.tests.reliability.children"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        json.loads(self.process.stdout.readline())  # {"ready": pid}, after the imports
        atexit.register(self.close)

    def call(self, **request: object) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the reliability child server ended unexpectedly")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


_SERVER: _Server | None = None
_ENV: dict[str, str] = {}
_NUMBERS = itertools.count()  # output file names, unique in this test process


def _server() -> _Server:
    global _SERVER
    if _SERVER is None or _SERVER.process.poll() is not None:
        _SERVER = _Server(_ENV)
    return _SERVER


def fork_child(code: str, directory: Path, env: dict[str, str], cwd: Path | None = None
               ) -> Child:
    """Start `code` in a child forked from the warm server; its output goes to `directory`."""
    _ENV.update(env)
    directory.mkdir(parents=True, exist_ok=True)
    index = next(_NUMBERS)
    out, err = directory / f"child-{index}.out", directory / f"child-{index}.err"
    pid = _server().call(op="run", code=code, out=str(out), err=str(err),
                         cwd=None if cwd is None else str(cwd))["pid"]
    return Child(pid, out, err)


if __name__ == "__main__":
    serve()
