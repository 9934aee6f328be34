"""`score_events` from Python given one source, or the registry as a folder (trial Q).

One `DataSource` (not in a list) failed with "'DataSource' object is not iterable", and the
registry's folder as text with "'str' object has no attribute 'load_model'". One source is now
scored as a list of one (the same rows), and a folder is refused naming `ModelRegistry`.
"""

from __future__ import annotations

import pytest

from training.data_collection import DataSource
from training.errors import ConfigError
from training.model_registry import ModelRegistry
from training.pipeline.config import PipelineConfig
from training.pipeline.run import run_pipeline
from training.scoring.batch import score_events
from training.scoring.tables import read_alerts


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory):
    work = tmp_path_factory.mktemp("score_args")
    source = DataSource("hp", "csv_file",
                        {"path": str(datasets / "iot23" / "CTU-Honeypot-Capture-4-1-labeled.csv")})
    run_pipeline(PipelineConfig(sources=(source,), workdir=work / "run", layers=("layer1",),
                                seed=2).with_training(epochs=1))
    return work, datasets / "iot23" / "CTU-Honeypot-Capture-7-1-labeled.csv"


def test_one_source_scores_as_a_list_of_one(trained):
    work, new = trained
    registry = ModelRegistry(work / "run" / "models")
    source = DataSource("new", "csv_file", {"path": str(new)})
    one = score_events(registry, "layer1_vae", source, work / "one.parquet")
    listed = score_events(registry, "layer1_vae", [source], work / "listed.parquet")
    assert one.units == listed.units == 130
    assert read_alerts(work / "one.parquet").equals(read_alerts(work / "listed.parquet"))


def test_a_registry_folder_is_refused_naming_model_registry(trained):
    work, new = trained
    with pytest.raises(ConfigError, match="ModelRegistry"):
        score_events(str(work / "run" / "models"), "layer1_vae",
                     [DataSource("new", "csv_file", {"path": str(new)})], work / "x.parquet")
    assert not (work / "x.parquet").exists()


def test_score_fused_takes_the_same_arguments(trained):
    """`score_fused` beside it (review): one source, and a folder refused the same way."""
    from training.scoring.fused import score_fused

    work, new = trained
    registry = ModelRegistry(work / "run" / "models")
    source = DataSource("new", "csv_file", {"path": str(new)})
    with pytest.raises(ConfigError, match="ModelRegistry"):
        score_fused(str(registry.registry_dir), source, work / "f.parquet")
    assert score_fused(registry, source, work / "f.parquet").units == 130
