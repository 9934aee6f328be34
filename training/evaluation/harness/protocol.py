"""What a capture of the harness is, and the cuts every protocol makes (`captures`, `own`):
detectors fit on benign rows only (is_threat 0; Background/unknown is never benign), the last
`VAL_FRACTION` of each fitting source by time held out for validation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema_union import concat_tables

VAL_FRACTION = 0.2
ALL_LAYERS = ("layer1", "layer2", "layer3")


@dataclass(frozen=True)
class Capture:
    """One protocol's event tables (canonical schema).

    Attributes:
        name, role ("development" or "evaluation"), description: see the module table.
        train: benign rows the detectors learn from; val: benign rows held out (later in time).
        test: every row scored; labels are used only to measure.
        layers: the layers whose units these events have.
        subsets: name -> mask over the test rows, each also reported on its own.
    """

    name: str
    role: str
    description: str
    train: pa.Table
    val: pa.Table
    test: pa.Table
    layers: tuple[str, ...] = ALL_LAYERS
    subsets: dict[str, np.ndarray] = field(default_factory=dict)


def benign(table: pa.Table) -> pa.Table:
    return table.filter(pc.equal(table["is_threat"], 0))


def time_split(tables: list[pa.Table], fraction: float = VAL_FRACTION) -> tuple[pa.Table, pa.Table]:
    """Each table cut at its own (1 - fraction) time quantile: (earlier parts, later parts)."""
    early, late = [], []
    for table in tables:
        micros = table["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False)
        cut = np.quantile(micros, 1 - fraction)
        early.append(table.filter(pa.array(micros < cut)))
        late.append(table.filter(pa.array(micros >= cut)))
    return concat_tables(early), concat_tables(late)
