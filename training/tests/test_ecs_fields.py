"""ECS alert documents put an event's domain where ECS keeps it for that kind of event: the DNS
query, the TLS server name, the HTTP host, else the destination's domain (real Suricata EVE
events of each kind)."""

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


def test_the_domain_goes_where_ecs_keeps_it_for_the_event_type(datasets):
    table = DataCollector([DataSource("eve", "suricata", {"path": str(datasets / EVE)})],
                          progress=False).collect_table()
    named = table.filter(pc.is_valid(table["domain"]))
    first = [named["event_type"].to_pylist().index(kind) for kind in WHERE]
    events = named.take(pa.array(first))
    ids = events["event_id"].combine_chunks()
    columns = {"unit": ids, "time": events["timestamp"].combine_chunks().cast(TIME),
               "event_ids": pa.ListArray.from_arrays(pa.array(np.arange(len(first) + 1,
                                                                     dtype=np.int32)), ids)}
    rows = unit_rows(columns, np.full(len(first), 2.0, np.float32), events, layer="layer1",
                     threshold=1.0, calibration=None)
    docs = event_alerts(AlertRule("m", "1", "layer1", 1.0), events, rows)
    for doc, kind, domain in zip(docs, WHERE, events["domain"].to_pylist()):
        node = doc
        for name in WHERE[kind]:
            node = node[name]
        assert node == domain
        assert ("dns" in doc) == (kind == "dns")  # a TLS server name is no DNS question
