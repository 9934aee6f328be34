"""A failed collection leaves no folder it made, and a folder that was there as it was
(`training.collection.output_folder`, `CollectionState.held`; trial D8)."""

from __future__ import annotations

import gzip

import pyarrow.parquet as pq
import pytest

from training.cli.main import main
from training.collection.collector import DataCollector, DataSource
from training.errors import SourceError

CONN = "stratosphere/008-zeek-mixed/data/conn.log.labeled"
EVE = "suricata/magnc_server_eve.json"


@pytest.mark.parametrize("case", ["missing path", "wrong format"])
def test_a_failed_collect_leaves_no_folder_it_made(case, datasets, tmp_path, capsys):
    source = (f"zeek:{tmp_path / 'no-such-logs'}" if case == "missing path"
              else f"zeek:{datasets / EVE}")  # Suricata EVE given as Zeek
    out = tmp_path / "made" / "by" / "collect"
    assert main(["-q", "collect", "--source", source, "--output", str(out)]) in (1, 2)
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: ") and line.count("\n") == 0
    assert list(tmp_path.iterdir()) == []  # neither made/ nor made/by/


def test_a_failed_collect_leaves_a_folder_that_was_there_as_it_was(datasets, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["-q", "collect", "--source", f"zeek:{datasets / EVE}", "--output",
                 str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == [".lock", "notes.txt"]  # released
    assert (out / "notes.txt").read_text() == "mine"


def test_a_failure_after_a_commit_keeps_the_committed_collection(datasets, tmp_path):
    """What was committed before a bad file stays, to be resumed (README: Bad input)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.conn.log").write_bytes((datasets / CONN).read_bytes())
    (logs / "b.conn.log.gz").write_bytes(gzip.compress(b"#separator \\x09\n")[:-12])  # cut
    out = tmp_path / "out"
    collector = DataCollector([DataSource("z", "zeek_logs", {"path": str(logs)})],
                              output_dir=out, progress=False)
    with pytest.raises(SourceError, match="b.conn.log.gz"):
        collector.collect_to()
    assert (out / "checkpoint.json").is_file()
    kept = sum(pq.read_metadata(p).num_rows for p in (out / "events").glob("part-*.parquet"))
    assert kept == collector.get_stats()["events"] > 0


def test_a_collection_that_stops_early_by_its_consumer_is_no_failure(datasets, tmp_path):
    out = tmp_path / "out"
    collector = DataCollector([DataSource("z", "zeek_logs", {"path": str(datasets / CONN)})],
                              output_dir=out, progress=False)
    for _ in collector.batches():
        break  # nothing committed, but nothing failed: the folder stays for a resume
    assert out.is_dir() and (out / ".lock").exists()
