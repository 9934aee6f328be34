"""A layer as a run configures it: its featurizer's options, and the fields left out.

    layer = configured_layer("layer3", options={"entity": "host"}, drop_fields=["direction"])

The options are the layer's `featurizer_options` (`[train.<layer>]` keys and `--<layer>-<name>`
flags); the dropped fields (`drop_fields`, `--drop-field`) wrap its featurizer in
`training.features.dropped_fields.WithoutFields`. Both end up in the layer's FeatureSpec, so
the model trained on its units scores new events the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from training.errors import ConfigError
from training.features.dropped_fields import WithoutFields
from training.layers.base import Layer
from training.layers.registry import get_layer


def configured_layer(name: str, *, alert_labels: bool = False,
                     options: Mapping[str, Any] | None = None,
                     drop_fields: Iterable[str] = ()) -> Layer:
    """The layer `name` with its default featurizer set by `options`, for events whose labels
    come from alert events or not (`Layer.for_labels`), without `drop_fields`.

    Raises:
        ConfigError: an option the layer's featurizer does not take (the valid ones listed),
            a value its featurizer refuses, or a field that cannot be dropped.
    """
    cls = get_layer(name)
    options = dict(options or {})
    unknown = sorted(set(options) - set(cls.featurizer_options))
    if unknown:
        valid = ", ".join(cls.featurizer_options) or "none"
        raise ConfigError(f"{cls.name}'s featurizer takes no {', '.join(unknown)} (its "
                          f"options: {valid})")
    layer = cls.for_labels(alert_labels=alert_labels, **options)
    drop_fields = tuple(drop_fields)
    return cls(WithoutFields(layer.featurizer, fields=drop_fields)) if drop_fields else layer
