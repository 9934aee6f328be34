"""Rows cut by time: the TEMPORAL strategy, its grace period and gap, and shared cut times.

Every train row is earlier than every val row, every val row than every test row, and no
timestamp is in two parts. `cut_times` reads back where a split was cut, so that other rows
(windows of the same events) can be cut at the same times (`temporal_split(..., at=...)`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging

import numpy as np

from training.datasets.strategies import SPLIT_NAMES, Indices, Ratios, _pack, _require_rows
from training.errors import ConfigError, TooFewError

logger = logging.getLogger(__name__)


def as_time(timestamps: object, n: int, *, allow_missing: bool = False) -> np.ndarray:
    """Timestamps as datetime64[us] (datetimes, ISO strings, datetime64) or numbers, validated.

    Args:
        allow_missing: keep NaT/NaN (a dataset may carry times only some strategies need).

    Raises:
        ConfigError: wrong length, or missing (NaT/NaN) values unless allowed.
    """
    values = np.asarray(timestamps)
    if values.dtype == object and len(values) and isinstance(values.flat[0], dt.datetime):
        values = np.array([_naive_utc(t) for t in values], dtype="datetime64[us]")
    elif values.dtype.kind in "OUS" or values.dtype.kind == "M":
        try:
            values = values.astype("datetime64[us]")
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"timestamps must be datetimes or numbers: {exc}") from None
    elif values.dtype.kind not in "iuf":
        raise ConfigError(f"timestamps must be datetimes or numbers, got dtype {values.dtype}")
    if values.shape != (n,):
        raise ConfigError(f"timestamps must have one value per row ({n}), got shape {values.shape}")
    missing = int(np.isnat(values).sum() if values.dtype.kind == "M"
                  else np.isnan(values).sum() if values.dtype.kind == "f" else 0)
    if missing and not allow_missing:
        raise ConfigError(f"timestamps has {missing} missing value(s) (NaT/NaN); fill or drop "
                          "those rows before a temporal split, or use a split that needs no "
                          "time (random, stratified, group)")
    return values


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def temporal_split(timestamps: np.ndarray, ratios: Ratios, gap: object = None,
                   train_until: object = None, at: tuple[object, object] | None = None) -> Indices:
    """Earliest rows to train, then val, then test; no timestamp is in two splits.

    Args:
        timestamps: one per row (see `as_time`).
        ratios: shares of the rows; cuts move to the nearest change of timestamp, so sizes
            follow the ratios to within one row only when timestamps are distinct.
        gap: optional quiet period between splits (timedelta, numpy timedelta64, or a number
            in the timestamps' unit): val rows earlier than the last train row + gap are left
            out, and likewise test rows after val. Left-out rows are logged.
        train_until: a grace period: the rows before this time (datetime64, datetime or ISO
            text), or this leading share of the rows in time order (a number in (0, 1)), are
            train and val (in the train : val ratio); every later row is test.
        at: the cut times instead of the ratios (`cut_times` of another split, e.g. the
            events' when these rows are windows of them): rows before at[0] are train, before
            at[1] val, the rest test (None: no such part). The ratios then only say which
            parts must not be empty.

    Raises:
        ConfigError: too few distinct timestamps, a gap that empties a split, a
            `train_until` that leaves no row before or after it, both it and `at`, or cut
            times out of order or of another kind than the timestamps.
    """
    times = as_time(timestamps, len(timestamps))
    _require_rows(len(times), ratios, "temporal")
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    if at is not None:
        if train_until is not None:
            raise ConfigError("give train_until or the cut times (at), not both")
        cuts = [len(ordered) if t is None else
                int(np.searchsorted(ordered, _as_cut(t, ordered), side="left")) for t in at]
        if cuts[0] > cuts[1]:
            raise ConfigError(f"the cut times must be in order (val from, test from), got {at}")
    elif train_until is None:
        wanted = tuple(r > 0 for r in ratios.values)
        cuts = _cuts(ordered, [int(c) for c in np.cumsum(ratios.counts(len(times)))[:2]],
                     wanted)
    else:
        fit = _grace_rows(ordered, train_until)
        val = int(round(fit * ratios.val / (ratios.train + ratios.val)))
        cuts = [_cuts(ordered[:fit], [fit - val], (True, ratios.val > 0))[0], fit]
    parts = np.split(order, cuts)
    if gap is not None:
        parts = _apply_gap(parts, times, _as_gap(gap, times))
    for name, part, ratio in zip(SPLIT_NAMES, parts, ratios.values):
        if ratio > 0 and not len(part):
            held = ordered[:cuts[1]] if train_until is not None else ordered
            where = " before train_until" if train_until is not None else ""
            gap_too = " (or the gap is too long)" if gap is not None else ""
            raise TooFewError(f"the temporal split leaves {name} empty: the timestamps have too "
                              f"few distinct values for these ratios{gap_too}: the "
                              f"{len(held):,} rows{where} have {len(np.unique(held)):,} "
                              "distinct time(s)")
    return _pack(parts)


def cut_times(timestamps: np.ndarray, parts: Indices) -> tuple[object, object]:
    """The times a temporal split of these rows was cut at, for `temporal_split(..., at=...)`:
    where val starts and where test starts (an empty part starts where the next one does;
    None: nothing from there on)."""
    times = as_time(timestamps, len(timestamps))
    test = times[parts["test"]].min() if len(parts["test"]) else None
    return (times[parts["val"]].min() if len(parts["val"]) else test), test


def _as_cut(value: object, ordered: np.ndarray) -> object:
    cut = as_time(np.array([value]), 1)[0]
    if (np.asarray(cut).dtype.kind == "M") != (ordered.dtype.kind == "M"):
        raise ConfigError(f"the cut time {value!r} and the rows' timestamps must both be times "
                          "or both numbers")
    return cut


def _grace_rows(ordered: np.ndarray, until: object) -> int:
    """How many of the time-ordered rows fall in the grace period `until` (see temporal_split)."""
    n = len(ordered)
    if isinstance(until, (int, float)) and not isinstance(until, bool):
        if not 0.0 < until < 1.0:
            raise ConfigError(f"train_until as a share of the rows must be in (0, 1), got {until}")
        fit = _snap(ordered, int(round(until * n)))
    else:
        if ordered.dtype.kind != "M":
            raise ConfigError("train_until is a time, but the rows' timestamps are numbers; "
                              "give a share of the rows (e.g. 0.5) instead")
        cut = as_time(np.array([until]), 1)[0] if not isinstance(until, dt.datetime) else \
            np.datetime64(_naive_utc(until), "us")
        fit = int(np.searchsorted(ordered, cut, side="left"))
    if not 0 < fit < n:
        where = "before" if fit == 0 else "after"
        raise ConfigError(f"train_until {until} leaves no row {where} it: the {n} rows span "
                          f"{ordered[0]} .. {ordered[-1]}; choose a time inside that span, or "
                          "a share of the rows in (0, 1)")
    return fit


def _cuts(ordered: np.ndarray, targets: list[int], wanted: tuple[bool, ...]) -> list[int]:
    """Cuts at the nearest changes of timestamp (`_snap`), or, when that empties a part that
    is `wanted`, at the nearest changes (a few on either side of each target) that leave every
    wanted part a row: bursty data, e.g. most units in one minute."""
    nearest = [_snap(ordered, cut) for cut in targets]

    def fits(cuts: tuple[int, ...]) -> bool:
        bounds = (0, *cuts, len(ordered))
        return all(bounds[i + 1] > bounds[i] for i, want in enumerate(wanted) if want) \
            and list(cuts) == sorted(cuts)

    if fits(tuple(nearest)):
        return nearest
    changes = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1,
                              [len(ordered)]])
    choices = []
    for cut in targets:
        at = int(np.searchsorted(changes, cut))
        choices.append(sorted({int(c) for c in changes[max(0, at - 3):at + 3]}))
    valid = [c for c in itertools.product(*choices) if fits(c)]
    if not valid:
        return nearest  # the caller says which part is empty
    return list(min(valid, key=lambda c: sum(abs(a - b) for a, b in zip(c, targets))))


def _snap(ordered: np.ndarray, cut: int) -> int:
    """Move a cut out of a run of equal timestamps, to whichever end of the run is nearer."""
    if cut <= 0 or cut >= len(ordered) or ordered[cut - 1] != ordered[cut]:
        return cut
    start = int(np.searchsorted(ordered, ordered[cut], side="left"))
    end = int(np.searchsorted(ordered, ordered[cut], side="right"))
    return start if cut - start <= end - cut else end


def _as_gap(gap: object, times: np.ndarray) -> object:
    if isinstance(gap, dt.timedelta | np.timedelta64):
        if times.dtype.kind != "M":
            raise ConfigError("gap is a duration but the timestamps are numbers; give the gap "
                              "in the timestamps' unit")
        gap = np.timedelta64(gap).astype("timedelta64[us]")
        if gap < np.timedelta64(0, "us"):
            raise ConfigError(f"gap must be >= 0, got {gap}")
        return gap
    if times.dtype.kind == "M":
        raise ConfigError(f"gap must be a duration (datetime.timedelta) for datetime "
                          f"timestamps, got {gap!r}")
    if not isinstance(gap, int | float) or gap < 0:
        raise ConfigError(f"gap must be a number >= 0 in the timestamps' unit, got {gap!r}")
    return gap


def _apply_gap(parts: list[np.ndarray], times: np.ndarray, gap: object) -> list[np.ndarray]:
    kept = [parts[0]]
    for name, part in zip(SPLIT_NAMES[1:], parts[1:]):
        previous = next((p for p in reversed(kept) if len(p)), None)
        if previous is not None and len(part):
            keep = times[part] >= times[previous[-1]] + gap
            if not keep.all():
                logger.info("temporal split: %d %s row(s) fall in the gap and are left out",
                            int((~keep).sum()), name)
            part = part[keep]
        kept.append(part)
    return kept
