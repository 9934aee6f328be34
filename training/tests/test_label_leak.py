"""No label ever becomes a feature: flipping, shuffling or deleting every label column of a real
file leaves every layer's feature arrays bit-identical, for every source type.

Each case is a slice of a real file (../shared/datasets) in its own format, written again with
its label columns changed. The collector runs without deduplication, so that every variant has
the same rows (content-hashed event ids change with the label text, and two identical flows
with different labels are two events). Suricata's labels come from the alert records
themselves: their label columns (alert.category, alert.signature) never reach a feature, and
the alert events only label layer 3's l3.v2 windows; layers 1 and 2, whose units are the alerts,
are marked circular (see test_unlabeled_pipeline).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.collection.schema import labels_from_alerts
from training.layers.registry import get_layer
from training.sources.presets import NSL_KDD_COLUMNS
from training.tests.conftest import collect

ROWS = 400
FIXTURE_EVENTS = Path(__file__).resolve().parent / "fixtures" / "v0_1" / "input" / "events.json"


def _get(record: dict, name: str):
    node = record
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(record: dict, name: str, value) -> None:
    *parents, last = name.split(".")
    node = record
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _drop(record: dict, name: str) -> None:
    *parents, last = name.split(".")
    node = record
    for part in parents:
        node = node.get(part, {})
    node.pop(last, None)


def change(records: list[dict], columns: tuple[str, ...], how: str) -> list[dict]:
    """A copy of `records` with every label column flipped, shuffled or deleted."""
    out = json.loads(json.dumps(records))
    if how == "original":
        return out
    rng = np.random.default_rng(7)
    for name in columns:
        values = [_get(r, name) for r in out]
        if how == "delete":
            for r in out:
                _drop(r, name)
            continue
        if how == "shuffle":
            new = [values[i] for i in rng.permutation(len(values))]
        else:  # flip: each distinct value becomes the next one (numbers: 1 - x, text: cycled)
            distinct = sorted({str(v) for v in values})
            nxt = {v: distinct[(i + 1) % len(distinct)] for i, v in enumerate(distinct)}
            new = [(1 - v if isinstance(v, int) and v in (0, 1) else
                    v + 1 if isinstance(v, int) else nxt[str(v)]) if v is not None else "Benign"
                   for v in values]
        for r, v in zip(out, new):
            _set(r, name, v)
    return out


# -- the formats, each read and written again ----------------------------------------------


def _zeek_tsv(path: Path, rows: int) -> tuple[list[str], list[dict], list[str]]:
    head, data, fields = [], [], []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            if not data:
                head.append(line)
            continue
        if len(data) < rows:
            data.append(dict(zip(fields, line.split("\t"))))
    return head, data, fields


def _write_zeek_tsv(path: Path, head: list[str], records: list[dict], fields: list[str]) -> None:
    kept = [f for f in fields if any(f in r for r in records)]
    lines = []
    for line in head:
        if line.startswith(("#fields", "#types")):
            tag, *values = line.split("\t")
            values = [v for f, v in zip(fields, values) if f in kept]
            line = "\t".join([tag, *values])
        lines.append(line)
    lines += ["\t".join(str(r[f]) for f in kept) for r in records]
    path.write_text("\n".join(lines) + "\n")


def _csv(path: Path, rows: int, names: list[str] | None) -> list[dict]:
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = names or next(reader)
        return [dict(zip(header, row)) for _, row in zip(range(rows), reader)]


def _write_csv(path: Path, records: list[dict], header: bool) -> list[str]:
    names = [n for n in records[0]]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(names)
        writer.writerows([[r[n] for n in names] for r in records])
    return names


def _json_lines(path: Path, rows: int) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.strip()][:rows]
    return [json.loads(line) for line in lines]


def _write_json_lines(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _fixture_events() -> list[dict]:
    events = json.loads(FIXTURE_EVENTS.read_text())["events"]
    for e in events:  # the JSON reader also takes is_threat given as a field
        e["is_threat"] = 0 if e["label"] == "benign" else 1
    return events


# name -> (source type, label columns, make(tmp, how) -> (path, DataSource kwargs))
Case = tuple[str, tuple[str, ...], Callable[[Path, str], tuple[Path, dict]]]


def _case_zeek_tsv(tmp: Path, how: str, datasets: Path) -> tuple[Path, dict]:
    head, data, fields = _zeek_tsv(
        datasets / "stratosphere/008-zeek-mixed/data/conn.log.labeled", ROWS)
    path = tmp / "conn.log.labeled"
    _write_zeek_tsv(path, head, change(data, ("label", "detailedlabel"), how), fields)
    return path, {}


def _case_zeek_json(tmp: Path, how: str, datasets: Path) -> tuple[Path, dict]:
    records = _json_lines(datasets / "zeek_zat/json/conn.log", ROWS)
    for i, r in enumerate(records):  # labeled the way Stratosphere labels its logs
        r["label"], r["detailedlabel"] = ("Malicious", "C&C") if i % 7 == 0 else ("Benign", "-")
    path = tmp / "conn.log"
    _write_json_lines(path, change(records, ("label", "detailedlabel"), how))
    return path, {}


def _case_iot23(tmp: Path, how: str, datasets: Path) -> tuple[Path, dict]:
    records = _csv(datasets / "iot23/CTU-Malware-Capture-44-1-labeled.csv", ROWS, None)
    path = tmp / "capture.csv"
    _write_csv(path, change(records, ("label", "detailed-label"), how), header=True)
    return path, {}


def _case_nsl_kdd(tmp: Path, how: str, datasets: Path) -> tuple[Path, dict]:
    records = _csv(datasets / "nsl_kdd/KDDTrain+_20Percent.txt", ROWS, list(NSL_KDD_COLUMNS))
    path = tmp / "kdd.txt"
    names = _write_csv(path, change(records, ("label", "difficulty"), how), header=False)
    from training.pipeline.checks import with_columns

    params: dict = {}
    field_map = with_columns(params, names, {"protocol": "protocol_type", "conn_state": "flag",
                                             "bytes_sent": "src_bytes",
                                             "bytes_received": "dst_bytes"})
    return path, {"connection_params": params, "field_map": field_map}


def _case_json(tmp: Path, how: str, datasets: Path) -> tuple[Path, dict]:
    path = tmp / "events.json"
    columns = ("label", "is_threat", "attack_type", "mitre_technique")
    path.write_text(json.dumps({"events": change(_fixture_events(), columns, how)}))
    return path, {}


def _case_parquet(tmp: Path, how: str, datasets: Path) -> tuple[Path, dict]:
    path = tmp / "events.parquet"
    columns = ("label", "is_threat", "attack_type", "mitre_technique")
    records = change(_fixture_events(), columns, how)
    pq.write_table(pa.Table.from_pylist(records), path)
    return path, {}


def _case_eve(tmp: Path, how: str, datasets: Path) -> tuple[Path, dict]:
    records = _json_lines(datasets / "suricata/slips_test6-malicious.suricata.json", 1500)
    path = tmp / "eve.json"
    _write_json_lines(path, change(records, ("alert.category", "alert.signature"), how))
    return path, {}


def _case_windows(tmp: Path, how: str, datasets: Path) -> tuple[Path, dict]:
    import zipfile

    with zipfile.ZipFile(datasets / "windows_otrf_security_datasets/"
                                    "cmd_psexec_lsa_secrets_dump.zip") as archive:
        name = next(n for n in archive.namelist() if n.endswith(".json"))
        lines = archive.read(name).decode().splitlines()[:ROWS]
    path = tmp / "security.json"
    path.write_text("\n".join(lines) + "\n")
    # Recordings carry no label column: the label is the source's default label.
    label = {"flip": "benign", "shuffle": "malicious", "delete": None}.get(how, "malicious")
    return path, {"default_label": label}


CASES = {
    "zeek_tsv": ("zeek_logs", _case_zeek_tsv),
    "zeek_json": ("zeek_logs", _case_zeek_json),
    "csv": ("csv_file", _case_iot23),
    "csv_headerless": ("csv_file", _case_nsl_kdd),
    "json": ("json_file", _case_json),
    "parquet": ("parquet_file", _case_parquet),
    "suricata": ("suricata_logs", _case_eve),
    "windows": ("windows_events", _case_windows),
}


def _features(events: pa.Table) -> dict[str, np.ndarray]:
    """Every layer's feature arrays (layers built for where the labels come from)."""
    alert_labels = labels_from_alerts(events)
    out = {}
    for name in ("layer1", "layer2", "layer3"):
        layer = get_layer(name).for_labels(alert_labels=alert_labels)
        units = layer.featurize(events)
        if name == "layer1":
            out["layer1"] = units.features
        elif name == "layer2":
            out.update({f"layer2.{k}": units.arrays[k] for k in ("x", "edge_attr", "edge_index")})
        else:
            out.update({"layer3.X": units.X, "layer3.target": units.target})
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_label_columns_never_reach_a_feature(datasets, tmp_path, case):
    source_type, make = CASES[case]
    found = {}
    for how in ("original", "flip", "shuffle", "delete"):
        folder = tmp_path / how
        folder.mkdir()
        path, kwargs = make(folder, how, datasets)
        events, _ = collect(source_type, path, deduplicate=False, **kwargs)
        found[how] = (events, _features(events))
    original, arrays = found["original"]
    assert original.num_rows > 0 and len(arrays["layer1"]) == original.num_rows
    changed = {how: events["is_threat"].to_pylist() for how, (events, _) in found.items()}
    if case not in ("suricata",):  # the alert records are the labels there (module docstring)
        assert changed["flip"] != changed["original"] or case == "windows"
    for how in ("flip", "shuffle", "delete"):
        events, other = found[how]
        assert events.num_rows == original.num_rows, how
        for key, values in arrays.items():
            assert values.dtype == other[key].dtype and values.shape == other[key].shape, (how, key)
            assert values.tobytes() == other[key].tobytes(), f"{case} {how}: {key} changed"
    if case == "suricata":
        assert labels_from_alerts(original)
        assert arrays["layer3.target"].shape[1] == 9  # l3.v2: no alert counts, no severity
