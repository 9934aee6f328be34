"""The run's split: one set of cut times for every layer, and each layer's parts.

A temporal split cuts the events once (`event_cut_times`), on boundaries of the training
layers' windows, and every layer's units at those times (`layer_parts`), so that an event and
its edge and windows are in one part: the fused detector's validation events are then
validation units in every layer. A layer whose units cannot be cut there, or that its own
shares train on twice as many units (events bunched in a few windows), is cut by its shares,
with a note.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.datasets.strategies import Ratios
from training.datasets.temporal import cut_times, temporal_split
from training.errors import ConfigError, TooFewError
from training.layers.base import Layer
from training.pipeline.config import SplitConfig

logger = logging.getLogger(__name__)


def event_cut_times(events: pa.Table, strategy: str, split: SplitConfig, test_sources: bool,
                    windows: Sequence[float | None], notes: list[str]
                    ) -> tuple[object, object] | None:
    """When a temporal split cuts the events (by the run's shares, or its grace period): the
    times every layer's units are cut at, so that an event's units are in one part in every
    layer (the fused detector's validation and test events need it). None otherwise.

    The cuts fall on boundaries of every window in `windows` (seconds; the layers' windows and
    buckets start at multiples of their length since the epoch), so no unit straddles one: the
    events are split as if each took the start of the window of their least common multiple.
    A note says when that moves the parts' shares by more than 5 points (events bunched in a
    few windows), moves a grace period's end, or leaves too few windows to cut at.
    """
    if strategy != "temporal":
        return None
    ratios = Ratios(*_shares(split, test_sources))
    times = events["timestamp"].cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
    times = times.astype("datetime64[us]")
    spans = [round(w * 1e6) for w in windows if w]
    step = np.timedelta64(int(np.lcm.reduce(np.asarray(spans, np.int64))) if spans else 1, "us")
    seconds = step / np.timedelta64(1, "s")
    starts = times - (times - np.datetime64(0, "us")) % step
    try:
        parts = temporal_split(starts, ratios, train_until=split.grace)
    except TooFewError as exc:
        if spans:  # else each layer's own split fails too, and says so in its own words
            _note(notes, f"the events cannot be cut on boundaries of {seconds:g}-second windows "
                  f"({exc}): each layer is cut by its own shares, and the fused threshold "
                  "rests on the events that are validation units in every layer")
        return None
    except ConfigError:  # the grace period ends in the last window, or outside the events
        try:  # outside them: the error names the events' own span
            temporal_split(times, ratios, train_until=split.grace)
        except TooFewError:
            pass
        last = starts.max().astype("datetime64[s]")
        raise ConfigError(f"train_until {split.train_until} falls inside the events' last "
                          f"{seconds:g}-second window (from {last}Z): no unit would be left to "
                          "test; choose an earlier time") from None
    grace = split.grace
    if isinstance(grace, np.datetime64) and (grace - np.datetime64(0, "us")) % step:
        ends = (grace - (grace - np.datetime64(0, "us")) % step + step).astype("datetime64[s]")
        _note(notes, f"train_until {split.train_until} falls inside a {seconds:g}-second window: "
              f"every layer's test part starts where that window ends, {ends}Z")
    sizes = [len(parts[name]) for name in ("train", "val", "test")]
    if split.grace is None and any(abs(n / len(times) - r) > 0.05
                                   for n, r in zip(sizes, ratios.values)):
        _note(notes, "the events bunch at few times, so the split, cut where no unit straddles "
              f"it, holds {' / '.join(f'{n:,}' for n in sizes)} events (asked "
              f"{' / '.join(f'{r:.0%}' for r in ratios.values)})")
    _unseen_types_note(events, parts, notes)
    return cut_times(starts, parts)


def _unseen_types_note(events: pa.Table, parts: dict[str, np.ndarray], notes: list[str]) -> None:
    """A note when more than 5% of the test events are of event types the validation part has
    none of: every threshold is set on validation scores, so those alert more than it promises
    (a folder of captures from different days, each its own mix of logs)."""
    types = events["event_type"]
    seen = pc.unique(types.take(pa.array(parts["val"], pa.int64())))
    test = types.take(pa.array(parts["test"], pa.int64()))
    unseen = pc.value_counts(test.filter(pc.invert(pc.is_in(test, value_set=seen))))
    counts = unseen.field("counts").to_numpy(zero_copy_only=False)
    count = int(counts.sum())
    if count <= 0.05 * len(test):
        return
    order = np.argsort(-counts, kind="stable")  # most first; ties in order of appearance
    names = unseen.field("values").to_pylist()
    listed = ", ".join(f"{names[i]} {counts[i]:,}" for i in order)
    _note(notes, f"{count:,} of the {len(test):,} test events are of event types no validation "
          f"event has ({listed}): the thresholds are set on validation scores, so expect those "
          "to alert more than they promise; a larger val_ratio, or sources that hold them "
          "before the test time, cover them")


def _shares(split: SplitConfig, test_sources: bool) -> tuple[float, float, float]:
    """The split's shares, or with test sources (the test part) train and val's alone."""
    train, val, test = split.ratios
    return (train / (train + val), val / (train + val), 0.0) if test_sources else (train, val, test)


def _note(notes: list[str], note: str) -> None:
    notes.append(note)
    logger.info(note)


def layer_parts(layer: Layer, units: Any, test: Any, split: SplitConfig, strategy: str,
                seed: int, cuts: tuple[object, object] | None) -> tuple[dict[str, Any], list[str]]:
    """train/val/test of the layer's units (test: the test sources' units when given), cut at
    `cuts` (`event_cut_times`), or by the shares alone when the units cannot be cut there or
    the shares train on at least twice as many units; and the notes to show."""
    notes: list[str] = []
    ratios = _shares(split, test is not None)
    grace = {"train_until": split.grace} if split.grace is not None else {}
    parts = None
    if cuts is not None:
        parts, why = _cut_where_the_events_are(layer, units, strategy, ratios, seed, grace, cuts)
        if why:
            notes.append(f"the {layer.unit}s are cut by the shares alone ({why}); the fused "
                         "detector's threshold then rests on fewer validation events")
    if parts is None:
        parts = layer.split(units, strategy, ratios, seed, **grace)
    if test is None:
        return parts, notes
    left = len(layer.labels(parts["test"]))
    if left:
        notes.append(f"{left:,} {layer.unit}s after train_until {split.train_until} are not "
                     "used: the test sources are the test part")
    parts["test"] = test
    return parts, notes


def _cut_where_the_events_are(layer: Layer, units: Any, strategy: str,
                              ratios: tuple[float, float, float], seed: int,
                              grace: dict[str, Any], cuts: tuple[object, object]
                              ) -> tuple[Any, str]:
    """The parts cut at `cuts` and "", or the parts to use instead (None: cut by the shares)
    and why: the units cannot be cut there, or the shares train on twice as many."""
    try:
        parts = layer.split(units, strategy, ratios, seed, at=cuts)
    except TooFewError as exc:
        return None, f"they cannot be cut where the events are: {exc}"
    kept = len(layer.labels(parts["train"]))
    if kept >= 0.5 * ratios[0] * len(layer.labels(units)):  # the shares cannot double it
        return parts, ""
    try:
        by_share = layer.split(units, strategy, ratios, seed, **grace)
    except TooFewError:
        return parts, ""
    more = len(layer.labels(by_share["train"]))
    if more < 2 * kept:
        return parts, ""
    return by_share, f"{kept:,} to train on where the events are cut, {more:,} by the shares"


def refitted_units(layer: Layer, events: pa.Table | None, test_events: pa.Table | None,
                   train: Any, benign_only: bool | None, keep_unknown: bool
                   ) -> tuple[Any, Any] | None:
    """For a layer whose featurizer learns from the training events (layer 1's `l1.v4` and
    `l1.v5`: how often each identity value occurs), the units and test units featurized again after
    fitting it on the events of `train` the model learns from (`Layer.learnt_mask`; with
    `keep_unknown`, unknown units count as benign, as training takes them); None for the
    others, whose transform needs nothing fitted before the split."""
    if events is None or not getattr(layer.featurizer, "learns_from_events", False):
        return None
    labels = layer.labels(train)
    if keep_unknown:
        labels = np.where(labels < 0, 0, labels)
    ids = layer.unit_columns(train)["unit"].filter(pa.array(layer.learnt_mask(labels,
                                                                              benign_only)))
    layer.featurizer.fit(events.filter(pc.is_in(events["event_id"], value_set=ids)))
    return layer.featurize(events), None if test_events is None else layer.featurize(test_events)
