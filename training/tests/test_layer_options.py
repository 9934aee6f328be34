"""A layer's featurizer options from a run (`training.layers.configured`,
`training.layers.featurizer_options`): `[train.layer3] entity` and `--layer3-entity` reach layer
3's windows, the model records them, and Windows events, which have no addresses, train layer 3
on their hosts."""

from __future__ import annotations

import pytest

from training.errors import ConfigError
from training.pipeline.config import config_from_dict

SOURCES = [{"type": "json", "path": "events.json"}]


def test_the_entity_and_bucket_are_featurizer_options_of_layer3_in_toml():
    config = config_from_dict({"sources": SOURCES, "layers": ["layer1", "layer3"], "train": {
        "layer3": {"entity": "host", "bucket_seconds": 10, "channels": [8, 8]}}})
    assert config.train["layer3"].features == {"entity": "host", "bucket_seconds": 10}
    assert config.train["layer3"].model == {"channels": [8, 8]}  # model arguments stay apart
    assert config.train["layer1"].features == {}
    with pytest.raises(ConfigError, match=r"config \[train.layer3\]: entity must be one of "
                                          r"source_ip, dest_ip, host, user, got 'mac'"):
        config_from_dict({"sources": SOURCES, "train": {"layer3": {"entity": "mac"}}})
    with pytest.raises(ConfigError, match=r"config \[train.layer1\]: unknown key\(s\) entity"):
        config_from_dict({"sources": SOURCES, "train": {"layer1": {"entity": "host"}}})


def test_the_flags_set_the_entity_and_the_dropped_fields(tmp_path):
    from training.cli.main import build_parser
    from training.cli.pipeline import _pipeline_config

    args = build_parser().parse_args([
        "pipeline", "--source", "json:events.json", "--layer3-entity", "user",
        "--drop-field", "local_orig,direction", "--drop-field", "local_resp"])
    config = _pipeline_config(args, "run")
    assert config.train["layer3"].features == {"entity": "user"}
    assert config.drop_fields == ("direction", "local_orig", "local_resp")


def test_windows_events_train_layer3_on_their_hosts(datasets, tmp_path):
    from training.layers.registry import layer_for_spec
    from training.pipeline.run import run_pipeline
    from training.registry.registry import ModelRegistry
    from training.tests.conftest import collect

    folder = datasets / "windows_otrf_security_datasets"
    config = config_from_dict({
        "workdir": tmp_path, "layers": ["layer3"],
        "sources": [{"type": "windows", "path": str(folder)}],
        "train": {"epochs": 1, "layer3": {"entity": "host", "bucket_seconds": 10}}})
    (outcome,) = run_pipeline(config).layers
    # trained and registered; its validation part is too few windows for a threshold, so the
    # model is not promoted (test_promotion.py)
    assert outcome.skipped is None and outcome.stage == "none"
    model = ModelRegistry(tmp_path / "models", create=False).load_model("layer3_tcn",
                                                                         outcome.version)
    assert (model.feature_spec.config["entity"], model.feature_spec.config["bucket_seconds"]
            ) == ("host", 10.0)
    # scoring rebuilds the same windows from the model alone: one per active host and 10 s
    events = collect("windows", folder)[0]
    windows = layer_for_spec(model.feature_spec).featurize(events)
    micros = events["timestamp"].cast("int64").to_numpy(zero_copy_only=False)
    active = set(zip(events["host"].to_pylist(), (micros // 10_000_000).tolist()))
    assert len(windows.labels) == len(active) >= 20  # the 20 layer 3 needs
    assert set(windows.entity.to_pylist()) == set(events["host"].to_pylist())
