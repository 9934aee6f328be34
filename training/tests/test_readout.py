"""Layer-2 and layer-3 feature values read back in real units (`training.features.readout`):
each dim kind on exact values, the standardization undone, and every feature of both
featurizers read back as the aggregate it was made from, on small hand-made events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from training.features.encoding import log_scale
from training.features.layer2 import Layer2GraphBuilder
from training.features.layer2_readout import edge_readout
from training.features.layer3 import Layer3WindowBuilder
from training.features.layer3_readout import bucket_readout
from training.features.readout import LogCount, LogSeconds, Readout, Share, Standardized
from training.features.scaling import Standardizer, scaling_of, with_scaling

# (dim, amounts (scaled as the featurizer does; a share as it is), texts)
DIMS = [
    (LogCount(65536.0), [0, 1, 46, 65535, 65536, 10**6], ["0", "1", "46", "65535", ">= 65536",
                                                          ">= 65536"]),
    (LogCount(1e12), [1234, 123456789, 10**12], ["1234", "123457000", ">= 1000000000000"]),
    (LogSeconds(86_400.0), [0.0, 1e-9, 0.000011, 0.0042, 12.34, 3600, 86_400],
     ["0 s", "0 s", "0.000011 s", "0.0042 s", "12.3 s", "3600 s", ">= 86400 s"]),
    (Share(), [-0.2, 0.0, 0.25, 2 / 3, 1.3], ["0.000", "0.000", "0.250", "0.667", "1.000"]),
    (Standardized(), [-1.5, 10.94], ["-1.5", "10.94"]),
]


@pytest.mark.parametrize("dim,amounts,texts", DIMS, ids=[type(d[0]).__name__ + str(i)
                                                        for i, d in enumerate(DIMS)])
def test_each_dim_reads_back_exact_values(dim, amounts, texts):
    amounts = np.asarray(amounts, np.float64)
    cap = getattr(dim, "cap", None)
    values = log_scale(amounts, cap).astype(np.float32) if cap else amounts  # float32 as stored
    assert dim.texts(values.astype(np.float64)) == texts


def test_a_readout_undoes_the_standardization_and_says_past_the_cap():
    ports, ratio, vector = LogCount(65536.0), Share(), Standardized()
    mean, std = np.array([0.1, 0.5, 7.0]), np.array([0.05, 0.2, 3.0])
    plain = np.array([[log_scale(np.array([46.0]), 65536.0)[0], 0.25, 0.0],
                      [1.3, 0.5, 0.0],  # a forecast past the clip range
                      [-0.4, np.nan, 0.0]])  # below 0; no value
    standardized = (plain - mean) / std
    standardized[:, 2] = [2.5, -0.125, np.nan]  # a dim without unit keeps the model's value
    texts = Readout((ports, ratio, vector), mean, std).texts(standardized)
    assert texts == [["46", "0.250", "2.5"], [">= 65536", "0.500", "-0.125"], ["0", None, None]]
    with pytest.raises(ValueError, match=r"values must be \(rows, 3\), got \(3, 2\)"):
        Readout((ports, ratio, vector), mean, std).texts(standardized[:, :2])


T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def _events() -> pa.Table:
    """10.0.0.1 in one minute: 4 events to 2 peers and 3 ports; 10.0.0.2 a minute later."""
    rows = [  # (seconds, source, dest, port, bytes out, bytes in, packets out, in, s, state, type)
        (1, "10.0.0.1", "10.0.0.9", 22, 100, 10, 1, 1, 1.0, "S0", "conn"),
        (2, "10.0.0.1", "10.0.0.9", 80, 200, 20, 2, 1, 2.0, "SF", "conn"),
        (3, "10.0.0.1", "10.0.0.8", 80, 1234567, 30, 3, 1, None, "REJ", "conn"),
        (4, "10.0.0.1", "10.0.0.8", 443, 0, 0, 0, 0, None, None, "alert"),
        (65, "10.0.0.2", "10.0.0.9", 53, 60, 90, 1, 1, 0.25, "SF", "conn"),
    ]
    names = ["seconds", "source_ip", "dest_ip", "dest_port", "bytes_sent", "bytes_received",
             "packets_sent", "packets_received", "duration", "conn_state", "event_type"]
    data = dict(zip(names, map(list, zip(*rows))))
    data["timestamp"] = [T0 + timedelta(seconds=s) for s in data.pop("seconds")]
    data["severity"] = [None, None, None, 0.8, None]
    data["is_threat"] = [False] * len(rows)
    types = {"dest_port": pa.int32(), "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.table({k: pa.array(v, types.get(k)) for k, v in data.items()})


@pytest.mark.parametrize("alert_labels", [False, True], ids=["l3.v1", "l3.v2"])
def test_every_bucket_feature_reads_back_its_aggregate(alert_labels):
    windows = Layer3WindowBuilder(alert_labels=alert_labels).featurize(_events())
    spec = with_scaling(windows.spec, {"bucket": Standardizer.fit(windows.target, "bucket")})
    scaler = scaling_of(spec, {"bucket": windows.target.shape[1]})["bucket"]
    texts = bucket_readout(spec).texts(scaler.transform(windows.target))
    expected = {  # per feature, the first window's and the second's
        "events": ("4", "1"), "bytes_sent": ("1234870", "60"), "bytes_received": ("60", "90"),
        "packets_sent": ("6", "1"), "packets_received": ("3", "1"), "peers": ("2", "1"),
        "dest_ports": ("3", "1"), "failure_ratio": ("0.500", "0.000"), "alerts": ("1", "0"),
        "severity_max": ("0.800", "0.000"), "duration_mean": ("1.5 s", "0.25 s"),
    }
    if alert_labels:  # l3.v2: the alert is no feature row, and no feature counts alerts
        expected.update(events=("3", "1"), peers=("2", "1"), dest_ports=("2", "1"),
                        failure_ratio=("0.667", "0.000"))
    names = list(windows.spec.config["features"])
    assert [dict(zip(names, row)) for row in texts] == [
        {name: pair[0] for name, pair in expected.items() if name in names},
        {name: pair[1] for name, pair in expected.items() if name in names}]


def test_every_edge_and_node_feature_reads_back_its_aggregate():
    graphs = Layer2GraphBuilder().featurize(_events())
    a = graphs.arrays
    spec = with_scaling(graphs.spec, {"node": Standardizer.fit(a["x"], "node"),
                                      "edge": Standardizer.fit(a["edge_attr"], "edge")})
    scaling = scaling_of(spec, {"node": a["x"].shape[1], "edge": a["edge_attr"].shape[1]})
    src, dst = a["edge_index"]  # one window: node numbers are global
    values = np.concatenate([scaling["edge"].transform(a["edge_attr"]),
                             scaling["node"].transform(a["x"][src]),
                             scaling["node"].transform(a["x"][dst]),
                             np.full((len(src), 1), np.nan)], axis=1)  # (edges, terms)
    names = ([*spec.config["edge_features"]]
             + [f"{end}.{n}" for end in ("source", "dest") for n in spec.config["node_features"]]
             + ["peer (edge existence)"])
    rows = [dict(zip(names, row)) for row in edge_readout(spec).texts(values)]
    entity = graphs.strings("entity")
    (edge,) = [r for r, s, d in zip(rows, src, dst)
               if (entity[s], entity[d]) == ("10.0.0.1", "10.0.0.8")]
    assert {k: v for k, v in edge.items() if not k.startswith(("proto_", "state_"))} == {
        "flows": "2", "bytes_sent": "1234570", "bytes_received": "30", "packets_sent": "3",
        "packets_received": "1", "dest_ports": "2", "duration_mean": "0 s",
        "failure_ratio": "0.500",
        "source.out_degree": "2", "source.in_degree": "0", "source.peers": "2",
        "source.flows_out": "4", "source.flows_in": "0", "source.bytes_out": "1234870",
        "source.bytes_in": "60", "source.packets_out": "6", "source.packets_in": "3",
        "source.ports_out": "3", "source.ports_in": "0", "source.failure_out": "0.500",
        "source.failure_in": "0.000",
        "dest.out_degree": "0", "dest.in_degree": "1", "dest.peers": "1", "dest.flows_out": "0",
        "dest.flows_in": "2", "dest.bytes_out": "30", "dest.bytes_in": "1234570",
        "dest.packets_out": "1", "dest.packets_in": "3", "dest.ports_out": "0",
        "dest.ports_in": "2", "dest.failure_out": "0.000", "dest.failure_in": "0.500",
        "peer (edge existence)": None,
    }
    assert edge["state_rejected"] == "0.500" and edge["state_other"] == "0.500"


def test_standardizing_block_by_block_equals_standardizing_at_once():
    """`Standardizer.transform` works a block of rows at a time (to bound its float64
    temporaries); a (windows, T, F) array spanning several blocks comes out as one pass
    would give it, bit for bit."""
    from training.features.scaling import TRANSFORM_ROWS

    rng = np.random.default_rng(0)
    values = (rng.random((TRANSFORM_ROWS // 10 + 7, 30, 5)) * 1e4).astype(np.float32)
    scaler = Standardizer.fit(values.reshape(-1, 5), "bucket")
    once = ((values.astype(np.float64) - scaler.mean) / scaler.std).astype(np.float32)
    got = scaler.transform(values)
    assert got.dtype == np.float32 and got.shape == values.shape
    assert np.array_equal(got, once)


def test_scoring_with_an_unfitted_layer_says_how_to_get_the_models_own(datasets):
    """After `train_layer2_gnn`, a fresh `Layer2().score(model, units)` was told to call
    fit_layer2_scaling, which a Python user does not need: the model's own spec holds the
    scaling (trial Q)."""
    from training.data_collection import DataCollector, DataSource
    from training.errors import SchemaError
    from training.layers.layer2 import Layer2

    events = DataCollector([DataSource("z", "zeek_logs", {"path": str(
        datasets / "zeek_zat/tsv")})], progress=False).collect_table()
    fitted = Layer2()
    units = fitted.featurize(events)
    model = fitted.fit(units).default_detector(units)
    with pytest.raises(SchemaError, match=r"Layer\.from_spec\(results\['feature_spec'\]\) "
                                          r"after training or layer_for_spec"):
        Layer2().score(model, units)
