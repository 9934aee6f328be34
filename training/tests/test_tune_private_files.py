"""`tune` writes nothing other users can read, whatever the umask (as
test_private_files.py checks for the other commands): its study folders are 0700, and the
study's SQLite database or journal file, which Optuna and SQLite create, is 0600."""

from __future__ import annotations

import stat
from pathlib import Path


from training.cli.main import main
from training.tests.tuning_helpers import write_layer1_splits


def _modes(folder: Path) -> dict[str, str]:
    """relative path -> mode of `folder` and everything under it."""
    return {path.relative_to(folder.parent).as_posix(): oct(stat.S_IMODE(path.lstat().st_mode))
            for path in (folder, *folder.rglob("*"))}


def test_tuning_writes_private_files_in_private_folders(tmp_path, umask_022, capsys):
    """One worker (SQLite, then --train-best) and two (a journal file given with --storage, in
    folders that do not exist yet). study.db and journal.log were 0644, the output folder and
    the study's 0755."""
    (tmp_path / "data").mkdir()
    train, val = write_layer1_splits(tmp_path / "data")
    common = ["tune", "--train_data", train, "--val_data", val, "--n_trials", "2",
              "--max_epochs", "1", "--seed", "2", "-q"]
    assert main([*common, "--output_dir", str(tmp_path / "one" / "tuning"), "--train_best",
                 "--best_epochs", "1", "--registry-dir", str(tmp_path / "models")]) == 0
    assert main([*common, "--n-workers", "2", "--output_dir", str(tmp_path / "two"),
                 "--storage", f"journal:{tmp_path / 'journal' / 'deep' / 'j.log'}"]) == 0
    capsys.readouterr()

    modes = {}
    for folder in ("one", "two", "journal"):
        modes.update(_modes(tmp_path / folder))
    for written in ("one/tuning/layer1_vae_tuning/study.db", "journal/deep/j.log",
                    "one/tuning/layer1_vae_tuning/best_params.json",
                    "two/layer1_vae_tuning/trials.csv"):
        assert written in modes, sorted(modes)
    assert any(name.startswith("one/tuning/layer1_vae_tuning/best/") for name in modes)
    folders = {name for name in modes if (tmp_path / name).is_dir()}
    assert {name: mode for name, mode in modes.items()
            if mode != ("0o700" if name in folders else "0o600")} == {}
