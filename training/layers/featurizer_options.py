"""The featurizer options a run may set, per layer: kept apart from the layer classes so that
the command line can offer them as flags (`--<layer>-<option>`) without importing the layers
and torch. Each layer's `featurizer_options` is its entry here; the values are argparse keyword
arguments (type, default, choices, help), checked like model options in a pipeline TOML file.
"""

from __future__ import annotations

from typing import Any

from training.features.layer3 import ENTITIES

FEATURIZER_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    # Whose windows, and how long a bucket: host or user follow host telemetry (Windows
    # events), which has no addresses; the model's spec records both, so scoring follows.
    "layer3": {
        "entity": {"type": str, "default": "source_ip", "choices": tuple(ENTITIES),
                   "help": "whose windows: source_ip (default), dest_ip, host or user (host or "
                           "user for host telemetry without addresses, e.g. Windows events)"},
        "bucket_seconds": {"type": float, "default": 60.0,
                           "help": "seconds of one bucket, the step of the windows (default 60; "
                                   "shorter for recordings of minutes, e.g. 10)"},
    },
}
