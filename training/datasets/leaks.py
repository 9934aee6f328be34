"""Label leaks: an input field whose values alone tell the threats from the benign units.

A detector scored on such data measures the field, not attacks: on the Stratosphere captures
Zeek's `direction` is `inbound` for every threat and `outbound` for every benign flow, and
layer 1 reached ROC-AUC 0.997 on it.

The criterion (`separation`), on the labeled units only (is_threat 0 or 1):

* there are at least `MIN_CLASS` (20) units of each class;
* the field takes few values: 2 to `MAX_VALUES` (16) distinct ones, a missing value counting
  as one (a field of many values, an address or a port, is not judged: each value would be
  pure by chance);
* each class has at least `COVERED` (95%) of its units in values that are at least `PURE`
  (99.5%) of that class.

A field that only some events carry (Zeek's `direction` is on conn events, not on dns or ssl
ones) is judged twice: among all labeled units, its missing value one of its values, and,
when that finds nothing, among the labeled units that carry it, if they hold at least
`CARRIED` (25%) of each class (and `MIN_CLASS` of each, as above). On Stratosphere 011's
folder the conn events' `direction` then still tells their labels apart, although the ssl,
dns and other events without it are 37% of the benign ones.

`event_leaks(events)` judges every input field of an event table (not the labels, ids, times or
the source name), `feature_leaks(features, labels, names)` every column of a feature matrix
(the `validate` command's files), one finding per field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import LABEL_SOURCE_FIELDS, is_label_field

MIN_CLASS = 20
MAX_VALUES = 16
PURE = 0.995
COVERED = 0.95
# The share of each class's labeled units that must carry a field for it to be judged among
# them alone. On fewer, the field tells too few units apart to be what a model's figures
# measure; and a small part of a folder is often a log or two whose label mix the capture fixed
# (011's sip events: 33 threats, no benign), so the values of a field only they carry are pure
# because their logs are. A quarter keeps a log that is a real share of both classes (011's
# conn events: 99% of the threats, 63% of the benign events).
CARRIED = 0.25
NOT_INPUTS = ("timestamp", "event_id", "source", "community_id")  # no layer reads them as such
MISSING = "(missing)"
SAMPLE_ROWS = 4096  # a feature column with more distinct values in its first rows is skipped
_FIELD_OF_FEATURE = re.compile(r"[=:#>/]")  # "direction=inbound" encodes field "direction"
_UNNAMED = re.compile(r"feature_\d+")  # the validator's name of a column without a spec


@dataclass(frozen=True)
class Leak:
    """A field that separates the labels: the values holding the threats, and their counts."""

    field: str
    values: tuple[str, ...]
    threats: int
    benign: int
    total_threats: int
    total_benign: int
    unit: str = "events"
    drop: str | None = None  # the field `--drop-field` takes, when it is known
    among: int | None = None  # the labeled units carrying the field, when judged among them

    @property
    def message(self) -> str:
        verb = "holds" if len(self.values) == 1 else "hold"
        where = (f" among the {self.among:,} labeled {self.unit} that have it"
                 if self.among is not None else "")
        text = (f"{self.field} separates the labels{where}: {', '.join(self.values)} {verb} "
                f"{self.threats:,} of {self.total_threats:,} threats and {self.benign:,} of "
                f"{self.total_benign:,} benign {self.unit} - a leak?")
        return text + (f" Drop it with --drop-field {self.drop}" if self.drop else "")


def separation(codes: np.ndarray, threat: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray] | None:
    """Whether values `codes` separate the labels (module docstring).

    Args:
        codes: (units,) a code per value (missing: a code of its own), labeled units only.
        threat: (units,) bool, True for a threat, False for a benign unit.

    Returns:
        (distinct codes, their threat counts, their benign counts, sorted by code) when the
        field separates the labels, else None.
    """
    total = int(threat.sum())
    if total < MIN_CLASS or len(threat) - total < MIN_CLASS:
        return None
    distinct, inverse = np.unique(codes, return_inverse=True)
    if not 2 <= len(distinct) <= MAX_VALUES:
        return None
    threats = np.bincount(inverse, weights=threat, minlength=len(distinct))
    benign = np.bincount(inverse, weights=~threat, minlength=len(distinct))
    share = threats / (threats + benign)
    covered_threats = threats[share >= PURE].sum() >= COVERED * total
    covered_benign = benign[1 - share >= PURE].sum() >= COVERED * (len(threat) - total)
    if not (covered_threats and covered_benign):
        return None
    return distinct, threats.astype(np.int64), benign.astype(np.int64)


def _leak(field: str, names: list[str], found: tuple[np.ndarray, np.ndarray, np.ndarray],
          unit: str, drop: str | None, among: int | None = None) -> Leak:
    distinct, threats, benign = found
    held = threats / (threats + benign) >= PURE
    order = np.argsort(-threats[held], kind="stable")
    return Leak(field, tuple(names[int(c)] for c in distinct[held][order]),
                int(threats[held].sum()), int(benign[held].sum()), int(threats.sum()),
                int(benign.sum()), unit, drop, among)


def _carried_separation(codes: np.ndarray, threat: np.ndarray, missing: int
                        ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int] | None:
    """`separation` among the units whose code is not `missing`, and their count, when they
    hold `CARRIED` of each class (module docstring); else None."""
    carried = codes != missing
    threats, benign = int(threat[carried].sum()), int((~threat[carried]).sum())
    if (threats < CARRIED * threat.sum() or benign < CARRIED * (~threat).sum()
            or carried.all()):
        return None
    found = separation(codes[carried], threat[carried])
    return None if found is None else (found, threats + benign)


def event_leaks(events: pa.Table) -> list[Leak]:
    """The input fields of `events` that separate the labels, in column order."""
    labels = events["is_threat"].to_numpy(zero_copy_only=False)
    labeled = np.isin(labels, (0, 1))
    if not labeled.any():
        return []
    threat = labels[labeled] == 1
    rows = pa.array(np.flatnonzero(labeled))
    found = []
    for name in events.column_names:
        column = events[name]
        if (name in NOT_INPUTS or is_label_field(name, LABEL_SOURCE_FIELDS)
                or not _plain_values(column.type)
                or pc.count_distinct(column, mode="all").as_py() > MAX_VALUES):
            continue
        chosen = column.take(rows)
        if not pa.types.is_string(chosen.type):
            chosen = chosen.cast(pa.string())
        encoded = pc.dictionary_encode(chosen).combine_chunks()
        names = encoded.dictionary.to_pylist() + [MISSING]
        codes = encoded.indices.fill_null(len(names) - 1).to_numpy(zero_copy_only=False)
        separated = separation(codes, threat)
        if separated is not None:
            found.append(_leak(f"field {name}", names, separated, "events", name))
        elif (carried := _carried_separation(codes, threat, len(names) - 1)) is not None:
            found.append(_leak(f"field {name}", names, carried[0], "events", name, carried[1]))
    return found


def _plain_values(kind: pa.DataType) -> bool:
    """Text, numbers or booleans: the values a feature reads (not lists, nulls, times)."""
    return any(test(kind) for test in (pa.types.is_string, pa.types.is_large_string,
                                       pa.types.is_boolean, pa.types.is_integer,
                                       pa.types.is_floating))


def feature_leaks(features: np.ndarray, labels: np.ndarray, names: list[str]) -> list[Leak]:
    """The feature columns of `features` (rows, columns) that separate `labels` (-1/0/1), the
    first of each field (a name's part before "=", ":", "#", ">" or "/")."""
    labeled = np.isin(labels, (0, 1))
    threat = np.asarray(labels)[labeled] == 1
    if threat.sum() < MIN_CLASS or len(threat) - threat.sum() < MIN_CLASS:
        return []
    found: dict[str, Leak] = {}
    for k, name in enumerate(names):
        field = _FIELD_OF_FEATURE.split(name, 1)[0] or name
        if field in found:
            continue
        column = np.asarray(features[:, k])[labeled]
        seen = np.unique(column[:SAMPLE_ROWS])
        if len(seen) > MAX_VALUES:
            continue
        at = np.minimum(np.searchsorted(seen, column), len(seen) - 1)
        if not np.array_equal(seen[at], column, equal_nan=True):  # values the sample missed
            seen = np.unique(column)
            at = np.minimum(np.searchsorted(seen, column), len(seen) - 1)
        separated = separation(at, threat)
        if separated is not None:
            # layer 1's hashed extra buckets ("extra#3") mix fields, and plain arrays' columns
            # ("feature_73") are no event field: no --drop-field to name
            drop = None if field == "extra" or _UNNAMED.fullmatch(name) else field
            found[field] = _leak(f"feature {name}", [f"{v:g}" for v in seen], separated,
                                 "rows", drop)
    return list(found.values())
