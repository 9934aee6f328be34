"""scripts/retrain_models.sh stopped with Ctrl-C: exit 130 and the "interrupted" line, in
the terminal and in its log, which is this user's only."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "retrain_models.sh"
ZEEK_008 = REPO.parent / "shared/datasets/stratosphere/008-zeek-mixed/data"


def test_ctrl_c_exits_130_saying_so_and_the_log_is_private(tmp_path):
    """Ctrl-C reaches the terminal's whole process group. tee, which the script logs through,
    died of it first, so maximus-train's "error: interrupted" line had nowhere to go: the
    script exited 1 saying nothing. And retrain.log was 0644 (its folder 0755) under umask
    022."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHON": sys.executable}
    run = subprocess.Popen(
        ["bash", "-c", 'umask 022; exec "$0" "$@"', str(SCRIPT), "--source", f"zeek:{ZEEK_008}",
         "--layers", "layer1", "--epochs", "500", "--workdir", "w"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group, as a terminal's foreground job
    log = tmp_path / "w" / "retrain.log"
    try:
        deadline = time.monotonic() + 240
        while not (log.exists() and "epoch 1/500" in log.read_text()):
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.1)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 130, err[-2000:]
    assert err.rstrip().splitlines()[-1].startswith("error: interrupted")
    assert log.read_text().rstrip().splitlines()[-1].startswith("error: interrupted")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "w").stat().st_mode) == 0o700
