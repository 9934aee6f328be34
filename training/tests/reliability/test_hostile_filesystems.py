"""Hostile filesystems: links, planted files and special files where the pipeline reads or writes.

Someone who can write into a folder the pipeline reads, or into one it writes to, plants a link
or a file there. Nothing may be read from outside the folder the source was pointed at (unless
the source says so), nothing may be written through a link, and files holding raw input are
private to the user. Each case is refused or skipped with a message naming the path.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from training.collection.collector import DataCollector, DataSource
from training.errors import PipelineError
from training.tests.reliability.harness import collect_in_child

pytestmark = pytest.mark.reliability

SECRET = "root:$6$saltsalt$c2VjcmV0:19000:0:99999:7:::\nbob:$6$pepper$aGFzaA:19001::::::\n"
GOOD = '{"timestamp": "2024-01-01T00:00:%02dZ", "source_ip": "10.0.0.%d", "dest_port": %d}\n'


def _good_lines(n: int, bad_port_at: int | None = None) -> str:
    return "".join(GOOD % (i, i + 1, 70000 if i == bad_port_at else 443) for i in range(n))


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.lstat().st_mode))


def _everything_written(out: Path) -> str:
    """All bytes of every file the collection wrote, as text (to look for leaked secrets)."""
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(out.rglob("*"))
                   if p.is_file() and not p.is_symlink())


# -- reading: links and special files in a source folder ---------------------------------------

def test_links_leaving_the_source_folder_are_skipped_and_counted(tmp_path, caplog, observed):
    """Stage: collection
    Fault: a source folder holding good.jsonl, a link x.jsonl to a file outside the folder (a
        stand-in for /etc/shadow) and a link to a folder outside it; a Zeek folder whose
        conn.log is such a link. Before, the linked file was read: its lines landed in
        quarantine.jsonl (world-readable) and the Zeek reader echoed its first bytes in an
        error.
    Expected: only good.jsonl is collected; the two links are skipped, counted in the stats
        (`skipped_links`) and named in one warning line; no byte of the outside file appears
        in anything written; the Zeek folder gives no event and no error. With
        connection_params follow_symlinks=True the linked file is read.
    """
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_text(SECRET)
    (outside / "more.jsonl").write_text(_good_lines(1))
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "good.jsonl").write_text(_good_lines(3))
    (logs / "x.jsonl").symlink_to(outside / "shadow")
    (logs / "sub").symlink_to(outside, target_is_directory=True)
    inside = logs / "nested"
    inside.mkdir()
    (inside / "alias.jsonl").symlink_to(logs / "good.jsonl")  # stays inside: allowed
    out = tmp_path / "out"
    collector = DataCollector([DataSource("logs", "json_file", {"path": str(logs)})],
                              output_dir=out, progress=False, deduplicate=False)
    with caplog.at_level(logging.WARNING):
        table = collector.collect_table()
    stats = collector.get_stats()
    assert table.num_rows == 6 and stats["quarantined"] == 0, stats  # good.jsonl, twice
    assert stats["skipped_links"] == sorted([str(logs / "sub"), str(logs / "x.jsonl")])
    warnings = [r.getMessage() for r in caplog.records if "link" in r.getMessage()]
    assert len(warnings) == 1 and "2 links" in warnings[0] and "follow_symlinks" in warnings[0]
    assert "root:" not in _everything_written(out) and "$6$" not in _everything_written(out)

    zeek = tmp_path / "zeek"
    zeek.mkdir()
    (zeek / "conn.log").symlink_to(outside / "shadow")
    result = collect_in_child("zeek_logs", {"path": str(zeek)})
    assert result.get("events") == 0 and "$6$" not in json.dumps(result), result
    assert result["stats"]["skipped_links"] == [str(zeek / "conn.log")]

    allowed = DataCollector([DataSource("logs", "json_file",
                                        {"path": str(logs), "follow_symlinks": True})],
                            progress=False, deduplicate=False)
    table = allowed.collect_table()
    assert table.num_rows == 7 and len(allowed.quarantined) == 2  # + more.jsonl; shadow's lines
    observed(warnings[0])


def test_fifo_as_a_source_is_not_a_regular_file(tmp_path, observed):
    """Stage: collection
    Fault: a FIFO (named pipe) given as a source's path, and one inside a scanned source
        folder. Before, the path was reported as "no such file or directory".
    Expected: SourceError "<path>: not a regular file (a FIFO)"; in a folder the FIFO is
        skipped and named in the stats, never opened (opening a FIFO with no writer would
        hang the collection).
    """
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    refused = collect_in_child("json_file", {"path": str(fifo)})
    assert refused.get("error") == "SourceError", refused
    assert refused["message"] == f"{fifo}: not a regular file (a FIFO); readers take files, " \
                                 "folders or globs of regular files: save its data to a file " \
                                 "and give that"
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "good.jsonl").write_text(_good_lines(2))
    os.mkfifo(folder / "pipe.jsonl")
    result = collect_in_child("json_file", {"path": str(folder)})
    assert result.get("events") == 2, result
    assert result["stats"]["skipped_files"] == [str(folder / "pipe.jsonl")]
    observed(refused["message"])


# -- writing: files holding raw input, links planted where the pipeline writes -----------------

def test_files_holding_raw_input_are_private(tmp_path, observed):
    """Stage: collection
    Fault: a collection with one bad record, under a permissive umask (022), writing
        quarantine.jsonl (raw text of rejected records), event parts and a `save_to_file`
        export. Before, all were created 0644 (world-readable).
    Expected: quarantine.jsonl, every events/part-*.parquet and the exported events file are
        0600; an existing world-readable quarantine.jsonl is made 0600 when appended to.
    """
    source = tmp_path / "in.jsonl"
    source.write_text(_good_lines(4, bad_port_at=2))
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        collector = DataCollector([DataSource("in", "json_file", {"path": str(source)})],
                                  output_dir=out, progress=False)
        collector.collect_to()
        exported = collector.save_to_file(_table(out), "export.jsonl")
        source.write_text(source.read_text() + GOOD % (9, 9, 70001))
        os.chmod(out / "quarantine.jsonl", 0o644)
        DataCollector([DataSource("in", "json_file", {"path": str(source)})],
                      output_dir=out, progress=False).collect_to()
    finally:
        os.umask(old)
    modes = {p.name: _mode(p) for p in [out / "quarantine.jsonl", exported,
                                         *sorted((out / "events").glob("part-*.parquet"))]}
    assert set(modes.values()) == {"0o600"}, modes
    assert len((out / "quarantine.jsonl").read_text().splitlines()) == 2
    observed(", ".join(f"{name} {mode}" for name, mode in modes.items()))


def _table(out: Path):
    import pyarrow.parquet as pq

    from training.collection.schema_union import concat_tables
    return concat_tables([pq.read_table(p) for p in sorted((out / "events").glob("*.parquet"))])


def test_link_planted_at_the_temporary_name_is_not_followed(tmp_path, observed):
    """Stage: scoring
    Fault: a symlink to a victim file planted at `.alerts.parquet.<pid>.tmp`, the temporary
        name the atomic-write primitive uses, before `score_events` writes alerts.parquet (and
        a plain file planted there by another user's process). Before, the write went through
        the link: the victim was overwritten with Parquet bytes.
    Expected: the write fails with an error naming the temporary path and saying it was
        planted; the victim is unchanged; alerts.parquet is not created; the planted link is
        left as it was. A stale temporary file of this user's own (a killed run) is replaced.
    """
    from training.artifacts.atomic import atomic_write
    from training.errors import UnsafePathError
    from training.registry.registry import ModelMetadata, ModelRegistry
    from training.scoring.batch import score_events
    from training.tests.registry_fixtures import save_tiny

    registry = ModelRegistry(tmp_path / "models")
    weights = save_tiny(tmp_path / "src" / "tiny.pt", centre=0.25, dim=128, threshold=1.0)
    registry.register_model(weights, ModelMetadata("tiny", "1.0.0", "layer1",
                                                   stage="production"))
    events = tmp_path / "events.jsonl"
    events.write_text(_good_lines(3))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    output = tmp_path / "alerts.parquet"
    planted = tmp_path / f".alerts.parquet.{os.getpid()}.tmp"
    planted.symlink_to(victim)
    with pytest.raises(UnsafePathError) as info:
        score_events(registry, "tiny", [DataSource("e", "json_file", {"path": str(events)})],
                     output)
    assert victim.read_text() == "precious\n" and not output.exists()
    assert planted.is_symlink() and os.readlink(planted) == str(victim)
    assert str(planted) in str(info.value)

    planted.unlink()
    planted.write_text("stale half-written output of a killed run\n")  # this user's own
    summary = score_events(registry, "tiny", [DataSource("e", "json_file",
                                                         {"path": str(events)})], output)
    assert summary.events == 3 and output.exists() and not planted.exists()

    planted.symlink_to(tmp_path / "dangling")  # a link to nothing: not created through either
    with pytest.raises(UnsafePathError):
        with atomic_write(output) as handle:
            handle.write(b"x")
    assert not (tmp_path / "dangling").exists()
    observed(info.value)


def test_quarantine_file_planted_as_a_link_is_refused(tmp_path, observed):
    """Stage: collection
    Fault: output_dir/quarantine.jsonl replaced by a symlink to a victim file: before a
        collection that quarantines a record, and between a run and its resume (when the
        resume trims the file to its checkpointed size). Before, the link was followed: the
        victim was appended to, then truncated on resume.
    Expected: an error naming quarantine.jsonl and saying it is a link; the victim's content
        is unchanged in both cases; nothing is collected past the refusal.
    """
    from training.errors import UnsafePathError

    source = tmp_path / "in.jsonl"
    source.write_text(_good_lines(3, bad_port_at=1))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n" * 100)
    out = tmp_path / "out"
    out.mkdir()
    (out / "quarantine.jsonl").symlink_to(victim)
    with pytest.raises(UnsafePathError) as first:
        DataCollector([DataSource("in", "json_file", {"path": str(source)})], output_dir=out,
                      progress=False).collect_to()
    assert victim.read_text() == "precious\n" * 100
    assert "quarantine.jsonl" in str(first.value) and "link" in str(first.value)

    out2 = tmp_path / "out2"
    DataCollector([DataSource("in", "json_file", {"path": str(source)})], output_dir=out2,
                  progress=False).collect_to()
    (out2 / "quarantine.jsonl").unlink()
    (out2 / "quarantine.jsonl").symlink_to(victim)
    with pytest.raises(UnsafePathError) as resumed:
        DataCollector([DataSource("in", "json_file", {"path": str(source)})], output_dir=out2,
                      progress=False).collect_to()
    assert victim.read_text() == "precious\n" * 100
    observed(resumed.value)


def test_lock_file_planted_as_a_link_is_not_followed(tmp_path, observed):
    """Stage: collection
    Fault: output_dir/.lock is a dangling symlink to a path outside the output folder.
        Before, taking the collection lock created the link's target.
    Expected: an error naming .lock; no file is created at the link's target.
    """
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(tmp_path / "created-elsewhere")
    source = tmp_path / "in.jsonl"
    source.write_text(_good_lines(2))
    with pytest.raises(PipelineError) as info:
        DataCollector([DataSource("in", "json_file", {"path": str(source)})], output_dir=out,
                      progress=False).collect_to()
    assert ".lock" in str(info.value) and not (tmp_path / "created-elsewhere").exists()
    observed(info.value)
