"""Progress on long work: a bar on a terminal (seen through a pseudo-terminal), a few lines in
a log, nothing with -q (`training.console.progress`)."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from training.console import progress as progress_module
from training.cli.main import main
from training.demo.generator import write_demo_file
from training.console.progress import Progress, set_mode, suppressed

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    return write_demo_file(tmp_path_factory.mktemp("progress") / "demo.json", n_events=300,
                           seed=5)


def _run_in_terminal(argv: list[str], cwd: Path, timeout: float = 240) -> tuple[int, str]:
    """Run `python -m training.cli ARGV` with stdin, stdout and stderr on a 100x30 terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "training.cli", *argv], cwd=cwd,
                               stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(slave)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
    return process.wait(timeout=30), output.decode("utf-8", "replace")


def test_a_pipeline_on_a_terminal_shows_progress_bars(events, tmp_path):
    code, screen = _run_in_terminal(
        ["pipeline", "--source", f"json:{events}", "--layers", "layer1", "--epochs", "2",
         "--workdir", "run"], tmp_path)
    assert code == 0, screen
    # tqdm redraws each bar in place (\r); the last drawing of each one stays on screen
    assert re.search(r"\rcollecting: 300 events \[", screen), screen
    assert re.search(r"\rfeaturizing: 100%\|█+\| 1/1 \[", screen), screen
    assert re.search(r"\rtraining layer1_vae: 100%\|█+\| 2/2 \[.*loss=", screen), screen
    assert "layer1: layer1_vae 1.0.0 -> " in screen
    assert re.search(r"report: run/runs/[^/]+/report/index\.html", screen)  # the run's own
    assert "INFO" not in screen  # logs are for -v


def test_a_pipeline_in_a_log_writes_progress_lines(events, tmp_path, capsys):
    """stderr is not a terminal: one line per finished stage, with its figures."""
    argv = ["pipeline", "--source", f"json:{events}", "--layers", "layer1", "--epochs", "1",
            "--workdir", str(tmp_path / "run")]
    assert main(argv) == 0
    clock = r"\d\d:\d\d:\d\d "
    lines = [line for line in capsys.readouterr().err.splitlines() if re.match(clock, line)]
    assert re.fullmatch(clock + r"collecting: 300 events in \d+\.\d s", lines[0]), lines
    assert re.fullmatch(clock + r"featurizing: 1/1 layers in \d+\.\d s", lines[1]), lines
    assert re.fullmatch(clock + r"training layer1_vae: 1/1 epochs in \d+\.\d s, best_epoch 1, "
                                r"loss [\d.e+-]+, val_loss [\d.e+-]+", lines[2]), lines
    assert len(lines) == 3
    assert main(["preprocess", "--source", f"json:{events}", "--output", str(tmp_path / "f")]) == 0
    assert [line.split(" ", 1)[1].split(":")[0] for line in capsys.readouterr().err.splitlines()] \
        == ["collecting", "featurizing"]
    assert main(["preprocess", "--source", f"json:{events}", "--output", str(tmp_path / "f"),
                 "-q"]) == 0  # quiet: no progress at all
    assert capsys.readouterr().err == ""


def test_line_mode_reports_at_most_every_interval_and_when_done(caplog):
    previous = set_mode("lines")
    try:
        with caplog.at_level(logging.INFO, logger=progress_module.logger.name):
            with Progress("reading", 4, "files", interval_s=0.0) as bar:
                bar.update(1)
                bar.update(3, errors=2)
            with Progress("waiting", unit="events", interval_s=3600.0) as quiet:
                quiet.update(5)
                quiet.update(5)
            with suppressed(), Progress("hidden", unit="events") as hidden:
                hidden.update(9)
            with pytest.raises(KeyError), Progress("failing", unit="rows") as failing:
                failing.update(1)
                raise KeyError("x")
    finally:
        set_mode(previous)
    messages = [r.getMessage() for r in caplog.records]
    assert [re.sub(r"[\d,]+\.\d+", "T", m) for m in messages] == [
        "reading: 1/4 files (T files/s)",
        "reading: 4/4 files (T files/s), errors 2",
        "reading: 4/4 files in T s, errors 2",
        "waiting: 10 events in T s",  # no line before the end: the interval had not passed
    ]


def test_progress_modes():
    previous = set_mode("off")
    try:
        assert Progress("x").kind == "off"
        set_mode("lines")
        assert Progress("x").kind == "lines" and Progress("x", enabled=False).kind == "off"
        set_mode("auto")  # stderr is pytest's capture here, not a terminal
        assert Progress("x").kind == "lines"
        with pytest.raises(ValueError, match="progress mode must be one of auto, bar, lines, off"):
            set_mode("fancy")
    finally:
        set_mode(previous)


def test_a_long_unit_of_work_gets_a_line_now_and_then_saying_it_still_works():
    """A tuning trial of minutes left a log silent (only finished units made lines): past
    `heartbeat_s` without a line, one says how long the count has not moved."""
    lines: list[str] = []
    arrived = threading.Semaphore(0)

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())
            arrived.release()

    handler = Lines(logging.INFO)
    progress_module.logger.addHandler(handler)
    level, previous = progress_module.logger.level, set_mode("lines")
    progress_module.logger.setLevel(logging.INFO)
    try:
        with Progress("tuning study", 3, "trials", interval_s=3600.0, heartbeat_s=0.5) as bar:
            assert arrived.acquire(timeout=30)
            bar.update(1)  # no line of its own: the interval has not passed
            while "1/3" not in lines[-1]:
                assert arrived.acquire(timeout=30)
        closed = len(lines)
        bar.heartbeat_s = 0.0
        bar.beat()  # a beat that lost the race with close(): nothing after the closing line
        assert len(lines) == closed
    finally:
        set_mode(previous)
        progress_module.logger.setLevel(level)
        progress_module.logger.removeHandler(handler)
    shown = [re.sub(r"[\d,]+\.\d+", "T", m) for m in lines]
    assert shown[0].startswith("tuning study: 0/3 trials (T trials/s); still working, ")
    assert shown[0].endswith(" s since it started")
    assert shown[-2].startswith("tuning study: 1/3 trials (T trials/s); still working, ")
    assert shown[-2].endswith(" s since the count last moved")
    assert shown[-1].startswith("tuning study: 1/3 trials in T s")
