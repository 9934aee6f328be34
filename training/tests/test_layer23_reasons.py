"""Layer-2 and layer-3 reasons on real Zeek events: one field of one unit's events set to a
value far beyond the capture's, and the aggregate it feeds is the unit's first reason, observed
in its real unit (a count, bytes, seconds; ">= cap" at the cap); the terms add up to the score.
A scan (one unit's events joined by thousands to distinct ports) leads with `dest_ports`: the
real count of distinct ports beside the model's forecast or reconstruction read back.

The detectors are the layers' defaults with seeded, untrained weights and scaling fitted on
the first 2,000 events of a capture (stratosphere 008): what is checked is the explanation (the terms of the model's own
score, named), not detection, so whether the unit alerts is printed, not asserted (an untrained
detector's threshold means little). The changed unit is the lowest-scoring (most typical) one,
chosen by score alone.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from training.collection.collector import DataCollector, DataSource
from training.layers.layer2 import Layer2
from training.layers.layer3 import Layer3

LOG = "stratosphere/008-zeek-mixed/data/conn.log.labeled"
EVENTS = 2000  # its first events: a small slice keeps the test quick
# (layer, field, value far beyond the capture's, the aggregate that must lead, its text)
CASES = [
    (Layer2, "bytes_sent", 10**12, "bytes_sent", ">= 1000000000000"),
    (Layer2, "packets_received", 10**9, "packets_received", ">= 1000000000"),
    (Layer3, "bytes_sent", 10**12, "bytes_sent", ">= 1000000000000"),
    (Layer3, "packets_received", 10**9, "packets_received", ">= 1000000000"),
    (Layer3, "duration", 86_400.0, "duration_mean", ">= 86400 s"),
]
# (layer, the standardizer of its dest_ports term, unit length and the time before it that the
# unit's features read (layer 3: its 30 buckets of history), in seconds; ports scanned)
SCANS = [(Layer3, "bucket", 60, 1800, 3000), (Layer2, "edge", 300, 0, 3000)]


@pytest.fixture(scope="module")
def events(datasets):
    return DataCollector([DataSource("z", "zeek_logs", {"path": str(datasets / LOG)})],
                         progress=False).collect_table().slice(0, EVENTS)


@pytest.fixture(scope="module")
def fitted(events):
    out = {}
    for cls in (Layer2, Layer3):
        torch.manual_seed(0)
        layer = cls()
        units = layer.featurize(events)
        layer.fit(units)
        model = layer.default_detector(units).eval()
        scores = layer.score(model, units)
        out[cls] = (layer, model, units, scores, float(np.quantile(scores, 0.99)))
    return out


@pytest.mark.parametrize("cls,field,value,aggregate,text", CASES,
                         ids=[f"{c[0].name}-{c[1]}" for c in CASES])
def test_a_far_value_leads_the_reasons_and_alerts(events, fitted, cls, field, value, aggregate,
                                                  text):
    layer, model, units, scores, threshold = fitted[cls]
    columns = layer.unit_columns(units)
    typical = int(np.argmin(scores))  # the most typical unit: the change is its one oddity
    name = columns["unit"][typical].as_py()
    ids = pa.array(columns["event_ids"][typical].as_py())
    assert value > pc.max(events[field]).as_py()  # beyond anything in the capture
    hit = pc.is_in(events["event_id"], value_set=ids)
    changed = events.set_column(events.column_names.index(field), field,
                                pc.if_else(hit, pa.scalar(value, events.schema.field(field).type),
                                           events[field]))
    units2 = layer.featurize(changed)
    row = layer.unit_columns(units2)["unit"].to_pylist().index(name)
    score = float(layer.score(model, units2)[row])
    (reasons,) = layer.explain(model, units2, np.array([row]), events=changed)
    print(f"{layer.name} {name}: {field}={value}: score {scores[typical]:.3g} -> {score:.3g}, "
          f"threshold {threshold:.3g}, first reason {reasons[0]}")
    assert reasons[0].field == aggregate
    assert reasons[0].observed == text  # the value is past the feature's cap
    assert float(reasons[0].typical.removesuffix(" s")) < value
    assert abs(sum(r.contribution for r in reasons) - score) <= 1e-5 * max(1.0, score)
    assert score > scores[typical] + reasons[0].contribution / 2


@pytest.mark.parametrize("cls,scaler,seconds,before,ports", SCANS, ids=[c[0].name for c in SCANS])
def test_a_scan_reads_as_its_count_of_ports_beside_the_forecast(events, fitted, cls, scaler,
                                                                seconds, before, ports):
    layer, model, units, scores, _ = fitted[cls]
    columns = layer.unit_columns(units)
    typical = int(np.argmin(scores))
    name = columns["unit"][typical].as_py()
    ids = pa.array(columns["event_ids"][typical].as_py())
    # The scan: the unit's first event again, once to each of `ports` ports (1..ports).
    first = events.filter(pc.is_in(events["event_id"], value_set=ids)).slice(0, 1)
    scan = pa.concat_tables([first] * ports)
    scan = scan.set_column(scan.column_names.index("dest_port"), "dest_port",
                           pa.array(range(1, ports + 1), pa.int32()))
    scan = scan.set_column(scan.column_names.index("event_id"), "event_id",
                           pa.array([f"scan-{i}" for i in range(ports)]))
    ends, start = name.split("@")
    start = int(np.datetime64(start, "us").astype(np.int64))
    end = start + seconds * 10**6
    # Only the events the unit's features read: the same unit, scored in a fraction of the time.
    micros = events["timestamp"].cast(pa.int64())
    changed = pa.concat_tables([events.filter(pc.and_(
        pc.greater_equal(micros, start - before * 10**6), pc.less(micros, end))), scan])
    # The real count, from the events alone: the unit's ends in its bucket or window.
    micros = changed["timestamp"].cast(pa.int64())
    mine = pc.and_(pc.greater_equal(micros, start), pc.less(micros, end))
    for field, value in zip(("source_ip", "dest_ip"), ends.split("->")):
        mine = pc.and_(mine, pc.equal(changed[field], value))
    count = pc.count_distinct(changed.filter(mine)["dest_port"]).as_py()
    assert count >= ports > pc.max(events["dest_port"]).as_py() // 100  # far past the capture's

    units2 = layer.featurize(changed)
    row = layer.unit_columns(units2)["unit"].to_pylist().index(name)
    score = float(layer.score(model, units2)[row])
    (reasons,) = layer.explain(model, units2, np.array([row]), events=changed)
    print(f"{layer.name} {name}: {count} ports: score {scores[typical]:.3g} -> {score:.3g}, "
          f"first reason {reasons[0]}")
    assert reasons[0].field == "dest_ports"
    assert reasons[0].observed == str(count)
    # Typical: the model's own forecast (reconstruction) of the term, standardization and
    # log scale undone.
    names = layer.term_names(model, units2)
    at = names.index("dest_ports")
    with torch.no_grad():
        expected = torch.cat([model.score_values(b)[1]
                              for b in layer.batches(units2, layer.score_batch)])
    fitted_scaling = layer.spec.fitted["scaling"][scaler]
    plain = float(expected[row, at]) * fitted_scaling["std"][at] + fitted_scaling["mean"][at]
    assert 0 <= plain < 1  # within the clip range: a number, not ">= cap"
    assert reasons[0].typical == str(round(math.expm1(plain * math.log1p(65536))))
    assert abs(sum(r.contribution for r in reasons) - score) <= 1e-5 * max(1.0, score)


@pytest.mark.parametrize("cls", [Layer2, Layer3], ids=["layer2", "layer3"])
def test_edges_and_windows_carry_their_hosts_bounds_and_top_events(events, fitted, cls):
    from training.scoring.context import unit_context

    layer, _, units, _, _ = fitted[cls]
    columns = layer.unit_columns(units)
    context = unit_context(events, columns["event_ids"]).to_pylist()
    times = dict(zip(events["event_id"].to_pylist(), events["timestamp"].to_pylist()))
    # Each context column holds the value a unit's events share (a missing one counts as a
    # value of its own), else null: checked here one event at a time.
    shared = ["event_type", "source_ip", "source_port", "dest_ip", "dest_port", "protocol",
              "service", "community_id"]
    values = {i: e for i, e in zip(events["event_id"].to_pylist(),
                                   events.select(shared + ["uid"]).to_pylist())}
    for name, ids, row in zip(columns["unit"].to_pylist(), columns["event_ids"].to_pylist(),
                              context):
        for field, got in [(f, row[f]) for f in shared] + [("uid", row["sensor_id"])]:
            seen = {values[i][field] for i in ids}
            assert got == (seen.pop() if len(seen) == 1 else None), (name, field, seen)
        hosts = name.split("@")[0].split("->")
        assert [row["source_ip"], row["dest_ip"]][:len(hosts)] == hosts
        assert (row["first_seen"], row["last_seen"]) == (min(times[i] for i in ids),
                                                         max(times[i] for i in ids))
        top = row["top_events"]
        assert len(top) == min(3, len(ids)) and {e["event_id"] for e in top} <= set(ids)
        assert [e["bytes"] for e in top] == sorted((e["bytes"] for e in top), reverse=True)


@pytest.mark.parametrize("cls", [Layer2, Layer3], ids=["layer2", "layer3"])
def test_reasons_of_a_few_units_are_those_their_whole_batch_gives(fitted, cls):
    """`explain` runs only the graphs or windows of the units asked for; their reasons are
    those of the terms of every unit, scored as the batch scores them."""
    from training.layers.reasons import explain_terms

    layer, model, units, scores, _ = fitted[cls]
    rows = np.argsort(-scores)[:25]
    rows = np.r_[rows, rows[:3], 0, len(scores) - 1]  # repeated, unsorted, both ends
    whole = explain_terms(model, layer.batches(units, layer.score_batch), rows,
                          layer.term_names(model, units))
    some = layer.explain(model, units, rows)
    assert len(some) == len(rows)
    for got, want in zip(some, whole):
        assert sorted(r.field for r in got) == sorted(r.field for r in want)
        want_by_field = {r.field: r.contribution for r in want}
        for r in got:
            assert r.contribution == pytest.approx(want_by_field[r.field], abs=1e-5)
