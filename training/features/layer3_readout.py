"""Layer-3 bucket features back in their real units, for the TCN's reasons.

Each feature of `training.features.layer3` (its module docstring has the table) with the
inverse of its data-free transform: counts (events, peers, dest_ports, alerts), bytes and
packets as integers, `duration_mean` in seconds, `failure_ratio` and `severity_max` as they are.
A change of a feature's transform there is a change here.
"""

from __future__ import annotations

from training.features.encoding import FeatureSpec
from training.features.layer3 import CAPS
from training.features.readout import Dim, LogCount, LogSeconds, Readout, Share
from training.features.scaling import scaling_of

DIMS: dict[str, Dim] = {
    "events": LogCount(CAPS["count"]),
    "bytes_sent": LogCount(CAPS["bytes"]),
    "bytes_received": LogCount(CAPS["bytes"]),
    "packets_sent": LogCount(CAPS["packets"]),
    "packets_received": LogCount(CAPS["packets"]),
    "peers": LogCount(CAPS["peers"]),
    "dest_ports": LogCount(CAPS["ports"]),
    "failure_ratio": Share(),
    "alerts": LogCount(CAPS["count"]),
    "severity_max": Share(),
    "duration_mean": LogSeconds(CAPS["duration"]),
}


def bucket_readout(spec: FeatureSpec) -> Readout:
    """The readout of a layer-3 model's terms (one per bucket feature, the spec's order), with
    the bucket standardizer of the model spec `spec`.

    Raises:
        SchemaError: `spec` has no fitted scaling (a data file's spec, not a model's).
    """
    features = spec.config["features"]
    scaler = scaling_of(spec, {"bucket": len(features)})["bucket"]
    return Readout(tuple(DIMS[name] for name in features), scaler.mean, scaler.std)
