"""`read_alerts` of a fused score keeps its `tail_<layer>` columns (trial Q).

`score --model fused` (`training.scoring.fused.score_fused`) writes one row per event with a
`tail_<layer>` column per layer, its tail probability there (README, "One fused score per
event"). `read_alerts`, the documented way to read a score file back from Python, selected the
fixed alerts schema and dropped them: the per-layer evidence was lost to a notebook user. They
now follow the schema's columns, from Parquet and JSON Lines alike; a layer's own score file
reads as before. And `score_events(registry, "fused", ...)`, which the command line's `score
--model fused` suggests, answered "no model named 'fused'": it now names `score_fused`.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from training.data_collection import DataSource
from training.errors import ConfigError
from training.model_registry import ModelRegistry
from training.pipeline.config import PipelineConfig
from training.pipeline.run import run_pipeline
from training.scoring.alerts import OUTPUT_SCHEMA
from training.scoring.batch import score_events
from training.scoring.fused import score_fused
from training.scoring.tables import read_alerts

TAILS = ["tail_layer1", "tail_layer2", "tail_layer3"]


@pytest.fixture(scope="module")
def scored(datasets, tmp_path_factory):
    work = tmp_path_factory.mktemp("fused")
    train = DataSource("eve", "suricata",
                       {"path": str(datasets / "suricata" / "slips_test6-malicious.suricata.json")})
    run_pipeline(PipelineConfig(sources=(train,), workdir=work / "run", seed=1)
                 .with_training(epochs=1))
    registry = ModelRegistry(work / "run" / "models")
    new = [DataSource("new", "suricata",
                      {"path": str(datasets / "suricata" / "magnc_server_eve.json")})]
    for suffix in ("parquet", "jsonl"):
        score_fused(registry, new, work / f"fused.{suffix}")
    score_events(registry, "layer1_vae", new, work / "layer1.parquet")
    return work


def test_fused_parquet_keeps_tails(scored):
    written = pq.read_table(scored / "fused.parquet")
    table = read_alerts(scored / "fused.parquet")
    assert table.column_names == OUTPUT_SCHEMA.names + TAILS
    for name in TAILS:
        assert table[name].to_pylist() == written[name].to_pylist()
    alerts = read_alerts(scored / "fused.parquet", alerts_only=True)
    assert alerts.column_names[-3:] == TAILS
    assert alerts.num_rows == sum(written["is_alert"].to_pylist())


def test_fused_jsonl_reads_as_parquet(scored):
    from_jsonl = read_alerts(scored / "fused.jsonl")
    from_parquet = read_alerts(scored / "fused.parquet")
    assert from_jsonl.column_names == from_parquet.column_names
    for name in ["unit", "score", *TAILS]:
        assert from_jsonl[name].to_pylist() == pytest.approx(from_parquet[name].to_pylist()) \
            if name != "unit" else from_jsonl[name].to_pylist() == from_parquet[name].to_pylist()


def test_a_layer_score_file_is_unchanged(scored):
    assert read_alerts(scored / "layer1.parquet").column_names == OUTPUT_SCHEMA.names


def test_score_events_of_fused_names_score_fused(scored, datasets):
    registry = ModelRegistry(scored / "run" / "models")
    new = [DataSource("new", "suricata",
                      {"path": str(datasets / "suricata" / "magnc_server_eve.json")})]
    with pytest.raises(ConfigError, match="score_fused"):
        score_events(registry, "fused", new, scored / "by_name.parquet")
    assert not (scored / "by_name.parquet").exists()
