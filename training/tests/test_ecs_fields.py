"""ECS alert documents put an event's domain where ECS keeps it for that kind of event: the DNS
query, the TLS server name, the HTTP host, else the destination's domain (real Suricata EVE
events of each kind); a host log's process goes to `process.*` (real Sysmon events)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.collector import DataCollector, DataSource
from training.layers.base import TIME
from training.scoring.alerts import unit_rows
from training.scoring.ecs import AlertRule, event_alerts

EVE = "suricata/slips_test6-malicious.suricata.json"
WHERE = {"dns": ("dns", "question", "name"), "tls": ("tls", "client", "server_name"),
         "http": ("url", "domain"), "fileinfo": ("destination", "domain")}


def _alert_docs(events: pa.Table) -> list[dict]:
    """Every event of `events` as an alert of one layer-1 model."""
    ids = events["event_id"].combine_chunks()
    columns = {"unit": ids, "time": events["timestamp"].combine_chunks().cast(TIME),
               "event_ids": pa.ListArray.from_arrays(pa.array(np.arange(len(ids) + 1,
                                                                     dtype=np.int32)), ids)}
    rows = unit_rows(columns, np.full(len(ids), 2.0, np.float32), events, layer="layer1",
                     threshold=1.0, calibration=None)
    return event_alerts(AlertRule("m", "1", "layer1", 1.0), events, rows)


def test_a_host_logs_process_goes_to_ecs_process_fields(datasets):
    path = datasets / "windows_otrf_security_datasets/psh_lsass_memory_dump_comsvcs.zip"
    table = DataCollector([DataSource("w", "windows_events", {"path": str(path)})],
                          progress=False).collect_table()
    started = table.filter(pc.and_(pc.is_valid(table["command_line"]),
                                   pc.is_valid(table["parent_process"])))
    events = started.slice(0, 5)
    assert events.num_rows == 2  # the recording's two process starts (Sysmon 1)
    for doc, image, parent, command in zip(_alert_docs(events), *(events[c].to_pylist() for c in (
            "process", "parent_process", "command_line"))):
        assert doc["process"]["command_line"] == command
        assert doc["process"]["executable"] == image  # Sysmon gives the full path
        assert doc["process"]["name"] == image.rsplit("\\", 1)[-1] != image
        assert doc["process"]["parent"]["name"] == parent.rsplit("\\", 1)[-1]


def test_the_domain_goes_where_ecs_keeps_it_for_the_event_type(datasets):
    table = DataCollector([DataSource("eve", "suricata", {"path": str(datasets / EVE)})],
                          progress=False).collect_table()
    named = table.filter(pc.is_valid(table["domain"]))
    first = [named["event_type"].to_pylist().index(kind) for kind in WHERE]
    events = named.take(pa.array(first))
    docs = _alert_docs(events)
    for doc, kind, domain in zip(docs, WHERE, events["domain"].to_pylist()):
        node = doc
        for name in WHERE[kind]:
            node = node[name]
        assert node == domain
        assert ("dns" in doc) == (kind == "dns")  # a TLS server name is no DNS question
