"""Layer 3 under live scoring: each entity's recent buckets, carried from one scoring to the next.

A layer-3 window is an entity's target bucket and the T buckets before it. Live scoring
featurizes only the buckets that have just closed, so the histories it builds alone lack
the buckets closed earlier. `BucketHistory` keeps the aggregates of every closed bucket of
the last T and writes them into those histories: the windows come out as the batch path
builds them from the whole log (the aggregates of a bucket depend on its own events only).

    history = layer.carried_history()
    units = history.fill(layer.featurize(closed_events))   # histories completed
    history.add(units); history.forget_before(first_open_bucket)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.features.layer3_windows import Layer3Windows
from training.features.traffic import check_period


class BucketHistory:
    """The bucket aggregates of closed buckets, per entity (see the module docstring).

    Args:
        steps: T, the buckets of history in a window.
        bucket_seconds: the bucket length.
    """

    def __init__(self, steps: int, bucket_seconds: float) -> None:
        self.steps = steps
        self.bucket_us = check_period("bucket_seconds", bucket_seconds)
        self.entity = pa.array([], pa.string())
        self.bucket = np.zeros(0, np.int64)
        self.features: np.ndarray | None = None  # (buckets, F) float32

    def __len__(self) -> int:
        return len(self.bucket)

    def buckets_of(self, units: Layer3Windows) -> np.ndarray:
        """The bucket number (time // bucket) of each window's target."""
        return units.time.astype("datetime64[us]").astype(np.int64) // self.bucket_us

    def fill(self, units: Layer3Windows) -> Layer3Windows:
        """`units` with the carried buckets written into their histories (slots the units'
        own events left empty: the carried buckets closed before any of theirs)."""
        if not len(self) or not len(units):
            return units
        codes = pc.dictionary_encode(pa.concat_arrays(
            [self.entity, units.entity.cast(pa.string())])).indices.to_numpy().astype(np.int64)
        buckets = np.concatenate([self.bucket, self.buckets_of(units)])
        low, span = buckets.min() - self.steps, np.ptp(buckets) + self.steps + 1
        keys = codes * span + (buckets - low)
        carried, wanted = keys[:len(self)], keys[len(self):]
        order = np.argsort(carried)
        carried = carried[order]
        x = units.X.copy()
        for lag in range(1, self.steps + 1):
            at = np.searchsorted(carried, wanted - lag)
            found = np.flatnonzero(carried[np.minimum(at, len(carried) - 1)] == wanted - lag)
            x[found, self.steps - lag] = self.features[order[at[found]]]
        return replace(units, X=x)

    def add(self, units: Layer3Windows) -> None:
        """Carry the target buckets of `units` (just closed) into later windows."""
        if not len(units):
            return
        self.entity = pa.concat_arrays([self.entity, units.entity.cast(pa.string())])
        self.bucket = np.concatenate([self.bucket, self.buckets_of(units)])
        self.features = (units.target.copy() if self.features is None else
                         np.concatenate([self.features, units.target]))

    def forget_before(self, first_open: int) -> None:
        """Drop what the windows of bucket `first_open` and later never look back to."""
        keep = self.bucket >= first_open - self.steps
        if keep.all():
            return
        self.entity = self.entity.filter(pa.array(keep))
        self.bucket = self.bucket[keep]
        self.features = self.features[keep]

    # -- persistence ------------------------------------------------------------------------

    def to_table(self) -> pa.Table:
        width = 0 if self.features is None else self.features.shape[1]
        values = (np.zeros(0, np.float32) if self.features is None
                  else self.features.astype(np.float32).reshape(-1))
        offsets = pa.array(np.arange(len(self) + 1, dtype=np.int32) * width)
        return pa.table({"entity": self.entity, "bucket": pa.array(self.bucket, pa.int64()),
                         "features": pa.ListArray.from_arrays(offsets, pa.array(values))})

    def load_table(self, table: pa.Table) -> None:
        """Take the buckets of a table `to_table` wrote."""
        self.entity = table["entity"].combine_chunks().cast(pa.string())
        self.bucket = table["bucket"].to_numpy().astype(np.int64)
        flat = pc.list_flatten(table["features"]).to_numpy().astype(np.float32)
        self.features = flat.reshape(len(self.bucket), -1) if len(self.bucket) else None
