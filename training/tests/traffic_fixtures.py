"""Inputs shared by the layer-2 and layer-3 tests: six hand-made events, and a plain-Python
reader of a labeled Zeek conn log that knows nothing of the collector."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from training.collection.schema import CANONICAL_SCHEMA

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)  # a multiple of 5 minutes since the epoch
A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
CONN_LABELS = {"malicious": 1, "benign": 0, "background": -1}


def six_events() -> pa.Table:
    """e1-e3: A->B in minutes 0, 1, 2 (SF benign, REJ threat "scan", S0 udp unknown);
    e4: B->C icmp notice, minute 3, benign; e5: A->C minute 6, unknown;
    e6: a process event of user alice on host h1 (no addresses), a threat."""
    def event(i: int, seconds: int, src: str | None, dst: str | None, **fields) -> dict:
        return {"timestamp": T0 + timedelta(seconds=seconds), "event_id": f"e{i}", "source": "t",
                "event_type": "conn", "source_ip": src, "dest_ip": dst, **fields}

    rows = [
        event(1, 10, A, B, dest_port=80, protocol="tcp", conn_state="SF", bytes_sent=100,
              bytes_received=200, packets_sent=2, packets_received=3, duration=1.0, is_threat=0),
        event(2, 80, A, B, dest_port=443, protocol="tcp", conn_state="REJ", bytes_sent=0,
              bytes_received=0, packets_sent=1, packets_received=1, duration=0.5, is_threat=1,
              attack_type="scan"),
        event(3, 120, A, B, dest_port=80, protocol="udp", conn_state="S0", bytes_sent=50,
              packets_sent=1, is_threat=-1),
        event(4, 180, B, C, protocol="icmp", conn_state="OTH", bytes_sent=10, bytes_received=20,
              packets_sent=1, packets_received=1, duration=2.0, is_threat=0, event_type="notice",
              severity=0.5),
        event(5, 360, A, C, dest_port=22, protocol="tcp", conn_state="SF", bytes_sent=1000,
              bytes_received=2000, packets_sent=10, packets_received=20, duration=4.0, is_threat=-1),
        event(6, 30, None, None, event_type="process_creation", user="alice", host="h1",
              is_threat=1, attack_type="T1059"),
    ]
    return pa.Table.from_pylist(rows, schema=CANONICAL_SCHEMA)


def log_scaled(value: float, cap: float) -> float:
    """What the featurizers write for a count or sum: log1p(value) / log1p(cap)."""
    return float(np.log1p(value) / np.log1p(cap))


def read_labeled_conn(path: Path) -> list[dict]:
    """Rows of a labeled Zeek conn TSV: seconds (int part of ts), uid, source, dest, label
    (-1/0/1), detailed label. Plain Python, independent of the collector."""
    rows, fields = [], None
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line or line.startswith("#"):
            continue
        record = dict(zip(fields, line.split("\t")))
        rows.append({"seconds": int(record["ts"].split(".")[0]), "uid": record["uid"],
                     "source": record["id.orig_h"], "dest": record["id.resp_h"],
                     "label": CONN_LABELS[record["label"].strip().lower()],
                     "detail": record["detailedlabel"]})
    return rows
