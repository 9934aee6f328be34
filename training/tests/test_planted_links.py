"""Links planted inside a folder the tool was given (an output, a workdir, a registry, a state
folder beside the output) are refused or skipped, never written through; the folder given
itself may be a link.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from training.artifacts.folders import real_folder
from training.cli.main import main
from training.demo.generator import write_demo_file
from training.errors import UnsafePathError
from training.pipeline.history import list_runs, new_run, prune_runs, write_runs_index
from training.tests.registry_fixtures import save_tiny


def _plant(link: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return target


def test_real_folder_makes_a_folder_and_refuses_a_link_naming_it(tmp_path):
    assert real_folder(tmp_path / "a" / "b").is_dir()
    victim = _plant(tmp_path / "out" / "events", tmp_path / "victim")
    with pytest.raises(UnsafePathError, match=f"^{tmp_path / 'out' / 'events'} is a symbolic "
                       "link .*does not write through links it was not given"):
        real_folder(tmp_path / "out" / "events")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnsafePathError, match="is not a folder"):
        real_folder(tmp_path / "file")
    assert not any(victim.iterdir())


@pytest.mark.parametrize("planted", ["events", "seen"])
def test_collect_refuses_a_link_planted_in_its_output(tmp_path, capsys, planted):
    events = write_demo_file(tmp_path / "events.json", n_events=200, seed=3)
    out = tmp_path / "out"
    victim = _plant(out / planted, tmp_path / "victim")
    assert main(["-q", "collect", "--source", f"json:{events}", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out / planted} is a symbolic link" in err, err
    assert not any(victim.iterdir())


def test_collect_writes_into_an_output_that_is_itself_a_given_link(tmp_path, capsys):
    events = write_demo_file(tmp_path / "events.json", n_events=200, seed=3)
    real = tmp_path / "real"
    _plant(tmp_path / "given", real)
    assert main(["-q", "collect", "--source", f"json:{events}", "--output",
                 str(tmp_path / "given")]) == 0
    assert list((real / "events").glob("part-*.parquet"))


def test_the_workdir_folders_are_never_links(tmp_path):
    victim = _plant(tmp_path / "work" / "runs", tmp_path / "victim")
    with pytest.raises(UnsafePathError, match=f"{tmp_path / 'work' / 'runs'} is a symbolic"):
        new_run(tmp_path / "work")
    report = _plant(tmp_path / "work2" / "report", tmp_path / "victim2")
    with pytest.raises(UnsafePathError, match=f"{tmp_path / 'work2' / 'report'} is a symbolic"):
        write_runs_index(tmp_path / "work2")
    assert not any(victim.iterdir()) and not any(report.iterdir())


def test_a_link_in_runs_is_no_run_pruning_skips_it_with_a_warning(tmp_path, caplog):
    work = tmp_path / "work"
    first, second = new_run(work), new_run(work)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    link = work / "runs" / "20000101T000000.000000Z-abcdef"  # a run's name, oldest of all
    os.symlink(victim, link)
    with caplog.at_level(logging.WARNING):
        assert list_runs(work) == [first.folder, second.folder]
        assert prune_runs(work, 1, second) == [first.folder]
    assert f"{link} is a symbolic link, not a run folder: skipped" in caplog.text
    assert link.is_symlink() and (victim / "keep.txt").read_text() == "mine"
    assert list_runs(work) == [second.folder]


@pytest.fixture
def registry(tmp_path) -> Path:
    weights = save_tiny(tmp_path / "src" / "tiny_best.pt", centre=0.5, dim=128, threshold=3.0)
    folder = tmp_path / "models"
    assert main(["-q", "registry", "register", "--model", "tiny", "--model-path", str(weights),
                 "--registry-dir", str(folder)]) == 0
    return folder


def test_reading_the_registry_never_writes_registry_db(registry, capsys):
    db = registry / "registry.db"
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    for argv in (["registry", "list"], ["registry", "show", "--model", "tiny"]):
        assert main([*argv, "--registry-dir", str(registry)]) == 0
    assert "tiny" in capsys.readouterr().out
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert sorted(p.name for p in registry.iterdir()) == ["artifacts", "registry.db"]


def test_an_empty_registry_db_stays_empty_when_listed(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    db = tmp_path / "models" / "registry.db"
    db.touch()
    main(["registry", "list", "--registry-dir", str(tmp_path / "models")])
    assert db.read_bytes() == b""


def test_a_registry_db_that_is_a_link_is_refused(registry, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    victim = other / "victim.db"
    victim.write_bytes(b"")  # an empty file: SQLite would make it a WAL database
    os.symlink(victim, other / "registry.db")
    for argv in (["registry", "list"], ["registry", "show", "--model", "tiny"]):
        assert main([*argv, "--registry-dir", str(other)]) == 1
        assert f"{other / 'registry.db'} is a symbolic link" in capsys.readouterr().err
    assert victim.read_bytes() == b""


def test_a_default_state_folder_that_is_a_link_is_refused(registry, tmp_path, capsys):
    events = write_demo_file(tmp_path / "events.json", n_events=200, seed=3)
    assert main(["-q", "registry", "promote", "--model", "tiny", "--version", "1.0.0",
                 "--registry-dir", str(registry)]) == 0
    victim = _plant(tmp_path / "scores.jsonl.state", tmp_path / "vstate")
    capsys.readouterr()
    assert main(["score", "--model", "tiny", "--registry-dir", str(registry), "--input",
                 f"json:{events}", "--output", str(tmp_path / "scores.jsonl"), "--alerts",
                 str(tmp_path / "a.jsonl"), "--once"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'scores.jsonl.state'} is a symbolic link" in err and "--state" in err
    assert not any(victim.iterdir())
