"""Layer-1 vectors depend on the events, not on how they were read: a folder read into one
table or file by file, a log scored directly or after `collect` saved it as Parquet."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from training.collection.collector import DataCollector
from training.collection.event_dicts import events_table
from training.features.encoding import FeatureSpec
from training.features.layer1 import EXTRA, Layer1Featurizer
from training.features.layer1_extras import name_bucket
from training.sources import DataSource
from training.tests.conftest import collect

CAPTURE = "stratosphere/008-zeek-mixed/data"


def by_event(table: pa.Table) -> dict[str, np.ndarray]:
    vectors = Layer1Featurizer().featurize(table)
    return dict(zip(table["event_id"].to_pylist(), vectors))


def test_a_zeek_folder_read_as_one_table_or_file_by_file_gives_the_same_vectors(datasets):
    # sip.log declares request_body_len a string, http.log a count: in one table http's 277
    # becomes the text "277" (schema_union.concat_tables).
    folder = datasets / CAPTURE
    whole, _ = collect("zeek_logs", folder)
    assert pa.types.is_string(whole.schema.field("request_body_len").type)
    alone: dict[str, np.ndarray] = {}
    for log in sorted(folder.iterdir()):
        table, _ = collect("zeek_logs", log)
        alone.update(by_event(table))
    together = by_event(whole)
    assert len(together) == len(alone) == whole.num_rows
    differ = [e for e, v in together.items() if not np.array_equal(v, alone[e])]
    assert differ == []
    http = whole.filter(pa.compute.equal(whole["event_type"], "http"))
    assert http.num_rows > 300  # the events the fix is about are in the comparison


def test_collected_parquet_scores_as_the_log_it_was_collected_from(datasets, tmp_path):
    log = datasets / CAPTURE / "conn.log.labeled"
    direct, _ = collect("zeek_logs", log)
    collector = DataCollector([DataSource("test", "zeek_logs", {"path": str(log)})],
                              output_dir=tmp_path / "out", progress=False)
    events = collector.collect_to()  # what `maximus-train collect` writes
    saved, _ = collect("parquet_file", events)
    assert "raw.source" not in saved.column_names  # collect's bookkeeping is not a field
    assert saved["source"].to_pylist() == direct["source"].to_pylist()
    assert saved.num_rows == direct.num_rows == 5663
    before, after = by_event(direct), by_event(saved)
    assert all(np.array_equal(before[e], after[e]) for e in before)


def test_text_that_spells_a_number_is_encoded_as_that_number():
    featurizer = Layer1Featurizer()
    as_number = featurizer.featurize(events_table([{"event_type": "http", "request_body_len": 277}]))
    as_text = featurizer.featurize(events_table([{"event_type": "http", "request_body_len": "277"}]))
    assert np.array_equal(as_number, as_text)
    at = EXTRA + name_bucket("request_body_len")
    assert as_text[0, at] == np.float32(np.log1p(277) / np.log1p(1e9))
    flags = featurizer.featurize(events_table([{"event_type": "x", "ok": True},
                                               {"event_type": "x", "ok": "true"}]))
    assert np.array_equal(flags[0], flags[1])


def test_specs_written_before_numbers_in_text_keep_encoding_text_by_value():
    spec = Layer1Featurizer().spec
    config = {k: v for k, v in spec.config.items() if k != "numbers_in_text"}
    old = Layer1Featurizer.from_spec(FeatureSpec(spec.layer, spec.version, config, spec.fitted))
    assert old.numbers_in_text is False and old.spec.config == config
    text = old.featurize(events_table([{"event_type": "http", "request_body_len": "277"}]))
    assert text[0, EXTRA + name_bucket("request_body_len")] in (0.0, 1.0)  # hashed, not scaled
    assert text[0, EXTRA:].sum() == 1.0
