"""The time span of the data a model was trained and validated on, and the evaluated units
that fall within it.

A model scored on the events it learnt from scores them as it was taught to: an evaluation of
a capture that holds its own training part mixes those figures with the ones on new data, and
reads better than the model is. The trainer records in the sidecar (`data_span`) the first and
last time its training part's units cover, and its validation part's (a window or bucket unit
covers its whole span: its time is its start, and the last one reaches to its end):

    {"train": {"first": "2013-08-20T10:01:02.000003Z", "last": "..."}, "val": {...}}

(UTC, to the microsecond; a part whose units have no time, as NSL-KDD's, is left out, and a
model trained on such data records nothing). An evaluation counts the units within [the first
time, the last time] of all parts (`DataSpan.overlap`) and says so (`note_overlap`): it does
not leave them out, the reader decides. Models saved before this record nothing and evaluate
as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.errors import SchemaError

logger = logging.getLogger(__name__)

PARTS = ("train", "val")
_UNIT = "us"
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


def iso(time: np.datetime64) -> str:
    """`time` (datetime64, UTC) as "2013-08-20T10:01:02Z", with its microseconds when it has
    any ("...T10:01:02.000003Z")."""
    text = np.datetime_as_string(np.datetime64(time, _UNIT), unit=_UNIT)
    return (text[:-7] if text.endswith(".000000") else text) + "Z"


def _parse(text: Any, where: str) -> np.datetime64:
    if not isinstance(text, str) or not text.endswith("Z") or not text[:1].isdigit():
        raise SchemaError(f"{where} must be a UTC time as text (\"2013-08-20T10:01:02Z\"), "
                          f"got {text!r}")
    # Only what `iso` writes: numpy would read "99999999999-01-01" (wrapping the year) and
    # "...+05:00" (with a warning).
    if not _ISO.fullmatch(text):
        raise SchemaError(f"{where} is not a time: {text!r}")
    try:
        time = np.datetime64(text[:-1], _UNIT)
    except ValueError:
        raise SchemaError(f"{where} is not a time: {text!r}") from None
    if np.isnat(time):
        raise SchemaError(f"{where} is not a time: {text!r}")
    return time


@dataclass(frozen=True)
class DataSpan:
    """The first and last unit time (datetime64[us], UTC) of each part a model was trained
    and validated on ("train", "val"); only parts whose units have times."""

    parts: Mapping[str, tuple[np.datetime64, np.datetime64]]

    @classmethod
    def of(cls, times: Mapping[str, np.ndarray | None],
           duration_s: float | None = None) -> DataSpan | None:
        """The span of each part's unit times (datetime64, NaT where unknown; None: no such
        part), each unit covering `duration_s` from its time (a window, a bucket: its time is
        its start; None: an instant); None when no part has a time."""
        parts = {}
        for name, when in times.items():
            known = () if when is None else when[~np.isnat(when)].astype(f"datetime64[{_UNIT}]")
            if len(known):
                parts[name] = (known.min(), known.max() + _reach(duration_s))
        return cls(parts) if parts else None

    @classmethod
    def from_dict(cls, data: Any, where: str = "data_span") -> DataSpan | None:
        """The span `to_dict` wrote (None for None or {}).

        Raises:
            SchemaError: not that shape, an unknown part, or a first time after the last.
        """
        if data is None or data == {}:
            return None
        if not isinstance(data, dict):
            raise SchemaError(f"{where} must be an object of parts, got {data!r}")
        parts = {}
        for name, part in data.items():
            if name not in PARTS:
                raise SchemaError(f"{where} has the part {name!r}; parts are {', '.join(PARTS)}")
            if not isinstance(part, dict) or set(part) != {"first", "last"}:
                raise SchemaError(f"{where}.{name} must be {{\"first\": ..., \"last\": ...}}, "
                                  f"got {part!r}")
            first = _parse(part["first"], f"{where}.{name}.first")
            last = _parse(part["last"], f"{where}.{name}.last")
            if first > last:
                raise SchemaError(f"{where}.{name}: first {part['first']} is after last "
                                  f"{part['last']}")
            parts[name] = (first, last)
        return cls(parts)

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {name: {"first": iso(first), "last": iso(last)}
                for name, (first, last) in self.parts.items()}

    @property
    def first(self) -> np.datetime64:
        return min(first for first, _ in self.parts.values())

    @property
    def last(self) -> np.datetime64:
        return max(last for _, last in self.parts.values())

    def overlap(self, times: np.ndarray, duration_s: float | None = None) -> dict[str, Any]:
        """How many of the units at `times` (datetime64, NaT where unknown; each covering
        `duration_s` from it, as in `of`) reach into [first, last] of the span, lie before it,
        after it, or have no time; with the span."""
        times = np.asarray(times).astype(f"datetime64[{_UNIT}]")
        known = ~np.isnat(times)
        before = known & (times + _reach(duration_s) < self.first)
        after = known & (times > self.last)
        return {"units": len(times), "within": int((known & ~before & ~after).sum()),
                "before": int(before.sum()), "after": int(after.sum()),
                "no_time": int((~known).sum()), "first": iso(self.first),
                "last": iso(self.last), "span": self.to_dict()}


def overlap_message(overlap: dict[str, Any], model: str, unit: str, advice: str = "") -> str:
    """The warning for an `overlap` with units within the span: the counts, the span, and
    what to do (`advice` adds a way, e.g. a flag)."""
    return (f"{overlap['within']:,} of {overlap['units']:,} {unit}s fall within the time of the "
            f"data {model} was trained and validated on ({overlap['first']} to "
            f"{overlap['last']}): the figures may include what it learnt from; evaluate on "
            f"{unit}s after {overlap['last']} (logs recorded later{advice})")


def _reach(duration_s: float | None) -> np.timedelta64:
    """How far past its time a unit covering `duration_s` reaches (its last microsecond)."""
    micros = round((duration_s or 0) * 1e6)
    return np.timedelta64(max(micros - 1, 0), _UNIT)


def note_overlap(metrics: Any, span: DataSpan | None, times: np.ndarray, model: str,
                 unit: str, advice: str = "", duration_s: float | None = None
                 ) -> dict[str, Any] | None:
    """Set `metrics.training_overlap` (an `EvaluationMetrics`) to how the evaluated units at
    `times` overlap the span of the data `model` learnt from; when some lie within it, add
    the warning to its notes and log it. Nothing for a model that records no span (saved
    before models recorded it, or trained on units without times) or units without times.

    Returns:
        The overlap (see `DataSpan.overlap`), or None.
    """
    if span is None or not len(times) or np.isnat(times).all():
        return None
    overlap = {**span.overlap(times, duration_s), "unit": unit}
    metrics.training_overlap = overlap
    if overlap["within"]:
        message = overlap_message(overlap, model, unit, advice)
        metrics.notes.insert(0, f"TRAINING DATA: {message}")
        logger.warning("%s", message)
    return overlap
