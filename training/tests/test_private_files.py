"""No file the product writes is readable by other users, whatever the umask: a tiny pipeline,
a batch score, a live score (`--once`) and a collection on real Zeek logs under umask 022, then
every file under their folders is checked (mode & 0o077 == 0)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


from training.artifacts.atomic import atomic_write
from training.artifacts.file_set import FileSet
from training.scoring.follow_state import AppendOnly


def _readable_by_others(*folders: Path) -> dict[str, str]:
    """Every file under `folders` that group or other may read: path -> mode."""
    found = {}
    for folder in folders:
        for path in folder.rglob("*"):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
                found[str(path)] = oct(stat.S_IMODE(info.st_mode))
    return found


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_writers_create_private_files(tmp_path, umask_022):
    """The three ways a file is written, without asking for privacy: 0600 each, and a file that
    replaces a world-readable one is 0600 too."""
    (tmp_path / "old.json").write_text("{}")
    os.chmod(tmp_path / "old.json", 0o644)
    with atomic_write(tmp_path / "old.json") as handle:
        handle.write(b"{}")
    with atomic_write(tmp_path / "new" / "deeper" / "a.json") as handle:
        handle.write(b"{}")
    with FileSet([tmp_path / "s.parquet", tmp_path / "s.html"]) as folder:
        (folder / "s.parquet").write_bytes(b"x")  # a writer that leaves the umask's mode
        with atomic_write(folder / "s.html") as handle:
            handle.write(b"x")
    os.close(AppendOnly(tmp_path / "alerts.jsonl", None).fd)
    # A live output's missing folders are made as atomic_write makes them (score --once
    # --alerts out/a.jsonl said "No such file or directory": red-team trial).
    os.close(AppendOnly(tmp_path / "live" / "out" / "alerts.jsonl", None).fd)
    assert _readable_by_others(tmp_path) == {}
    # The folders made for the file, the parent of its folder too (mkdir -p gives it 0755).
    assert {_mode(tmp_path / "new"), _mode(tmp_path / "new" / "deeper"), _mode(tmp_path / "live"),
            _mode(tmp_path / "live" / "out")} == {"0o700"}


def test_no_written_file_is_readable_by_others(tmp_path, datasets, umask_022):
    """pipeline (features, splits, checkpoints, run reports, registry.db and model.pt),
    score (--output, incidents, alerts page), score --once (scores, alerts, incidents, its
    state) and collect (events, seen keys, checkpoint)."""
    from training.cli.main import main

    logs = datasets / "zeek_zat" / "tsv"
    work, scored, live, collected = (tmp_path / n for n in ("work", "scored", "live", "collected"))
    assert main(["-q", "pipeline", "--source", f"zeek:{logs}", "--epochs", "1", "--layers",
                 "layer1", "--workdir", str(work)]) == 0
    model = ["--model", "layer1_vae", "--workdir", str(work), "--input", f"zeek:{logs}"]
    assert main(["-q", "score", *model, "--output", str(scored / "scores.parquet")]) == 0
    assert main(["-q", "score", *model, "--once", "--output", str(live / "scores.jsonl"),
                 "--alerts", str(live / "alerts.jsonl"), "--incidents",
                 str(live / "incidents.jsonl"), "--state", str(live / "state")]) == 0
    assert main(["-q", "collect", "--source", f"zeek:{logs}", "--output", str(collected)]) == 0

    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    for expected in ("work/models/registry.db", "scored/scores.parquet", "live/alerts.jsonl",
                     "live/scores.jsonl", "live/incidents.jsonl", "collected/checkpoint.json"):
        assert expected in written, sorted(written)
    for kind in ("work/features/", "work/splits/", "model.pt", "collected/seen/",
                 "scored/scores.incidents.", "scored/scores.alerts.html"):
        assert any(kind in name for name in written), (kind, sorted(written))
    assert _readable_by_others(work, scored, live, collected) == {}
    folders = {p.relative_to(tmp_path).as_posix(): _mode(p) for p in tmp_path.rglob("*")
               if p.is_dir()}  # every folder the runs made, the collection's and the runs'
    assert {"collected/events", "live/state", "work/runs"} <= set(folders)
    assert {name: mode for name, mode in folders.items() if mode != "0o700"} == {}
