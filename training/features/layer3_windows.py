"""The layer-3 output: windows of bucket aggregates, their targets, labels and provenance.

Saved as one .npz (no pickle, FeatureSpec inside) with the arrays under their own names, so
`np.load(path, allow_pickle=False)["X"]` is the (windows, T, F) history tensor. Text columns
are stored as UTF-8 bytes plus offsets (see `training.artifacts.npz`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from training.artifacts.npz import load_npz, save_npz
from training.errors import SchemaError
from training.features.encoding import FeatureSpec
from training.features.ragged import gather_ranges, offsets_of

ARRAYS = ("X", "target", "labels", "time", "event_ptr", "event_row")
STRINGS = ("entity", "attack_type", "event_id")


@dataclass
class Layer3Windows:
    """Windows built by `Layer3WindowBuilder` (or loaded from its .npz).

    Attributes:
        spec: the FeatureSpec that made them.
        X: (windows, T, F) float32; X[i, -1] is the bucket just before the target.
        target: (windows, F) float32, the aggregates of the target bucket (the forecast).
        labels: (windows,) int8, 1 threat, 0 benign, -1 unknown (from the target bucket).
        entity: (windows,) the entity of each window (Arrow strings).
        time: (windows,) datetime64[us], start of the target bucket (UTC).
        attack_type: (windows,) the target bucket's attack types, "|"-joined (Arrow strings).
        event_ptr: (windows + 1,) int64, window i's target events are event_row[event_ptr[i]:
            event_ptr[i + 1]].
        event_row: (events,) int64, rows of the table the windows were built from.
        event_id: (events,) those events' `event_id` (Arrow strings).
        stats: build statistics (events used, left out, windows, entities).
    """

    spec: FeatureSpec
    X: np.ndarray
    target: np.ndarray
    labels: np.ndarray
    entity: pa.Array
    time: np.ndarray
    attack_type: pa.Array
    event_ptr: np.ndarray
    event_row: np.ndarray
    event_id: pa.Array
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.X)
        lengths = (len(self.target), len(self.labels), len(self.entity), len(self.time),
                   len(self.attack_type), len(self.event_ptr) - 1)
        events = len(self.event_row)
        if (self.X.ndim != 3 or any(length != n for length in lengths)
                or self.event_ptr[-1] != events or len(self.event_id) != events):
            raise SchemaError("layer-3 arrays do not fit together (lengths differ); the file is "
                              "damaged or was not written by Layer3Windows.save")

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, indices: np.ndarray) -> Layer3Windows:
        """The windows at `indices` (in that order) with their events; spec and stats kept."""
        rows = np.asarray(indices, dtype=np.int64)
        starts, ends = self.event_ptr[rows], self.event_ptr[rows + 1]
        events = gather_ranges(starts, ends)
        return Layer3Windows(
            spec=self.spec, X=self.X[rows], target=self.target[rows], labels=self.labels[rows],
            entity=self.entity.take(pa.array(rows)), time=self.time[rows],
            attack_type=self.attack_type.take(pa.array(rows)),
            event_ptr=offsets_of(ends - starts, self.event_ptr.dtype),
            event_row=self.event_row[events], event_id=self.event_id.take(pa.array(events)),
            stats=dict(self.stats))

    def save(self, path: str | Path) -> Path:
        """Write every array to one .npz (no pickle, spec and statistics inside)."""
        return save_npz(path, {name: getattr(self, name) for name in ARRAYS}, self.spec,
                        self.stats, {name: getattr(self, name) for name in STRINGS})

    @classmethod
    def load(cls, path: str | Path, spec: FeatureSpec | None = None) -> Layer3Windows:
        """Read windows written by `save`.

        Args:
            path: the .npz file.
            spec: when given, the file must have been made with exactly this spec.

        Raises:
            SourceError: the file cannot be read.
            SchemaError: it holds no layer-3 windows, or they were made with another spec.
        """
        values, file_spec, stats = load_npz(path, "layer3", spec, ARRAYS, STRINGS)
        return cls(spec=file_spec, stats=stats, **values)
