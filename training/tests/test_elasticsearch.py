"""The Elasticsearch source against `fake_elasticsearch.FakeElasticsearch`, a stand-in for a real
cluster (none can be installed on the machines these tests run on): an HTTP server on 127.0.0.1
that answers the REST endpoints the official client calls (`_pit`, `_search` with pit, sort,
search_after and slice, `DELETE _pit`, ES-shaped errors) and refuses requests a point-in-time
read must not send. The official client's real request/response path runs in every test.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from training.collection.collector import DataCollector, DataSource
from training.collection.schema import CANONICAL_FIELDS
from training.errors import ConfigError, SourceError
from training.sources import ElasticsearchSource, create_source
from training.tests.fake_elasticsearch import FakeElasticsearch, documents
from training.tests.filebeat_docs import suricata_eve, zeek_connection

API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
PASSWORD = "s3cret-Pa55word"
SECRETS = (API_KEY, PASSWORD)


def _docs(n: int, per_timestamp: int = 3, prefix: str = "e") -> list[dict]:
    """ECS documents, `per_timestamp` sharing each millisecond (ties for the tiebreaker)."""
    return documents(({
        "@timestamp": f"2024-05-01T10:{i // per_timestamp // 60 % 60:02d}:"
                      f"{i // per_timestamp % 60:02d}.123Z",
        "event": {"module": "zeek", "dataset": "zeek.connection", "duration": 1_500_000_000},
        "source": {"ip": f"10.0.{i % 7}.{i % 250}", "port": 40000 + i % 1000, "bytes": i},
        "destination": {"ip": "192.0.2.10", "port": 443},
        "network": {"transport": "tcp", "protocol": "ssl"},
        "host": {"name": f"sensor-{i % 2}"},
    } for i in range(n)), prefix=prefix)


def _source(es: FakeElasticsearch, index: str = "logs-*", name: str = "es", **params) -> DataSource:
    batch_size = params.pop("batch_size", 50)
    query_filter = params.pop("query_filter", None)
    params.setdefault("api_key", API_KEY)
    params.setdefault("retry_backoff", 0.001)
    return DataSource(name, "elasticsearch", {"hosts": es.url, "index": index, **params},
                      batch_size=batch_size, query_filter=query_filter)


def _ids(table: pa.Table) -> list[str]:
    return table["event_id"].to_pylist()


@pytest.fixture
def es():
    with FakeElasticsearch({"logs-a": _docs(300, prefix="a"), "logs-b": _docs(200, prefix="b")},
                           api_key=API_KEY) as server:
        yield server


def _all_ids(es: FakeElasticsearch) -> Counter:
    return Counter(d["_id"] for docs in es.indices.values() for d in docs)


# -- reading ------------------------------------------------------------------------------------


def _filebeat_index(datasets: Path) -> tuple[list[dict], list[dict]]:
    """Real Suricata alerts/flows and Zeek connections shaped as Filebeat indexes them."""
    suricata_path = datasets / "suricata" / "slips_test6-malicious.suricata.json"
    zeek_path = datasets / "zeek_zat" / "json" / "conn.log"
    shaped = {}
    for path, shape in ((suricata_path, suricata_eve), (zeek_path, zeek_connection)):
        offset, records = 0, []
        for line in path.read_bytes().splitlines(keepends=True):
            records.append(shape(json.loads(line), offset, str(path)))
            offset += len(line)
        shaped[path] = records
    return shaped[suricata_path], shaped[zeek_path]


@pytest.mark.parametrize("slices", [1, 4])
def test_same_canonical_table_as_the_json_lines_export(tmp_path, datasets, slices):
    suricata, zeek = _filebeat_index(datasets)
    export = tmp_path / "export.jsonl"  # what an export of the index would hold: the documents
    export.write_text("".join(json.dumps(d) + "\n" for d in suricata + zeek))
    json_table = DataCollector([DataSource("siem", "json_file", {"path": str(export)})],
                               progress=False).collect_table()
    indices = {"filebeat-suricata-2021.06.06": documents(suricata, "s"),
               "filebeat-zeek-2019.12.03": documents(zeek, "z")}
    with FakeElasticsearch(indices, api_key=API_KEY) as es:
        es_source = _source(es, "filebeat-*", "siem", slices=slices, batch_size=400)
        es_table = DataCollector([es_source], progress=False).collect_table()

    assert es_table.num_rows == json_table.num_rows == len(suricata) + len(zeek)
    order = [("timestamp", "ascending"), ("log.file.path", "ascending"), ("log.offset", "ascending")]
    es_sorted, json_sorted = es_table.sort_by(order), json_table.sort_by(order)
    # Extra columns come in the order they were first met, which the read order decides.
    assert es_sorted.column_names[:len(CANONICAL_FIELDS)] == list(CANONICAL_FIELDS)
    assert sorted(es_sorted.column_names) == sorted(json_sorted.column_names)
    # A source field is kept as an extra column exactly when one of its values lost to another
    # candidate of the same canonical column (training.collection.canonical), which these documents never
    # do, so every column agrees however the documents fall into batches.
    for name in es_sorted.column_names:
        if name != "event_id":
            assert es_sorted[name].equals(json_sorted[name]), name
    # The event id is the document's _id.
    assert Counter(_ids(es_table)) == Counter(d["_id"] for docs in indices.values() for d in docs)
    alerts = es_sorted.filter(pc.equal(es_sorted["event_type"], "alert"))
    assert alerts.num_rows == 745 and set(alerts["is_threat"].to_pylist()) == {1}
    assert es.open_pits == set()


def test_sliced_read_uses_four_slice_streams_and_returns_every_document_once(es):
    collector = DataCollector([_source(es, slices=4, batch_size=30)], progress=False)
    table = collector.collect_table()
    assert Counter(_ids(table)) == _all_ids(es)
    (pit, slices), = es.slices_read.items()
    assert slices == {(0, 4), (1, 4), (2, 4), (3, 4)}
    # Slices are cut on the time field, so a document's slice does not depend on the view.
    assert {b["slice"]["field"] for b in es.search_bodies} == {"@timestamp"}
    assert es.pits_opened == es.pits_closed == [pit] and es.open_pits == set()
    assert collector.get_stats()["duplicates"] == 0


def test_a_dropped_connection_and_429_503_answers_are_retried(es, caplog):
    es.drop_after_pages = 3
    es.fail_statuses = [429, 503]
    with caplog.at_level(logging.WARNING, logger="training"):
        collector = DataCollector([_source(es, slices=2, batch_size=40)], progress=False)
        table = collector.collect_table()
    assert Counter(_ids(table)) == _all_ids(es)
    assert collector.get_stats()["duplicates"] == 0
    assert es.dropped == 1 and not es.fail_statuses
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3 and any("429" in m for m in retries) and any("503" in m for m in retries)


def test_an_expired_point_in_time_is_replaced_and_reading_goes_on(es):
    es.expire_after_pages = 4
    table = DataCollector([_source(es, slices=2, batch_size=25)], progress=False).collect_table()
    assert Counter(_ids(table)) == _all_ids(es)
    assert len(es.pits_opened) == 2 and es.open_pits == set()


def _collect_in_pieces(make_source, out: Path, max_events: int, between=None) -> list[str]:
    collected: list[str] = []
    for run in range(200):
        collector = DataCollector([make_source()], output_dir=out, progress=False)
        got = _ids(collector.collect_table(max_events=max_events))
        if not got:
            return collected
        collected += got
        assert collector.get_stats()["duplicates"] == 0  # exact positions, not dedup, at work
        if between is not None:
            between(run)
    raise AssertionError("collection did not finish")


def test_max_events_cuts_mid_page_and_resumes_exactly_across_new_views(tmp_path):
    indices = {"logs-a": _docs(120, per_timestamp=4, prefix="a"),
               "logs-b": _docs(80, per_timestamp=4, prefix="b")}

    def renumber(run: int) -> None:
        # A segment merge between runs: every document gets another _shard_doc.
        for docs in indices.values():
            docs.reverse()

    with FakeElasticsearch(indices, api_key=API_KEY) as es:
        ids = _collect_in_pieces(lambda: _source(es, slices=3, batch_size=9), tmp_path / "out",
                                 max_events=13, between=renumber)
        assert Counter(ids) == _all_ids(es) and len(ids) == 200
        assert len(es.pits_opened) > 10 and es.open_pits == set()


def test_time_range_and_query_filter_are_pushed_down(es):
    source = _source(es, query_filter="host.name:sensor-1", batch_size=100)
    table = DataCollector([source], progress=False).collect_table(
        start_date="2024-05-01T10:00:10Z", end_date="2024-05-01T10:00:40Z")
    expected = {d["_id"] for docs in es.indices.values() for d in docs
                if d["_source"]["host"]["name"] == "sensor-1"
                and "10:00:10" <= d["_source"]["@timestamp"][11:19] < "10:00:40"}
    assert set(_ids(table)) == expected and table.num_rows == len(expected)
    query = es.search_bodies[-1]["query"]["bool"]["filter"]
    assert query[0] == {"range": {"@timestamp": {"format": "strict_date_optional_time",
                                                 "gte": "2024-05-01T10:00:10+00:00",
                                                 "lt": "2024-05-01T10:00:40+00:00"}}}
    assert query[1] == {"query_string": {"query": "host.name:sensor-1"}}
    dsl = _source(es, query_filter={"query": {"term": {"source.port": 40001}}})
    table = DataCollector([dsl], progress=False).collect_table()
    assert _ids(table) == ["a-1", "b-1"]


def test_closing_early_stops_every_slice_thread_and_closes_the_point_in_time(es):
    before = set(threading.enumerate())
    collector = DataCollector([_source(es, slices=4, batch_size=10)], progress=False)
    batches = collector.batches()
    assert next(batches).num_rows > 0
    batches.close()
    leftover = [t.name for t in threading.enumerate() if t not in before
                and t.name.startswith(("merge", "prefetch"))]
    assert leftover == []
    assert es.open_pits == set() and len(es.pits_closed) == 1


# -- ECS mapping -------------------------------------------------------------------------------


def test_ecs_and_filebeat_fields_map_onto_the_canonical_schema():
    docs = documents([
        {"@timestamp": "2024-05-01T10:00:00.000Z",
         "event": {"module": "suricata", "kind": "alert", "severity": 1, "duration": 2_500_000_000,
                   "category": ["network", "intrusion_detection"]},
         "source": {"ip": "10.1.1.1", "port": 5555, "bytes": 10, "packets": 1},
         "destination": {"ip": "10.1.1.2", "port": 80, "bytes": 20, "packets": 2},
         "network": {"transport": "TCP", "protocol": "http", "community_id": "1:abc="},
         "rule": {"name": "ET POLICY curl User-Agent Outbound", "category": "Attempted Information Leak"},
         "suricata": {"eve": {"event_type": "alert", "flow": {"state": "established"}}}},
        {"@timestamp": "2024-05-01T10:00:01.000Z",
         "event": {"dataset": "zeek.connection", "duration": 76_967_000},
         "zeek": {"session_id": "CAcJw21BbVedgFnYH3", "connection": {"state": "SF"}},
         "network": {"direction": "outbound"}, "dns": {"question": {"name": "example.org"}}},
        {"@timestamp": "2024-05-01T10:00:02.000Z",
         "event": {"category": ["process"], "type": ["start"]},
         "user": {"name": "alice"}, "host": {"name": "ws-01"},
         "process": {"name": "powershell.exe", "command_line": "powershell -enc AAAA",
                     "parent": {"name": "winword.exe"}},
         "file": {"path": "C:\\\\x.ps1", "hash": {"sha256": "ab" * 32}}},
    ])
    with FakeElasticsearch({"ecs": docs}) as es:
        source = DataSource("ecs", "elasticsearch", {"hosts": es.url, "index": "ecs"})
        rows = DataCollector([source], progress=False).collect_table().to_pylist()
    alert, conn, process = rows
    assert (alert["event_id"], alert["source_ip"], alert["dest_port"], alert["protocol"],
            alert["service"], alert["bytes_sent"], alert["packets_received"]) == (
        "doc-0", "10.1.1.1", 80, "tcp", "http", 10, 2)
    assert (alert["is_threat"], alert["label"], alert["attack_type"]) == (
        1, "Attempted Information Leak", "ET POLICY curl User-Agent Outbound")
    assert alert["severity"] == pytest.approx(1.0) and alert["duration"] == 2.5
    assert alert["community_id"] == "1:abc=" and alert["conn_state"] == "established"
    assert (conn["event_type"], conn["conn_state"], conn["direction"], conn["domain"]) == (
        "conn", "SF", "outbound", "example.org")
    assert conn["duration"] == pytest.approx(0.076967) and conn["is_threat"] == -1
    assert (process["user"], process["host"], process["process"], process["parent_process"],
            process["command_line"], process["file_hash"], process["event_type"]) == (
        "alice", "ws-01", "powershell.exe", "winword.exe", "powershell -enc AAAA", "ab" * 32,
        "process/start")


# -- errors and secrets --------------------------------------------------------------------------


def _no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_wrong_credentials_name_host_and_index_but_no_secret(caplog):
    with FakeElasticsearch({"logs-a": _docs(5)}, api_key="the-right-key",
                           basic_auth=("elastic", "the-right-password")) as es:
        with caplog.at_level(logging.DEBUG):
            for credentials in ({"api_key": API_KEY}, {"username": "elastic", "password": PASSWORD}):
                source = DataSource("es", "elasticsearch",
                                    {"hosts": es.url, "index": "logs-a", **credentials})
                with pytest.raises(SourceError) as error:
                    DataCollector([source], progress=False).collect_table()
                message = str(error.value)
                assert "authentication failed (401 security_exception)" in message
                assert es.url in message and "'logs-a'" in message
                _no_secret(message, repr(error.value))
        _no_secret(caplog.text)


def test_a_missing_index_is_named(es):
    with pytest.raises(SourceError, match=r"index 'nope'\): no such index \(404 "
                                          r"index_not_found_exception: no such index \[nope\]\)"):
        DataCollector([_source(es, "nope")], progress=False).collect_table()


def test_an_unreachable_host_is_named_after_its_retries(caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = DataSource("es", "elasticsearch", {
        "hosts": [f"http://127.0.0.1:{port}"], "index": "logs-*", "api_key": API_KEY,
        "max_retries": 2, "retry_backoff": 0.001})
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as error:
        DataCollector([source], progress=False).collect_table()
    message = str(error.value)
    assert f"Elasticsearch at http://127.0.0.1:{port} (index 'logs-*') does not answer" in message
    assert "failed 3 times" in message
    _no_secret(message, caplog.text)


def test_credentials_stay_out_of_checkpoints_and_logs(tmp_path, es, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        DataCollector([_source(es)], output_dir=out, progress=False).collect_to()
    for path in out.rglob("*.json*"):
        _no_secret(path.read_text())
    _no_secret(caplog.text, repr(_source(es)), repr(_source(es, api_key=None, username="elastic",
                                                              password=PASSWORD)))
    # Rotating the key is not a new recipe: the collection resumes (and has nothing new).
    rotated = _source(es, api_key=API_KEY[::-1])
    with pytest.raises(SourceError, match="authentication failed"):
        DataCollector([rotated], output_dir=out, progress=False).collect_to()


def test_configuration_is_validated():
    def make(**params) -> ElasticsearchSource:
        return create_source(DataSource("es", "elasticsearch", {"index": "logs-*", **params}))

    with pytest.raises(ConfigError, match="hosts") as error:
        make(hosts=f"https://elastic:{PASSWORD}@es01:9200")
    assert "https://***@es01:9200" in str(error.value)
    _no_secret(str(error.value))
    with pytest.raises(ConfigError, match="either api_key or username/password"):
        make(hosts="es01:9200", api_key=API_KEY, username="u")
    with pytest.raises(ConfigError, match="slices must be an integer >= 1, got 0"):
        make(hosts="es01:9200", slices=0)
    with pytest.raises(ConfigError, match="keep_alive must be a duration"):
        make(hosts="es01:9200", keep_alive="five minutes")
    with pytest.raises(ConfigError, match="batch_size must be <= 10000"):
        create_source(DataSource("es", "elasticsearch", {"host": "es01", "index": "x"},
                                 batch_size=10_001))
    with pytest.raises(ConfigError, match="need connection_params"):
        create_source(DataSource("es", "elasticsearch", {"hosts": "es01"}))
    with pytest.raises(ConfigError, match="needs a time_field"):
        create_source(DataSource("es", "elasticsearch", {"hosts": "es01", "index": "x"},
                                 time_field=None))
    legacy = make(host="localhost")  # the original system's single `host`
    assert legacy.settings.hosts == ("http://localhost:9200",)
    many = make(hosts=["https://es01:9200", "https://es02:9200"], slices=2)
    assert many.streams() == ["slice-0-of-2", "slice-1-of-2"]
    assert make(hosts="es01").streams() == ["all"]


# -- the stand-in enforces the protocol -----------------------------------------------------------


def test_the_test_server_refuses_what_a_point_in_time_read_must_not_send(es):
    import elasticsearch

    client = elasticsearch.Elasticsearch(es.url, api_key=API_KEY, max_retries=0)
    pit = client.open_point_in_time(index="logs-*", keep_alive="1m")["id"]
    good_sort = [{"@timestamp": "asc"}, {"_shard_doc": "asc"}]
    with pytest.raises(elasticsearch.BadRequestError, match="point-in-time searches only"):
        client.search(index="logs-a", sort=good_sort)
    with pytest.raises(elasticsearch.BadRequestError, match="tiebreaker"):
        client.search(pit={"id": pit}, sort=[{"@timestamp": "asc"}])
    with pytest.raises(elasticsearch.BadRequestError, match="max must be greater than 1"):
        client.search(pit={"id": pit}, sort=good_sort, slice={"id": 0, "max": 1})
    with pytest.raises(elasticsearch.BadRequestError, match="malformed slice"):
        client.search(pit={"id": pit}, sort=good_sort, slice={"id": "0", "max": 2})
    page = client.search(pit={"id": pit}, sort=good_sort, size=2)
    assert [h["_id"] for h in page["hits"]["hits"]] == ["a-0", "a-1"]
    client.close_point_in_time(id=page["pit_id"])
    with pytest.raises(elasticsearch.NotFoundError, match="No search context found"):
        client.search(pit={"id": pit}, sort=good_sort)
    assert es.open_pits == set()
    # Like an 8.x cluster, it refuses clients that ask for 9.x compatibility.
    nine = urllib.request.Request(es.url + "/", headers={
        "Accept": "application/vnd.elasticsearch+json; compatible-with=9",
        "Authorization": f"ApiKey {API_KEY}"})
    with pytest.raises(urllib.error.HTTPError, match="400"):
        urllib.request.urlopen(nine, timeout=10)


def test_the_command_line_form_takes_credentials_from_the_environment_only():
    from training.cli.options import parse_source

    source = parse_source("siem=es:https://es01:9200/logs-*,zeek-*", 0, None,
                          environ={"MAXIMUS_ES_API_KEY": API_KEY, "MAXIMUS_ES_VERIFY_CERTS": "false"})
    assert (source.name, source.source_type.value) == ("siem", "elasticsearch")
    assert source.connection_params == {"hosts": "https://es01:9200", "index": "logs-*,zeek-*",
                                        "api_key": API_KEY, "verify_certs": False}
    reader = create_source(source)
    assert reader.settings.index == "logs-*,zeek-*" and API_KEY not in str(reader.recipe_params())
    with pytest.raises(ConfigError, match="looks like es:https://es01:9200/logs-"):
        parse_source("es:https://es01:9200", 0, None, environ={})
