"""Tests for training.artifacts.file_set: a set of files published together or not at all, a
real SIGINT held through the step that publishes it, and the staging folder's rules."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from training.artifacts.atomic import atomic_write, temporary_path
from training.artifacts.file_set import FileSet, deferred_interrupts
from training.errors import ConfigError, UnsafePathError, WriteError


def _old_set(folder: Path) -> list[Path]:
    paths = [folder / "x.parquet", folder / "x.incidents.parquet", folder / "x.quarantine.jsonl"]
    folder.mkdir(exist_ok=True)
    for path in paths:
        path.write_text(f"old {path.name}")
    return paths


def _contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_written_files_replace_their_namesakes_and_the_others_go(tmp_path):
    scores, incidents, quarantine = _old_set(tmp_path)
    (tmp_path / "other.txt").write_text("not of the set")
    with FileSet([scores, incidents, quarantine]) as staging:
        assert staging == temporary_path(scores) and staging.is_dir()
        with atomic_write(staging / "x.parquet", "w") as handle:
            handle.write("new scores")
        (staging / "x.incidents.parquet").write_text(
            "new incidents of " + (staging / "x.parquet").read_text())  # read back, staged
        assert scores.read_text() == "old x.parquet"  # nothing published yet
    assert _contents(tmp_path) == {"other.txt": "not of the set",
                                   "x.incidents.parquet": "new incidents of new scores",
                                   "x.parquet": "new scores"}


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_a_set_stopped_before_its_end_leaves_the_old_files_and_no_temporary(tmp_path, error):
    paths = _old_set(tmp_path)
    before = _contents(tmp_path)
    with pytest.raises(error):
        with FileSet(paths) as staging:
            with atomic_write(staging / "x.parquet") as handle:
                handle.write(b"new")
            with atomic_write(staging / "x.incidents.parquet") as handle:
                handle.write(b"half")
                raise error()
    assert _contents(tmp_path) == before  # the temporary folder and files are gone too


def test_sigint_in_the_held_block_is_raised_after_it(tmp_path):
    done = []
    # Ctrl-C as in a terminal, even where the test runner was started with SIGINT ignored
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered here
                done.append("the block went on")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, outer)
    assert done == ["the block went on"]


def test_staging_folder_name_planted_or_left_by_a_killed_run(tmp_path):
    paths = _old_set(tmp_path)
    staging = temporary_path(paths[0])
    victim = tmp_path / "victim"
    victim.mkdir()
    staging.symlink_to(victim)  # planted: refused, nothing written through it
    with pytest.raises(UnsafePathError, match="symbolic link"):
        with FileSet(paths):
            pass
    assert staging.is_symlink() and list(victim.iterdir()) == []
    staging.unlink()

    staging.mkdir()  # this user's own, left by a killed run of the same pid: replaced
    (staging / "x.parquet").write_text("stale")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    killed = tmp_path / f".x.parquet.{dead}.tmp"  # another pid, now dead: swept
    killed.mkdir()
    (killed / "x.parquet").write_text("stale")
    with FileSet(paths) as folder:
        assert list(folder.iterdir()) == [] and not killed.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]  # none written: all gone


def test_an_error_names_the_file_of_the_set_never_the_staging_folder(tmp_path):
    scores, incidents, quarantine = _old_set(tmp_path)
    quarantine.unlink()
    quarantine.mkdir()  # a folder where the set has a file: publishing it fails
    with pytest.raises(WriteError) as excinfo:
        with FileSet([quarantine, scores]) as staging:
            (staging / quarantine.name).write_text("new")
            (staging / scores.name).write_text("new")
    assert str(excinfo.value) == f"{quarantine}: cannot be written (Is a directory)"
    assert scores.read_text() == "old x.parquet" and quarantine.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [incidents.name, scores.name,
                                                         quarantine.name]

    # A writer's error inside the staging folder names the file of the same name, once.
    with pytest.raises(WriteError) as excinfo:
        with FileSet([scores, incidents]) as staging:
            (staging / incidents.name).mkdir()
            with atomic_write(staging / incidents.name) as handle:
                handle.write(b"new")
    assert str(excinfo.value) == f"{incidents}: cannot be written (Is a directory)"
    assert incidents.read_text() == "old x.incidents.parquet"


def test_an_error_that_names_no_file_is_a_write_error_only_when_only_a_write_raises_it(
        tmp_path):
    """A full disk names no file; a set of several files is the folder's. An I/O error of a
    read (a failing input disk) inside the `with` is no output's: it passes as it is."""
    scores, incidents, _ = _old_set(tmp_path)
    with pytest.raises(WriteError) as excinfo:
        with FileSet([scores, incidents]):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(excinfo.value) == f"{tmp_path}: cannot be written (No space left on device)"
    with pytest.raises(WriteError, match=f"^{scores}: cannot be written"):
        with FileSet([scores]):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    with pytest.raises(OSError) as excinfo:
        with FileSet([scores, incidents]):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
    assert type(excinfo.value) is OSError and excinfo.value.errno == errno.EIO
    assert scores.read_text() == "old x.parquet"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_folder_that_takes_no_files_is_named_by_the_set_s_file():
    with pytest.raises(WriteError, match=r"^/proc/x\.jsonl: cannot be written \(No such file or "
                                         r"directory\)$"):
        with FileSet([Path("/proc/x.jsonl"), Path("/proc/x.incidents.parquet")]):
            pass


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="paths must name at least one file, got none"):
        FileSet([])
    with pytest.raises(ConfigError, match="paths must be distinct files of one folder"):
        FileSet([tmp_path / "a", tmp_path / "sub" / "b"])
    with pytest.raises(ConfigError, match="paths must be distinct files of one folder"):
        FileSet([tmp_path / "a", tmp_path / "a"])
    with FileSet([tmp_path / "a"]):
        with pytest.raises(ConfigError, match="already being written by this process"):
            with FileSet([tmp_path / "a"]):
                pass
