"""The installed package imports from any working folder, including one that holds the default
data root: `training/data/...` and `training/tuning/<study>` (training/paths.py), folders
named like the package and its `tuning` subpackage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IMPORTS = ("from training import DataCollector\n"
           "from training.hyperparameter_tuner import TuningConfig\n"
           "import training, training.tuning\n"
           "print(training.__file__)\n"
           "print(training.tuning.__file__)\n")


def test_the_package_imports_in_a_folder_holding_the_default_data_root(tmp_path):
    (tmp_path / "training" / "data" / "preprocessed").mkdir(parents=True)
    (tmp_path / "training" / "tuning" / "x").mkdir(parents=True)
    # -c puts the working folder first on sys.path, as `python script.py` puts the script's
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    package = Path(__file__).resolve().parents[1]
    assert done.stdout.splitlines() == [str(package / "__init__.py"),
                                        str(package / "tuning" / "__init__.py")]
