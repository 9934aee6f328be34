"""README, tried as a new user would: every code block marked `<!-- quick -->` runs, in order,
in a fresh directory laid out like a checkout (the package, nothing generated).

The demo file has 2,000 events instead of 10,000 and the seed's step 4 runs at 2 epochs instead
of 100 (the continuous-training example, last, retrains for up to 100 epochs on what steps 2-3
made of it); everything else runs as written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from training.model_registry import ModelRegistry

REPO = Path(__file__).resolve().parents[2]
QUICK = re.compile(r"<!-- quick -->\n```(bash|python)\n(.*?)```", re.S)
GENERATED = {"data", "checkpoints", "logs", "models", "tuning", "reports", "__pycache__"}


def quick_blocks() -> list[tuple[str, str]]:
    return QUICK.findall((REPO / "README.md").read_text())


def test_readme_marks_the_quick_start_and_cli_examples():
    blocks = quick_blocks()
    code = "".join(text for _, text in blocks)
    assert [lang for lang, _ in blocks] == ["bash", "python", "python", "bash", "python", "bash",
                                            "python"]
    for step in ("# 2. Collect", "# 3. Build datasets", "# 4. Train", "# 5. Evaluate",
                 "pipeline.run_retraining("):
        assert step in code


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "training").mkdir()
    for entry in (REPO / "training").iterdir():
        if entry.name not in GENERATED:
            (tmp_path / "training" / entry.name).symlink_to(entry)
    return tmp_path


def test_quick_blocks_run_in_order(checkout: Path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MAXIMUS_DATA_ROOT", None)
    for lang, text in quick_blocks():
        text = text.replace("--num_epochs 100", "--num_epochs 2").replace(
            "maximus-train demo --data-only", "maximus-train demo --data-only --events 2000")
        command = ["bash", "-euo", "pipefail", "-c", text] if lang == "bash" else \
            [sys.executable, "-c", text]
        result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"{text}\n--- stderr:\n{result.stderr[-3000:]}"
        if "# 5. Evaluate" in text:
            assert "ROC-AUC" in result.stdout and "threshold" in result.stdout.lower()
        if "pipeline.run_retraining(" in text:  # the seed's example, on steps 2-3's splits
            assert "taken as the data-free default layer1 layout" in result.stderr
            # the result names the rule that decided (labeled splits: the labeled floors)
            assert re.search(r"Decided by: (labeled|configured) floor", result.stdout)
    assert (checkout / "training/checkpoints/layer1_vae_best.json").exists()
    assert (checkout / "training/reports/layer1.html").exists()
    registered = ModelRegistry(checkout / "training/models").list_models()
    assert registered == {"layer1_vae": ["1.0.0"]}  # retrained (no production model yet)
