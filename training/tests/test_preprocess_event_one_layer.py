"""`preprocess_event(event, layers=...)` given one layer, not a list of them (trial Q).

The original signature is `layers="all" | [LayerType]`; a notebook user writes
`layers=LayerType.LAYER1_SENSORY` (or "layer1") as often as `[LayerType.LAYER1_SENSORY]`.
`LayerType` is a str enum, so the single value was iterated character by character and refused
as "unknown layer 'l'". One layer now reads as a one-element list: its one sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.data_collection import DataCollector, DataSource, DataSourceType
from training.data_preprocessor import DataPreprocessor, LayerType
from training.errors import ConfigError


@pytest.fixture(scope="module")
def iot_events(datasets):
    path = datasets / "iot23" / "CTU-Honeypot-Capture-7-1-labeled.csv"
    collector = DataCollector([DataSource("iot", DataSourceType.CSV_FILE, {"path": path})],
                              progress=False)
    return [event.to_dict() for event in collector.collect(max_events=50)]


@pytest.mark.parametrize("one", [LayerType.LAYER1_SENSORY, "layer1", "layer1_sensory"])
def test_one_layer_not_in_a_list_is_that_layer(iot_events, tmp_path, one):
    preprocessor = DataPreprocessor(output_dir=tmp_path)
    expected = preprocessor.preprocess_event(iot_events[3], layers=[LayerType.LAYER1_SENSORY])
    sample = preprocessor.preprocess_event(iot_events[3], layers=one)
    assert sample.layer == expected.layer
    assert sample.sample_id == expected.sample_id
    assert np.array_equal(sample.features, expected.features)


def test_one_unknown_layer_is_named_whole(iot_events, tmp_path):
    with pytest.raises(ConfigError, match="'layer9'"):
        DataPreprocessor(output_dir=tmp_path).preprocess_event(iot_events[0], layers="layer9")
