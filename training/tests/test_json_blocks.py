"""A JSON Lines `score` output with a line longer than two of pyarrow's 1 MiB blocks (a window
unit of a port scan: a quarter million event ids) reads back: `score --output scores.jsonl` failed
building its incidents with "straddling object straddles two block boundaries"."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from training.scoring import json_blocks
from training.scoring.alerts import OUTPUT_SCHEMA
from training.scoring.tables import read_alerts, read_incidents, write_incidents, write_table

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc)


def _unit(name: str, ids: list[str], score: float) -> dict:
    return {"unit": name, "time": T0, "score": score, "is_alert": score >= 1.0,
            "event_ids": ids, "layer": "layer3", "threshold": 1.0,
            "percentile": 99.99 if score >= 1.0 else 50.0,
            "reference_scores": 2000, "host": name.split("@")[0], "first_seen": T0,
            "last_seen": T0}


def test_a_unit_line_longer_than_a_block_reads_back_with_its_incidents(tmp_path):
    # about 5 MB of ids on one line: past two of pyarrow's 1 MiB blocks (one line over a block
    # boundary it reads; one spanning three blocks it refuses)
    scan = [f"conn:C{i:08d}scan" for i in range(250_000)]
    rows = [_unit("10.0.0.9@2026-12-08T01:00", scan, 5.0),
            *(_unit(f"10.0.0.{i}@2026-12-08T01:00", [f"conn:D{i}"], 0.5) for i in range(3))]
    path = write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), tmp_path / "s.jsonl")
    assert json_blocks.longest_line(path) > 3 << 20
    table = read_alerts(path)
    assert table.num_rows == 4 and len(table["event_ids"][0]) == 250_000
    count, written = write_incidents(path)
    (incident,) = read_incidents(written).to_pylist()
    assert count == 1 and incident["entity"] == "10.0.0.9"
    assert incident["top"][0]["unit"] == "10.0.0.9@2026-12-08T01:00"


def test_the_longest_line_is_found_across_the_chunks_a_file_is_read_in(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    data = b"\n".join(b"x" * int(n) for n in rng.integers(0, 40, 200)) + b"\nend"
    (tmp_path / "f").write_bytes(data)
    expected = max(len(line) for line in data.split(b"\n"))
    for chunk in (1, 7, 64, 1 << 20):
        monkeypatch.setattr(json_blocks, "_CHUNK", chunk)
        assert json_blocks.longest_line(tmp_path / "f") == expected
    assert json_blocks.longest_line(data) == expected
