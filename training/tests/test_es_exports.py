"""Elasticsearch exports read as a JSON file map as the index does (`training.sources.es_hits`):
elasticdump's `{"_index", "_id", "_source"}` lines and a `_search` response's `hits.hits` give
one event per hit, its document's fields mapped and its `_id` the event id; a JSON file whose
records carry no field of the field map is refused, naming what it looks like."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from training.cli.main import main
from training.errors import ConfigError
from training.tests.conftest import collect

CONN = "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"
ROWS = 40


def _zeek_rows(datasets) -> list[dict]:
    """The first `ROWS` records of a real Zeek conn log, as {field: text}."""
    rows, fields = [], []
    with open(datasets / CONN) as handle:
        for line in handle:
            if line.startswith("#fields"):
                fields = line.rstrip("\n").split("\t")[1:]
            elif not line.startswith("#"):
                rows.append(dict(zip(fields, line.rstrip("\n").split("\t"))))
                if len(rows) == ROWS:
                    return rows
    raise AssertionError("short log")


def _ecs(row: dict) -> dict:
    """The document Filebeat's Zeek module indexes for a conn record (the fields used here)."""
    when = datetime.fromtimestamp(float(row["ts"]), timezone.utc)
    return {"@timestamp": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "event": {"dataset": "zeek.connection", "kind": "event"},
            "source": {"ip": row["id.orig_h"], "port": int(row["id.orig_p"])},
            "destination": {"ip": row["id.resp_h"], "port": int(row["id.resp_p"])},
            "network": {"transport": row["proto"]},
            "zeek": {"session_id": row["uid"]}}


def _hit(row: dict) -> dict:
    return {"_index": ".ds-logs-zeek.connection-default-000001", "_id": "id-" + row["uid"],
            "_score": 1.0, "_source": _ecs(row)}


def _expected(rows: list[dict]) -> list[tuple]:
    return [("id-" + r["uid"], datetime.fromtimestamp(float(r["ts"]), timezone.utc),
             r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"], int(r["id.resp_p"]),
             r["proto"]) for r in rows]


def _read(events) -> list[tuple]:
    columns = ["event_id", "timestamp", "source_ip", "source_port", "dest_ip", "dest_port",
               "protocol"]
    got = sorted(zip(*(events[c].to_pylist() for c in columns)), key=lambda r: r[1])
    return got


def _search_response(hits: list[dict]) -> dict:
    return {"took": 5, "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": 1.0,
                     "hits": hits}}


def test_an_elasticdump_export_is_read_as_its_documents(datasets, tmp_path):
    rows = _zeek_rows(datasets)
    path = tmp_path / "elasticdump.ndjson"
    path.write_text("".join(json.dumps(_hit(r)) + "\n" for r in rows))
    events, _ = collect("json", path)
    assert _read(events) == sorted(_expected(rows), key=lambda r: r[1])
    assert set(events["event_type"].to_pylist()) != {"event"}
    # The envelope is not kept as fields of the event, nor the document under _source.
    assert not [c for c in events.column_names if c.startswith(("_source", "_index", "_score"))]


@pytest.mark.parametrize("indent", [None, 2], ids=["one-line", "pretty"])
def test_a_search_response_is_read_as_its_hits(datasets, tmp_path, indent):
    rows = _zeek_rows(datasets)
    path = tmp_path / "search_response.json"
    path.write_text(json.dumps(_search_response([_hit(r) for r in rows]), indent=indent))
    # Small blocks: the pretty response's hits are streamed in several batches.
    events, collector = collect("json", path, connection_params={"block_size": 4096})
    assert _read(events) == sorted(_expected(rows), key=lambda r: r[1])
    assert "hits.hits" not in events.column_names
    if indent:
        assert collector.get_stats()["batches"] > 1


def test_a_json_file_with_no_known_field_is_refused(datasets, tmp_path, capsys):
    rows = _zeek_rows(datasets)
    # Two search responses, one per line (a scroll saved page by page): not read as events.
    pages = tmp_path / "pages.json"
    pages.write_text("".join(json.dumps(_search_response([_hit(r) for r in part])) + "\n"
                             for part in (rows[:20], rows[20:])))
    with pytest.raises(ConfigError) as refused:
        collect("json", pages)
    assert str(refused.value) == (
        f"{pages}: no record has a field of the json: field map (a time, address or event type "
        "such as timestamp, @timestamp, source.ip), only _shards.failed, _shards.skipped, "
        "_shards.successful, _shards.total, hits.hits, hits.max_score, ...; this looks like "
        "several Elasticsearch _search responses: give one response per file, or their hits "
        "one per line (jq -c '.hits.hits[]')")
    other = tmp_path / "inventory.json"
    other.write_text("".join(json.dumps({"name": r["uid"], "size": r["orig_bytes"]}) + "\n"
                             for r in rows))
    assert main(["collect", "--source", f"json:{other}", "--output", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {other}: no record has a field of the json: field map (a time, address or "
        "event type such as timestamp, @timestamp, source.ip), only name, size; name its fields "
        "with --field-map, e.g. --field-map timestamp=FIELD,source_ip=FIELD"]
