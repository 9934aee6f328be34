"""How rows are divided into train, validation and test: index arithmetic only, no data.

Every function here returns row numbers, so the same strategies split layer-1 samples, layer-2
window graphs and layer-3 windows (`training.datasets.window_splits`). Sizes follow the requested
ratios to within one row (largest-remainder rounding); randomness comes from a generator the
caller seeds, never the global one.

| strategy | keeps apart | order within a split |
|---|---|---|
| RANDOM | nothing (rows shuffled) | row order |
| STRATIFIED | nothing; every class (label) keeps its share in every split, to within one row | row order |
| TEMPORAL | time: every train row is earlier than every val row, every val row than every test row | time order |
| GROUP | groups (e.g. hosts): no group is in two splits | row order |
| K_FOLD | a held-out test set, then stratified folds of the rest (`k_fold`) | row order |

Unlabeled rows (label -1) stay in every strategy; STRATIFIED and K_FOLD treat them as a class.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow
from sklearn.model_selection import StratifiedKFold

from training.errors import ConfigError, PipelineError, TooFewError

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
Indices = dict[str, np.ndarray]  # split name -> row numbers (int64)


class SplitStrategy(str, Enum):
    """How `DatasetBuilder.create_splits` divides the rows."""

    RANDOM = "random"
    STRATIFIED = "stratified"
    TEMPORAL = "temporal"
    K_FOLD = "k_fold"
    GROUP = "group"


@dataclass(frozen=True)
class Ratios:
    """Shares of the rows for train, val and test; each in [0, 1], summing to 1, train > 0."""

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        for name, value in zip(SPLIT_NAMES, self.values):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}_ratio must be in [0, 1], got {value}")
        if self.train <= 0.0:
            raise ConfigError(f"train_ratio must be > 0, got {self.train}")
        if abs(sum(self.values) - 1.0) > 1e-6:
            raise ConfigError("train_ratio + val_ratio + test_ratio must be 1, got "
                              f"{self.train} + {self.val} + {self.test} = {sum(self.values):g}")

    @property
    def values(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)

    def counts(self, total: int) -> np.ndarray:
        """Rows per split summing to `total`, each within one row of total * ratio."""
        return _round_keeping_sum(np.array([total * r for r in self.values]), total)

    def wanted(self) -> int:
        """How many splits must receive rows."""
        return sum(r > 0 for r in self.values)


def _round_keeping_sum(targets: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding: floor everything, then add one to the largest remainders."""
    counts = np.floor(targets + 1e-9).astype(np.int64)
    remainder = targets - counts
    extra = total - int(counts.sum())
    counts[np.argsort(-remainder, kind="stable")[:extra]] += 1
    return counts


def _pack(parts: list[np.ndarray]) -> Indices:
    return {name: np.asarray(part, dtype=np.int64) for name, part in zip(SPLIT_NAMES, parts)}


def _require_rows(n: int, ratios: Ratios, strategy: str) -> None:
    if n < ratios.wanted():
        raise TooFewError(f"a {strategy} split into {ratios.wanted()} non-empty splits needs at "
                          f"least {ratios.wanted()} rows, got {n}")


def encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values, the code of every row, and the rows per value.

    Text is encoded by hashing (Arrow), several times faster than sorting it (0.45 s against
    3.4 s for 1M host names); values are then in order of first appearance, which is as
    deterministic as sorted order.
    """
    values = np.asarray(values)
    if values.dtype.kind in "USO":
        encoded = pc.dictionary_encode(pa.array(values.astype(str, copy=False)))
        names = encoded.dictionary.to_numpy(zero_copy_only=False)
        codes = encoded.indices.to_numpy().astype(np.int64)
    else:
        names, codes = np.unique(values, return_inverse=True)
    return names, codes, np.bincount(codes, minlength=len(names))


def random_split(n: int, ratios: Ratios, rng: np.random.Generator) -> Indices:
    """Shuffle the rows and cut them by `ratios`."""
    _require_rows(n, ratios, "random")
    order = rng.permutation(n)
    cuts = np.cumsum(ratios.counts(n))[:2]
    return _pack([np.sort(part) for part in np.split(order, cuts)])


def class_counts_per_split(class_sizes: np.ndarray, ratios: Ratios) -> np.ndarray:
    """Rows of each class for each split: (classes, 3) integers.

    Every entry is within one row of class_size * ratio, every row sums to its class size, and
    every column sums to the split size `Ratios.counts` gives. Rounding a table so that its
    entries and margins all stay within one is a small flow problem (controlled rounding): the
    fractional parts left after flooring are routed from classes to splits with max-flow.
    """
    targets = class_sizes[:, None] * np.array(ratios.values)[None, :]
    base = np.floor(targets + 1e-9).astype(np.int64)
    fractional = targets - base > 1e-9
    row_need = class_sizes - base.sum(axis=1)
    col_need = ratios.counts(int(class_sizes.sum())) - base.sum(axis=0)
    # Nodes: 0 source, 1..C classes, C+1..C+3 splits, C+4 sink (a sparse graph: C may be large).
    c = len(class_sizes)
    cls, split = np.nonzero(fractional)
    tails = np.concatenate([np.zeros(c, np.int64), 1 + cls, c + 1 + np.arange(3)])
    heads = np.concatenate([1 + np.arange(c), c + 1 + split, np.full(3, c + 4)])
    caps = np.concatenate([row_need, np.ones(len(cls), np.int64), col_need]).astype(np.int32)
    graph = csr_matrix((caps, (tails, heads)), shape=(c + 5, c + 5))
    result = maximum_flow(graph, 0, c + 4)
    if result.flow_value != row_need.sum():  # not expected: such a rounding always exists
        raise PipelineError(f"no rounding of class counts {class_sizes.tolist()} to ratios "
                            f"{ratios.values} was found; please report this")
    return base + result.flow[1:c + 1, c + 1:c + 4].toarray()


def stratified_split(labels: np.ndarray, ratios: Ratios, rng: np.random.Generator) -> Indices:
    """Cut every class by `ratios`, so each split keeps the class shares (to within one row)."""
    classes, codes, sizes = encode(labels)
    _require_rows(len(labels), ratios, "stratified")
    if sizes.min() < 2:
        lonely = classes[sizes < 2].tolist()
        raise ConfigError(f"a stratified split needs at least 2 rows of every class; class(es) "
                          f"{lonely} have 1. Merge or drop them, or use SplitStrategy.RANDOM")
    per_class = class_counts_per_split(sizes, ratios)
    parts: list[list[np.ndarray]] = [[], [], []]
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(sizes)[:-1])
    for c, rows in enumerate(members):
        rows = rng.permutation(rows)
        for s, chunk in enumerate(np.split(rows, np.cumsum(per_class[c])[:2])):
            parts[s].append(chunk)
    return _pack([np.sort(np.concatenate(p)) for p in parts])


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
            at[1] (None: no end) val, the rest test. The ratios then only say which parts
            must not be empty.

    Raises:
        ConfigError: too few distinct timestamps, a gap that empties a split, a
            `train_until` that leaves no row before or after it, or both it and `at`.
    """
    times = as_time(timestamps, len(timestamps))
    _require_rows(len(times), ratios, "temporal")
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    if at is not None:
        if train_until is not None:
            raise ConfigError("give train_until or the cut times (at), not both")
        bounds = [_as_cut(t, ordered) for t in at]
        cuts = [int(np.searchsorted(ordered, b, side="left")) if b is not None else len(ordered)
                for b in bounds]
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
            raise TooFewError(f"the temporal split leaves {name} empty: the timestamps have too "
                              "few distinct values for these ratios (or the gap is too long)")
    return _pack(parts)


def cut_times(timestamps: np.ndarray, parts: Indices) -> tuple[object, object]:
    """The times a temporal split of these rows was cut at: the first val row's and the first
    test row's (None when a part is empty), for `temporal_split(..., at=...)`."""
    times = as_time(timestamps, len(timestamps))
    return tuple(times[parts[name]].min() if len(parts[name]) else None
                 for name in ("val", "test"))


def _as_cut(value: object, ordered: np.ndarray) -> object:
    if value is None:
        return None
    if ordered.dtype.kind == "M":
        return as_time(np.array([value]), 1)[0]
    if isinstance(value, np.datetime64 | dt.datetime):
        raise ConfigError("the cut times are times, but the rows' timestamps are numbers")
    return value


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


def group_split(groups: np.ndarray, ratios: Ratios, rng: np.random.Generator) -> Indices:
    """Shuffle the groups and cut their sequence where the row counts come nearest the ratios.

    No group is in two splits, so sizes follow the ratios only as closely as group sizes allow.

    Raises:
        ConfigError: fewer groups than splits to fill.
    """
    names, codes, sizes = encode(groups)
    wanted = ratios.wanted()
    if len(names) < wanted:
        raise ConfigError(f"a group split into {wanted} non-empty splits needs at least {wanted} "
                          f"groups, got {len(names)} ({names[:5].tolist()}); use a finer group "
                          "column, fewer splits, or SplitStrategy.TEMPORAL")
    order = rng.permutation(len(names))
    ends = np.concatenate([[0], np.cumsum(sizes[order])])  # rows before each group boundary
    targets = np.cumsum(ratios.counts(len(codes)))[:2]
    n = len(names)
    need_val, need_test = int(ratios.val > 0), int(ratios.test > 0)
    g1 = _nearest(ends, targets[0], 1, n - need_val - need_test)
    g2 = _nearest(ends, targets[1], g1 + need_val, n - need_test)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    where = np.searchsorted([g1, g2], rank[codes], side="right")  # split of every row
    return _pack([np.flatnonzero(where == s) for s in range(3)])


def _nearest(ends: np.ndarray, target: int, low: int, high: int) -> int:
    """Group boundary in [low, high] whose row count is nearest `target`."""
    candidates = np.arange(low, high + 1)
    return int(candidates[np.argmin(np.abs(ends[candidates] - target))])


def k_fold(labels: np.ndarray, n_folds: int, rng: np.random.Generator
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds (scikit-learn's StratifiedKFold): (train rows, val rows) per fold.

    Every row is in exactly one fold's val rows.

    Raises:
        ConfigError: n_folds < 2, or a class with fewer rows than folds.
    """
    if not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    classes, codes, sizes = encode(labels)
    if len(labels) < n_folds or sizes.min() < n_folds:
        few = classes[sizes < n_folds].tolist()
        raise ConfigError(f"{n_folds} stratified folds need at least {n_folds} rows of every "
                          f"class; class(es) {few} have fewer. Use fewer folds")
    splitter = StratifiedKFold(n_folds, shuffle=True, random_state=int(rng.integers(2**31)))
    placeholder = np.zeros(len(labels))
    return [(train.astype(np.int64), val.astype(np.int64))
            for train, val in splitter.split(placeholder, codes)]
