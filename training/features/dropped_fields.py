"""Fields left out of the features: an event-table transform, and a featurizer wrapper that
records it in the FeatureSpec.

`without_fields(table, names)` is what every layer sees instead of the events: a canonical
field is set to null (the featurizers read the canonical schema), any other field is removed.
It is the path `training.evaluation.harness.blind` takes for Zeek's `direction`,
`local_orig` and `local_resp`, and the one `--drop-field` / `drop_fields` take (a field that
gives the labels away, e.g. `direction` on the Stratosphere captures, where every threat
comes in from the internet).

`WithoutFields(featurizer, fields=...)` featurizes `without_fields(table, fields)` with the
wrapped featurizer, and its spec is the wrapped one's with `dropped_fields` added to the
config. So the model trained on such units carries the drop, and `featurizer_from_spec`
rebuilds it for scoring: `score` leaves out the same fields without being told. A spec
without the key is the wrapped featurizer's own, unchanged (its fingerprint too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from training.collection.schema import CANONICAL_FIELDS, LABEL_SOURCE_FIELDS, is_label_field
from training.errors import ConfigError
from training.features.encoding import FeatureSpec

DROPPED_KEY = "dropped_fields"  # where a spec's config lists them
KEPT = ("timestamp", "event_id")  # every layer needs them to split and map units back


def check_dropped(names: Iterable[str]) -> tuple[str, ...]:
    """The field names to drop, sorted and without repeats.

    Raises:
        ConfigError: an empty name, a label field (never a feature), or one of `KEPT`.
    """
    if isinstance(names, str):
        names = [names]
    checked = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"drop_fields must name fields, got {name!r}")
        name = name.strip()
        if name in KEPT:
            raise ConfigError(f"drop_fields cannot drop {name}: every layer needs it to split "
                              "and to map its units back to the events")
        if is_label_field(name, LABEL_SOURCE_FIELDS):
            raise ConfigError(f"drop_fields cannot drop {name}: it is a label, which no layer "
                              "reads as a feature")
        checked.add(name)
    return tuple(sorted(checked))


def without_fields(table: pa.Table, names: Iterable[str]) -> pa.Table:
    """`table` with the canonical fields of `names` null and the others removed; a name the
    table does not have is ignored. The input is not changed."""
    for name in names:
        if name not in table.column_names:
            continue
        if name in CANONICAL_FIELDS:
            at = table.column_names.index(name)
            table = table.set_column(at, name, pa.nulls(table.num_rows,
                                                        table.schema.field(name).type))
        else:
            table = table.drop_columns([name])
    return table


class WithoutFields:
    """A featurizer that featurizes the events without `fields` (see the module docstring).

    Args:
        featurizer: the layer's featurizer (its other attributes read through this one).
        fields: the field names to leave out (`check_dropped`).

    Raises:
        ConfigError: no field, or a name `check_dropped` refuses.
    """

    def __init__(self, featurizer: Any, *, fields: Iterable[str]) -> None:
        self.featurizer = featurizer
        self.fields = check_dropped(fields)
        if not self.fields:
            raise ConfigError("WithoutFields needs at least one field to drop")

    def __getattr__(self, name: str) -> Any:
        # Only called for what this class does not define: the wrapped featurizer's settings
        # (bucket_seconds, label_fields, ...). `featurizer` itself is set in __init__.
        if name == "featurizer":
            raise AttributeError(name)
        return getattr(self.featurizer, name)

    @property
    def spec(self) -> FeatureSpec:
        inner = self.featurizer.spec
        return FeatureSpec(inner.layer, inner.version,
                           {**inner.config, DROPPED_KEY: list(self.fields)}, inner.fitted)

    def fit(self, table: pa.Table) -> WithoutFields:
        """Fit the wrapped featurizer on the events without the fields; returns self."""
        self.featurizer.fit(without_fields(table, self.fields))
        return self

    def featurize(self, table: pa.Table) -> Any:
        """The wrapped featurizer's output on `table` without the fields; units that carry a
        spec carry this one."""
        units = self.featurizer.featurize(without_fields(table, self.fields))
        if not hasattr(units, "spec"):
            return units  # an array: its layer attaches `spec`
        if dataclasses.is_dataclass(units):
            return dataclasses.replace(units, spec=self.spec)
        units.spec = self.spec  # made just now by the call above: no one else holds it
        return units


def featurizer_from_spec(cls: type, spec: FeatureSpec) -> Any:
    """The featurizer a spec describes: `cls.from_spec(spec)`, wrapped in `WithoutFields`
    when the spec lists dropped fields.

    Raises:
        SchemaError: as `cls.from_spec`.
    """
    dropped = spec.config.get(DROPPED_KEY)
    if not dropped:
        return cls.from_spec(spec)
    config = {k: v for k, v in spec.config.items() if k != DROPPED_KEY}
    inner = cls.from_spec(FeatureSpec(spec.layer, spec.version, config, spec.fitted))
    return WithoutFields(inner, fields=dropped)
