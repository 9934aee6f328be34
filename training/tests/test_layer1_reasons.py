"""Layer-1 reasons on real events: one field set to a value benign training never had becomes
the first reason, and the reasons' contributions add up to the score.

The detector is a layer-1 VAE fitted on the benign events of IoT-23 42-1 (a development
capture), with its default squared error and, for the alert test, also with its error weights
(`error_floor=0.01`) and with the cross-entropy reconstruction; its threshold (the 99th
percentile) and any error weights come from its scores on held-out benign events. Each case changes
the held-out events the model finds most typical (lowest scores; no label is looked at beyond
"benign"), so that the changed field is the one oddity.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from training.collection.collector import DataCollector, DataSource
from training.detectors.vae import Layer1VAE
from training.errors import NotSupportedError
from training.evaluation.calibration import Calibration
from training.features.layer1_names import DIM_FIELDS, DIM_NAMES, FIELDS, field_dims
from training.layers.layer1 import Layer1

CAPTURE = "iot23/CTU-Malware-Capture-42-1-labeled.csv"
TRAIN, VAL, EPOCHS = 2000, 1000, 25
N_EVENTS = 12  # real held-out benign events each case changes
# (field, value never seen in benign training: its largest there are 8,499 bytes sent, 654
# packets sent and 30,007 s)
CASES = [("dest_port", 65000), ("conn_state", "RSTRH"), ("protocol", "icmp"),
         ("bytes_sent", 10**10), ("packets_sent", 10**7), ("duration", 864_000.0),
         ("bytes_sent", 10**8), ("packets_sent", 10**5), ("duration", 36_000.0)]
IDS = [f"{field}={value:g}" if not isinstance(value, str) else f"{field}={value}"
       for field, value in CASES]


@pytest.fixture(scope="module")
def fitted(datasets):
    """The VAE with its default loss and score (squared error)."""
    return _fit_on_one_thread(datasets, "mse")


@pytest.fixture(scope="module")
def fitted_weights(datasets):
    """The VAE whose score weighs each dim's error (`error_floor`)."""
    return _fit_on_one_thread(datasets, "mse", error_floor=0.01)


@pytest.fixture(scope="module")
def fitted_bce(datasets):
    """The VAE with the Bernoulli (cross-entropy) reconstruction."""
    return _fit_on_one_thread(datasets, "bce")


def _fit_on_one_thread(datasets, reconstruction: str, error_floor: float | None = None):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrix products: waiting on a busy second core costs more
    try:
        return _fit(datasets, reconstruction, error_floor)
    finally:
        torch.set_num_threads(threads)


def _fit(datasets, reconstruction: str, error_floor: float | None = None):
    torch.manual_seed(0)
    events = DataCollector([DataSource("iot", "csv_file", {"path": str(datasets / CAPTURE)})],
                           progress=False).collect_table()
    events = events.filter(pc.equal(events["is_threat"], 0))
    events = events.take(np.random.default_rng(0).permutation(events.num_rows))
    train, val = events.slice(0, TRAIN), events.slice(TRAIN, VAL)
    layer = Layer1()
    layer.featurizer.fit(train)  # what training saw, as the pipeline fits it
    features = torch.from_numpy(layer.featurize(train).features)
    model = Layer1VAE(hidden_dim=96, latent_dim=32, dropout=0.0, reconstruction=reconstruction,
                      error_floor=error_floor)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):  # the model's own loss, a plain loop
        for rows in torch.randperm(TRAIN, generator=order).split(128):
            optimizer.zero_grad()
            model.training_step(features[rows]).backward()
            optimizer.step()
    model.eval()
    val_features = torch.from_numpy(layer.featurize(val).features)
    with torch.no_grad():
        model.fit_after_training([val_features])  # any error weights, as training fits them
        val_scores = model.anomaly_score(val_features).numpy()
    threshold = Calibration.fit(val_scores, np.zeros(VAL, np.int8), rule="quantile:0.99").threshold
    # The held-out events the model finds most typical: a change there is the only oddity.
    typical = np.sort(np.argsort(val_scores, kind="stable")[:N_EVENTS])
    return layer, model, train, val.take(typical), threshold


def _changed(held_out: pa.Table, field: str, value: object) -> pa.Table:
    column = pa.array([value] * held_out.num_rows, held_out.schema.field(field).type)
    return held_out.set_column(held_out.column_names.index(field), field, column)


def _scored(layer, model, events):
    units = layer.featurize(events)
    with torch.no_grad():
        scores = model.anomaly_score(torch.from_numpy(units.features)).numpy()
    return scores, layer.explain(model, units, np.arange(events.num_rows), events=events)


@pytest.mark.parametrize("field,value", CASES, ids=IDS)
def test_a_never_seen_value_is_the_first_reason(fitted, field, value):
    layer, model, train, held_out, _ = fitted
    assert value not in train[field].to_pylist()  # never seen in benign training
    before, _ = _scored(layer, model, held_out)
    scores, reasons = _scored(layer, model, _changed(held_out, field, value))
    assert [r[0].field for r in reasons] == [field] * held_out.num_rows
    assert all(r[0].observed == str(value) and r[0].typical != str(value) for r in reasons)
    for unit, score in zip(reasons, scores):
        assert abs(sum(reason.contribution for reason in unit) - score) <= 1e-5
        contributions = [reason.contribution for reason in unit]
        assert contributions == sorted(contributions, reverse=True)
    assert (scores > before).all()


# With the default plain sum of squared errors a middling volume costs at most about 1 per
# dim: these stay just under the 99th percentile. (A never-seen connection state or protocol
# did too, 1.90 to 2.01 against 2.18, until `l1.v5`'s never-seen dims: 2.9 to 3.0 now.) The
# error weights (`error_floor=0.01`) and the cross-entropy alert on all nine, but both were
# worse on the development captures than the default (BENCHMARKS.md: issue 21, and "Layer-1
# error weights").
MSE_MISSES = {"bytes_sent=1e+08", "packets_sent=100000"}
FIXTURES = {"mse": "fitted", "mse, error weights": "fitted_weights", "bce": "fitted_bce"}


@pytest.mark.parametrize("loss", list(FIXTURES))
@pytest.mark.parametrize("field,value", CASES, ids=IDS)
def test_a_never_seen_value_alerts(request, loss, field, value):
    case = IDS[CASES.index((field, value))]
    if loss == "mse" and case in MSE_MISSES:
        request.applymarker(pytest.mark.xfail(strict=True, reason="under the 99th percentile "
                                              "with the plain squared error (MSE_MISSES)"))
    layer, model, _, held_out, threshold = request.getfixturevalue(FIXTURES[loss])
    scores, _ = _scored(layer, model, _changed(held_out, field, value))
    print(f"{field}={value}: scores {np.round(scores, 2)}, threshold {threshold:.2f}")
    assert (scores >= threshold).all()


@pytest.mark.parametrize("field,value", CASES, ids=IDS)
def test_with_error_weights_a_never_seen_value_is_the_first_reason(fitted_weights, field,
                                                                   value):
    test_a_never_seen_value_is_the_first_reason(fitted_weights, field, value)


def test_every_dim_is_named_and_each_field_listed_once():
    assert len(DIM_NAMES) == len(set(DIM_NAMES)) == len(DIM_FIELDS) == 128
    assert sorted(set(DIM_FIELDS)) == sorted(FIELDS) and len(set(FIELDS)) == len(FIELDS)
    assert DIM_NAMES[12] == "protocol=tcp" and DIM_FIELDS[73] == "dest_port"
    # l1.v3's magnitude steps belong to their volume, its own dim first
    assert DIM_NAMES[53:55] == ("bytes_sent>1e+05", "bytes_sent>3.16e+07")
    assert DIM_NAMES[81:83] == ("duration>293", "duration>5.04e+03")
    assert list(field_dims()["bytes_sent"]) == [75, 53, 54]
    assert list(field_dims()["source_ip"]) == [49, 50, 51, 52]
    assert list(field_dims("l1.v2")["source_ip"]) == list(range(49, 57))
    # l1.v4's identity block: what training saw, per field and per pair
    assert DIM_NAMES[97:100] == ("command_line:present", "command_line:rarity",
                                 "command_line:never_seen")
    assert DIM_NAMES[106] == "parent_process>process:never_seen"
    assert list(field_dims()["parent_process>process"]) == [106]


def test_row_detectors_explain_with_their_own_terms_or_say_they_cannot(fitted):
    from training.detectors.rows import row_detector

    layer, _, train, held_out, _ = fitted
    units = layer.featurize(held_out)
    forest = row_detector("iforest")(input_dim=128, inputs="vector")
    with pytest.raises(NotSupportedError, match="no per-feature terms"):
        layer.explain(forest, units, np.arange(2), events=held_out)
    ecod = row_detector("ecod")(input_dim=128, inputs="vector")
    ecod.fit(layer.featurize(train).features)
    scores = ecod.anomaly_score(torch.from_numpy(units.features)).numpy()
    changed = _changed(held_out, "protocol", "icmp")
    reasons = layer.explain(ecod, layer.featurize(changed), np.arange(N_EVENTS), events=changed)
    assert [r[0].field for r in reasons] == ["protocol"] * N_EVENTS
    assert all(r[0].typical is None for r in reasons)  # ECOD has no reconstruction
    unchanged = layer.explain(ecod, units, np.arange(N_EVENTS), events=held_out)
    for unit, score in zip(unchanged, scores):
        assert abs(sum(r.contribution for r in unit) - score) <= 1e-4


def test_scored_alerts_carry_their_reasons(fitted, tmp_path):
    import pyarrow.parquet as pq

    from training.artifacts.model_files import save_model
    from training.registry.registry import ModelMetadata, ModelRegistry
    from training.scoring.batch import score_events

    layer, model, _, held_out, threshold = fitted
    save_model(model, tmp_path / "vae.pt", feature_spec=layer.spec, threshold=threshold)
    registry = ModelRegistry(tmp_path / "models")
    registry.register_model(tmp_path / "vae.pt", ModelMetadata("vae", "1.0.0", "layer1",
                                                               stage="production"))
    events = pa.concat_tables([held_out, _changed(held_out, "dest_port", 65000)])
    summary = score_events(registry, "vae", events, tmp_path / "out.parquet")
    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["is_alert"] for r in out] == [False] * N_EVENTS + [True] * N_EVENTS
    assert all(r["reasons"] is None for r in out[:N_EVENTS])
    _, expected = _scored(layer, model, events.slice(N_EVENTS))
    for row, unit in zip(out[N_EVENTS:], expected):
        assert [r["field"] for r in row["reasons"]] == [r.field for r in unit[:5]]
        assert row["reasons"][0]["observed"] == "65000"
        assert row["reasons"][0]["contribution"] == pytest.approx(unit[0].contribution, abs=1e-5)
    assert summary.top_alerts[0]["reasons"][0]["field"] == "dest_port"


def test_only_the_reasons_a_row_keeps_say_what_is_typical(fitted):
    # A row keeps an alert's first REASONS_KEPT reasons (`reasons_column`); writing what the
    # model expects of every other field was most of the time of explaining an alert.
    from training.layers.layer1_reasons import KL_FIELD
    from training.layers.layer1_typical import typical_texts
    from training.layers.reasons import REASONS_KEPT

    layer, model, _, held_out, _ = fitted
    events = pa.concat_tables([held_out, _changed(held_out, "conn_state", "RSTRH")])
    units = layer.featurize(events)
    scores, reasons = _scored(layer, model, events)
    x = torch.from_numpy(units.features)
    with torch.no_grad():
        expected, terms = model.reconstruct(x).numpy(), model.feature_terms(x).double().numpy()
    layout, kept = layer.data_spec.version, set()
    for i, (unit, score) in enumerate(zip(reasons, scores)):
        assert abs(sum(r.contribution for r in unit) - score) <= 1e-5  # every field still
        assert [r.typical for r in unit[REASONS_KEPT:]] == [None] * (len(unit) - REASONS_KEPT)
        for r in unit[:REASONS_KEPT]:  # each event's own text of each field it keeps
            if r.field != KL_FIELD:
                dims = field_dims(layout)[r.field]
                assert r.typical == typical_texts(r.field, units.features[i:i + 1, dims],
                                                  expected[i:i + 1, dims],
                                                  terms[i:i + 1, dims], False, layout)[0]
            kept.add(r.field)
    assert len(kept) > REASONS_KEPT  # the events keep different fields


def test_the_validation_report_names_layer1_dims(fitted, tmp_path):
    import json
    import re

    from training.cli.main import main

    layer, _, train, _, _ = fitted
    path = layer.featurize(train).save(tmp_path / "train.npz")
    main(["validate", "--data", str(path), "--report", str(tmp_path / "v")])
    report = (tmp_path / "v.json").read_text()
    assert not re.search(r"feature_\d", report) and "'protocol=icmp'" in report
    assert json.loads(report)["statistics"]["n_features"] == 128


def test_vectors_read_back_as_the_values_that_made_them():
    from datetime import datetime, timezone

    from training.collection.schema import CANONICAL_SCHEMA
    from training.features.layer1 import Layer1Featurizer
    from training.features.layer1_names import decode_rows

    row = {"timestamp": datetime(2026, 11, 20, 10, 5, tzinfo=timezone.utc), "event_type": "conn",
           "protocol": "tcp", "service": "ssl", "conn_state": "SF", "dest_port": 443,
           "source_port": None, "bytes_sent": 1000, "packets_sent": 12, "duration": 2.5,
           "source_ip": "10.0.0.5"}
    table = pa.Table.from_pylist([{k: row.get(k) for k in CANONICAL_SCHEMA.names}],
                                 schema=CANONICAL_SCHEMA)
    vector = Layer1Featurizer(layout="l1.v1").featurize(table)  # l1.v2 leaves the time at 0
    read = {f: decode_rows(f, vector[:, dims], layout="l1.v1")[0]
            for f, dims in field_dims("l1.v1").items()}
    assert {f: read[f] for f in ("event_type", "protocol", "service", "conn_state", "dest_port",
                                 "source_port", "source_ip", "timestamp", "user")} == {
        "event_type": "network", "protocol": "tcp", "service": "ssl", "conn_state": "SF",
        "dest_port": "443", "source_port": "-", "source_ip": "private",
        "timestamp": "10:05 UTC", "user": "-"}
    assert [float(read[f]) for f in ("bytes_sent", "packets_sent", "duration")] == \
        pytest.approx([1000, 12, 2.5], rel=1e-4)


def test_a_hashed_fields_typical_value_says_whether_it_is_this_one(fitted):
    # A domain's hash bucket named no value: the reconstruction used to read "set" beside an
    # observed "set", then "-". The conn events have no domain, so the model expects none
    # (`l1.v5` counts domains: the level of "absent" is given).
    layer, model, _, held_out, _ = fitted
    events = _changed(held_out, "domain", "c2.example.net")
    _, reasons = _scored(layer, model, events)
    domain = [next(r for r in unit if r.field == "domain") for unit in reasons]
    assert {r.observed for r in domain} == {"c2.example.net"}
    assert all(r.typical.startswith("no value expected (") for r in domain)
    units = layer.featurize(events)  # read back from the vectors, without the event table
    from_vectors = layer.explain(model, units, np.arange(events.num_rows))
    assert [next(r for r in unit if r.field == "domain").typical
            for unit in from_vectors] == [r.typical for r in domain]
    # l1.v3's hash buckets: a reconstruction in the event's own bucket, and in another one
    # (they read "this value" and "another value": training.tests.test_layer1_typical).
    from training.features.layer1 import Layer1Featurizer
    from training.layers.layer1_typical import typical_texts

    dims = field_dims("l1.v3")["domain"]
    observed = Layer1Featurizer(layout="l1.v3").featurize(events)[:2][:, dims]
    bucket = observed.argmax(1)
    expected = np.zeros_like(observed)
    expected[0, bucket[0]] = 0.9
    expected[1, (bucket[1] + 1) % len(dims)] = 0.9
    assert typical_texts("domain", observed, expected, (observed - expected) ** 2, False,
                         "l1.v3") == ["a value hashed like this one (90%)",
                                      "a value of another hash bucket (90%)"]


def test_an_extra_fields_reason_names_the_field_and_value_behind_it(fitted):
    # Extra fields share 16 hashed buckets, which name no field: the reason used to read
    # "extra fields set". It now names what fell in the bucket of largest error.
    layer, model, train, held_out, _ = fitted
    assert "ShAdDaTXYZ" not in train["history"].to_pylist()
    _, reasons = _scored(layer, model, _changed(held_out, "history", "ShAdDaTXYZ"))
    extra = [next(r for r in unit if r.field == "extra fields") for unit in reasons]
    assert all("history=ShAdDaTXYZ" in r.observed for r in extra)


def test_a_flood_of_alerts_explains_the_highest_scoring_of_each_batch(fitted):
    from training.scoring.alerts import MAX_EXPLAINED, AlertRows

    layer, model, train, _, _ = fitted
    units = layer.featurize(train)
    with torch.no_grad():
        scores = model.anomaly_score(torch.from_numpy(units.features)).numpy()
    rows = AlertRows(layer, model, threshold=float(scores.min()), calibration=None)
    batch = rows.rows(units, scores, train).to_pydict()
    explained = np.array([r is not None for r in batch["reasons"]])
    assert all(batch["is_alert"]) and explained.sum() == MAX_EXPLAINED < len(scores)
    assert scores[explained].min() >= scores[~explained].max()


def test_vectors_of_an_older_layout_are_explained_by_its_own_dims(fitted):
    from training.features.layer1 import Layer1Featurizer

    _, model, _, held_out, _ = fitted
    older = Layer1(Layer1Featurizer(layout="l1.v2"))  # as `Layer.from_spec` of an l1.v2 model
    units = older.featurize(held_out)
    reasons = older.explain(model, units, np.arange(N_EVENTS), events=held_out)
    with torch.no_grad():
        terms = model.feature_terms(torch.from_numpy(units.features)).double().numpy()
    for unit, row in zip(reasons, terms):
        by_field = {r.field: r.contribution for r in unit}
        assert set(by_field) == set(field_dims("l1.v2"))  # no l1.v4 pairs
        # l1.v2: the source address owns dims 49-56 and bytes sent dim 75 only
        assert by_field["source_ip"] == pytest.approx(row[49:57].sum(), abs=1e-6)
        assert by_field["bytes_sent"] == pytest.approx(row[75], abs=1e-6)
        assert sum(by_field.values()) == pytest.approx(row.sum(), abs=1e-5)
