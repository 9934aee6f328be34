"""Tests for training.collection.resume_state: the seen-id set, commit/load round trips, compaction, cleanup
of what a crashed run left behind, and the errors a damaged directory gives."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from training.collection.resume_state import CollectionState, SeenIds
from training.errors import CheckpointError

RECIPE = {"sources": [{"name": "zeek", "type": "zeek_logs"}], "deduplicate": True}


def u64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (relative path -> content)."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def seen_files(directory: Path) -> list[str]:
    return sorted(p.name for p in (directory / "seen").iterdir())


# --- SeenIds ---------------------------------------------------------------------------------

def test_first_new_keeps_first_occurrence_and_skips_known_keys() -> None:
    seen = SeenIds()
    batch = u64(5, 3, 5, 7, 3)
    mask = seen.first_new(batch)
    assert mask.tolist() == [True, True, False, True, False]
    seen.add(batch[mask])
    assert seen.keys().tolist() == [3, 5, 7]
    assert len(seen) == 3
    assert seen.first_new(u64(7, 8, 8, 3, 9)).tolist() == [False, True, False, False, True]


def test_empty_inputs() -> None:
    seen = SeenIds()
    assert seen.first_new(u64()).tolist() == []
    assert seen.keys().dtype == np.uint64 and len(seen.keys()) == 0
    seen.add(u64())
    assert len(seen) == 0
    seen.add(u64(1))
    assert seen.first_new(u64()).tolist() == []


def test_keys_above_int64_range() -> None:
    seen = SeenIds()
    big = u64(2**64 - 1, 2**63, 2**63 - 1, 0)
    seen.add(big)
    assert seen.keys().tolist() == [0, 2**63 - 1, 2**63, 2**64 - 1]
    assert seen.first_new(u64(2**64 - 2, 2**64 - 1, 2**63 + 1, 2**63)).tolist() == [
        True, False, True, False]


def test_first_new_matches_a_python_set_over_many_batches() -> None:
    rng = np.random.default_rng(7)
    pool = rng.integers(0, 2**64, size=30_000, dtype=np.uint64, endpoint=False)
    seen, reference = SeenIds(), set()
    total = 0
    while total < 50_000:
        size = int(rng.choice([0, 1, 2, 17, 500, 3000, 9000]))
        batch = pool[rng.integers(0, len(pool), size=size)]
        expected, in_batch = [], set()
        for key in batch.tolist():
            expected.append(key not in reference and key not in in_batch)
            in_batch.add(key)
        mask = seen.first_new(batch)
        assert mask.tolist() == expected
        seen.add(batch[mask])
        reference |= in_batch
        total += size
    assert len(seen) == len(reference)
    assert seen.keys().tolist() == sorted(reference)


# --- CollectionState: commit and load --------------------------------------------------------

def test_commit_then_load_round_trips_everything(tmp_path: Path) -> None:
    state = CollectionState.load(tmp_path, resume=False, recipe=RECIPE)
    assert (state.parts, state.quarantine_bytes, state.seen_next) == (0, 0, 0)
    state.positions = {"zeek": {"conn.log": {"offset": 120, "line": 4, "record": 2}}}
    state.stats = {"rows": 5, "quarantined": 1}
    for index in range(2):
        state.part_path(index).parent.mkdir(exist_ok=True)
        state.part_path(index).write_bytes(b"part %d" % index)
    state.parts = 2
    state.quarantine_path.write_bytes(b'{"line": 3}\n')
    state.quarantine_bytes = 12
    state.remember(u64(30, 10, 20))
    state.commit()
    state.remember(u64(2**64 - 1))
    state.commit()
    state.commit()  # nothing new: no seen file
    assert seen_files(tmp_path) == ["000000.npy", "000001.npy"]
    before = tree(tmp_path)

    loaded = CollectionState.load(tmp_path, resume=True, recipe=RECIPE)
    assert loaded.secret == state.secret
    assert loaded.positions == state.positions
    assert loaded.position("zeek", "conn.log") == {"offset": 120, "line": 4, "record": 2}
    assert loaded.position("zeek", "other.log") is None
    assert loaded.stats == {"rows": 5, "quarantined": 1}
    assert (loaded.parts, loaded.quarantine_bytes) == (2, 12)
    assert (loaded.seen_first, loaded.seen_next) == (0, 2)
    assert loaded.seen.keys().tolist() == [10, 20, 30, 2**64 - 1]
    assert tree(tmp_path) == before  # a clean directory loses nothing


def test_load_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "out"
    state = CollectionState.load(directory, resume=True, recipe=RECIPE)
    assert directory.is_dir()
    assert state.directory == directory
    assert len(state.seen) == 0 and state.positions == {} and state.parts == 0
    other = CollectionState.load(tmp_path / "other", resume=False, recipe=RECIPE)
    assert other.secret != state.secret  # a fresh secret each time (63 random bits)


def test_compaction_keeps_every_key_and_removes_obsolete_files(tmp_path: Path) -> None:
    state = CollectionState.load(tmp_path, resume=False, recipe=RECIPE)
    for commit in range(32):
        state.remember(u64(2 * commit, 2 * commit + 1))
        state.commit()
    assert seen_files(tmp_path) == [f"{i:06d}.npy" for i in range(32)]

    state.remember(u64(64, 65))
    state.commit()  # the 33rd file: more than 32, so all keys go into one new file
    assert seen_files(tmp_path) == ["000033.npy"]
    assert (state.seen_first, state.seen_next) == (33, 34)
    assert np.load(tmp_path / "seen" / "000033.npy").tolist() == list(range(66))

    for commit in range(33, 40):
        state.remember(u64(2 * commit, 2 * commit + 1))
        state.commit()
    assert seen_files(tmp_path) == [f"{i:06d}.npy" for i in range(33, 41)]

    # A crash between the checkpoint and the removal of the compacted files leaves them behind.
    np.save(tmp_path / "seen" / "000000.npy", u64(999))
    loaded = CollectionState.load(tmp_path, resume=True, recipe=RECIPE)
    assert loaded.seen.keys().tolist() == list(range(80))
    assert (loaded.seen_first, loaded.seen_next) == (33, 41)
    assert seen_files(tmp_path) == [f"{i:06d}.npy" for i in range(33, 41)]


def test_load_removes_leftovers_of_an_uncommitted_run(tmp_path: Path) -> None:
    state = CollectionState.load(tmp_path, resume=False, recipe=RECIPE)
    (tmp_path / "events").mkdir()
    state.part_path(0).write_bytes(b"committed part")
    state.parts = 1
    state.quarantine_path.write_bytes(b"q1\n")
    state.quarantine_bytes = 3
    state.remember(u64(1, 2))
    state.commit()
    committed = tree(tmp_path)

    # What a run killed after this commit leaves behind:
    np.save(tmp_path / "seen" / "000001.npy", u64(3))
    np.save(tmp_path / "seen" / "000005.npy", u64(4))
    state.part_path(1).write_bytes(b"uncommitted")
    state.part_path(12).write_bytes(b"uncommitted")
    with open(state.quarantine_path, "ab") as handle:
        handle.write(b"q2\nq3 cut sh")
    for leftover in (".checkpoint.json.123.tmp", "seen/.000002.npy.9.tmp",
                     "events/.part-000002.parquet.7.tmp"):
        (tmp_path / leftover).write_bytes(b"half")
    # Files that are not the collection's own are left alone.
    for keep in ("notes.txt", "events/part-x.parquet", "events/summary.parquet"):
        (tmp_path / keep).write_bytes(b"keep")

    loaded = CollectionState.load(tmp_path, resume=True, recipe=RECIPE)
    assert loaded.seen.keys().tolist() == [1, 2]
    assert tree(tmp_path) == {**committed, "notes.txt": b"keep",
                              "events/part-x.parquet": b"keep",
                              "events/summary.parquet": b"keep"}


def test_load_of_a_run_killed_before_its_first_commit(tmp_path: Path) -> None:
    (tmp_path / "seen").mkdir()
    np.save(tmp_path / "seen" / "000000.npy", u64(1))
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "part-000000.parquet").write_bytes(b"uncommitted")
    (tmp_path / "quarantine.jsonl").write_bytes(b"uncommitted\n")
    state = CollectionState.load(tmp_path, resume=False, recipe=RECIPE)
    assert len(state.seen) == 0
    assert tree(tmp_path) == {"quarantine.jsonl": b"", ".lock": b""}


def _committed(directory: Path) -> CollectionState:
    state = CollectionState.load(directory, resume=False, recipe=RECIPE)
    state.quarantine_path.write_bytes(b"12345678")
    state.quarantine_bytes = 8
    state.remember(u64(5, 6))
    state.commit()
    return state


@pytest.mark.parametrize(("size", "expected"), [(4, 4), (None, 0)])
def test_quarantine_shorter_than_recorded(tmp_path: Path, size: int | None, expected: int) -> None:
    state = _committed(tmp_path)
    if size is None:
        state.quarantine_path.unlink()
    else:
        os.truncate(state.quarantine_path, size)
    with pytest.raises(CheckpointError, match=f"has {expected} bytes but the checkpoint "
                                              "recorded 8; quarantined records were lost"):
        CollectionState.load(tmp_path, resume=True, recipe=RECIPE)


@pytest.mark.parametrize("content", [
    b"{not json", b"", b"\xff\xfe\x00", b"[]", b'{"version": 1}',
    b'{"version": 1, "secret": "abc", "positions": {}, "stats": {}, "parts": 0, '
    b'"quarantine_bytes": 0, "seen_first": 0, "seen_next": 0}',
])
def test_unreadable_checkpoint(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "checkpoint.json").write_bytes(content)
    with pytest.raises(CheckpointError, match="checkpoint.json: unreadable checkpoint"):
        CollectionState.load(tmp_path, resume=True, recipe=RECIPE)
    assert (tmp_path / "checkpoint.json").read_bytes() == content


@pytest.mark.parametrize(("key", "value"), [
    ("parts", -3), ("quarantine_bytes", -1), ("seen_first", -1), ("seen_next", -1),
    ("offset", -5), ("line", "4"), ("record", -1),
])
def test_an_edited_count_is_refused_and_deletes_nothing(tmp_path: Path, key: str,
                                                        value: object) -> None:
    """A count edited below 0 made the next run delete every committed part ("parts": -3),
    skip a file (a negative offset: 0 events, no word) or report lost quarantine records."""
    state = _committed(tmp_path)
    state.positions = {"zeek": {"conn.log": {"offset": 120, "line": 4, "record": 2}}}
    state.part_path(0).parent.mkdir(exist_ok=True)
    state.part_path(0).write_bytes(b"part 0")
    state.parts = 1
    state.commit()
    path = tmp_path / "checkpoint.json"
    document = json.loads(path.read_text())
    if key in ("offset", "line", "record"):
        document["positions"]["zeek"]["conn.log"][key] = value
    else:
        document[key] = value
    path.write_text(json.dumps(document))
    before = tree(tmp_path)
    with pytest.raises(CheckpointError, match="unreadable checkpoint .a negative or "
                                              "non-integer count or position"):
        CollectionState.load(tmp_path, resume=True, recipe=RECIPE)
    assert tree(tmp_path) == before


def test_checkpoint_of_another_format_version_is_refused(tmp_path: Path) -> None:
    _committed(tmp_path)
    path = tmp_path / "checkpoint.json"
    document = json.loads(path.read_text())
    document["version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="format version 99"):
        CollectionState.load(tmp_path, resume=True, recipe=RECIPE)


@pytest.mark.parametrize("damage", ["missing", "garbage", "pickled"])
def test_missing_or_corrupt_seen_file(tmp_path: Path, damage: str) -> None:
    _committed(tmp_path)
    seen_file = tmp_path / "seen" / "000000.npy"
    if damage == "missing":
        seen_file.unlink()
    elif damage == "garbage":
        seen_file.write_bytes(b"not an npy file")
    else:
        np.save(seen_file, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="000000.npy: missing or corrupt") as excinfo:
        CollectionState.load(tmp_path, resume=True, recipe=RECIPE)
    assert "cannot be trusted" in str(excinfo.value)


def test_no_resume_on_an_existing_collection_deletes_nothing(tmp_path: Path) -> None:
    _committed(tmp_path)
    # Leftovers that a resume would remove must survive a refused fresh start too.
    np.save(tmp_path / "seen" / "000007.npy", u64(1))
    (tmp_path / ".checkpoint.json.1.tmp").write_bytes(b"half")
    with open(tmp_path / "quarantine.jsonl", "ab") as handle:
        handle.write(b"more")
    before = tree(tmp_path)
    with pytest.raises(CheckpointError, match="already holds a collection"):
        CollectionState.load(tmp_path, resume=False, recipe=RECIPE)
    assert tree(tmp_path) == before


def test_state_without_directory_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = CollectionState.load(None, resume=True, recipe=RECIPE)
    assert state.directory is None
    state.remember(u64(4, 5))
    state.positions = {"s": {"f": {"offset": 1}}}
    state.commit()
    state.write_progress({"rows": 1})
    assert len(state.seen) == 2
    assert os.listdir(tmp_path) == []
    with pytest.raises(CheckpointError, match="no output_dir"):
        state.checkpoint_path  # noqa: B018 - the property raises


def test_a_collection_resumes_only_with_the_recipe_that_made_it(tmp_path):
    state = CollectionState.load(tmp_path, resume=False, recipe=RECIPE)
    state.commit()
    other = {**RECIPE, "deduplicate": False}
    with pytest.raises(CheckpointError, match=r"other settings \(deduplicate differ\)"):
        CollectionState.load(tmp_path, resume=True, recipe=other)
    assert CollectionState.load(tmp_path, resume=True, recipe=RECIPE).recipe == RECIPE
