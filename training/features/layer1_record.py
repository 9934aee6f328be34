"""Layer 1's vector of one canonical record, without Arrow: `Layer1Featurizer.featurize` for a
single event, as the per-event API needs it.

Every block follows the vectorized transform in `training.features.layer1` step by step, with
the same numpy functions elementwise (one element per column: the same rounding) and the same hashed
buckets (`encoding.bucket_of` shares the batch path's memo; a value not seen yet is hashed by
the batch kernel). Address features are the batch path's own, computed once per address.
`training/tests/test_event_fast_path.py` pins the result bit for bit to the batch path.

Shapes: one `CanonicalRecord` -> (1, 128) float32.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.canonical_record import CanonicalRecord
from training.features import layer1 as batch
from training.features.encoding import bucket_of
from training.features.layer1_extras import is_featurized, text_is_featurized, text_number
from training.features.layer1_rarity import SEEN_AT, record_rarity

_ADDRESSES: dict[str, np.ndarray] = {}  # address text -> its 8 features (a pure function)
_MAX_ADDRESSES = 1 << 16


def featurize_record(featurizer: batch.Layer1Featurizer, record: CanonicalRecord) -> np.ndarray:
    """(1, 128) float32: `featurizer.featurize` of the one-row table `record` stands for."""
    featurizer._check_fitted()
    values = record.values
    out = np.zeros((1, batch.DIM), dtype=np.float32)
    row = out[0]
    for name, at, vocabulary, n_known, n_hashed in batch._CATEGORICAL:
        _categorical(row, values.get(name), at, vocabulary, n_known, n_hashed, name)
    for name, at in (("source_ip", batch.SOURCE_ADDRESS), ("dest_ip", batch.DEST_ADDRESS)):
        row[at:at + 8] = _address(values.get(name))
    for name, at in (("source_port", batch.SOURCE_PORT), ("dest_port", batch.DEST_PORT)):
        port = values.get(name)
        row[at:at + 5] = batch._PORTS[65536 if port is None else port]
    _numeric(featurizer, row, values, _extras(row, record, featurizer.label_fields,
                                              featurizer.numbers_in_text,
                                              featurizer.behaviour_only_extras))
    severity = values["severity"]  # a float32 value in [0, 1] (the converter's rule), or None
    row[batch.SEVERITY] = 0.0 if severity is None else severity
    _time(row, values.get("timestamp"))
    identity = _identity_values(values)
    _identity(row, identity)
    batch.apply_layout(out, featurizer.layout)
    if featurizer.counts_ is not None:  # l1.v4 or l1.v5, fitted
        record_rarity(row, identity, featurizer.counts_)
    return out


def _categorical(row: np.ndarray, value: str | None, at: int, vocabulary: dict | None,
                 n_known: int, n_hashed: int, salt: str) -> None:
    if value is None:
        return
    known = vocabulary.get(value, -1) if vocabulary else -1
    if known >= 0:
        row[at + known] = 1.0
    elif n_hashed:
        row[at + n_known + bucket_of(value, n_hashed, salt)] = 1.0


def _address(text: str | None) -> np.ndarray:
    if text is None:
        return np.zeros(8, dtype=np.float32)
    features = _ADDRESSES.get(text)
    if features is None:
        features = batch._address_table(pa.array([text], pa.string()))[0]
        if len(_ADDRESSES) >= _MAX_ADDRESSES:
            _ADDRESSES.clear()
        _ADDRESSES[text] = features
    return features


def _numeric(featurizer: batch.Layer1Featurizer, row: np.ndarray, values: dict,
             extras: list[tuple[int, float]]) -> None:
    """The five volume dims and the numeric extra fields' buckets, scaled in one array: the
    same elementwise operations as the batch path's per-column calls, in one call each."""
    volume = [np.nan if values[name] is None else float(values[name]) for name, _ in batch.VOLUME]
    n, k = len(volume), len(extras)
    if featurizer.robust:
        numbers = np.array(volume, dtype=np.float64)
        low, high = (np.array([featurizer.ranges_[name][i] for name, _ in batch.VOLUME])
                     for i in (0, 1))
        logged = np.log1p(np.clip(np.nan_to_num(numbers, nan=0.0), 0, None))
        row[batch.VOLUME_AT:batch.VOLUME_AT + n] = np.where(
            np.isnan(numbers), 0.0, np.clip((logged - low) / (high - low), 0, 1))
        scaled = _log_scale(np.array([v for _, v in extras], np.float64), _caps(0, k))
    else:
        both = _log_scale(np.array(volume + [v for _, v in extras], np.float64), _caps(n, k))
        row[batch.VOLUME_AT:batch.VOLUME_AT + n] = both[:n]
        scaled = both[n:]
    for (bucket, _), value in zip(extras, scaled.tolist()):
        row[bucket] = max(float(row[bucket]), value)  # np.maximum, then float32


def _log_scale(values: np.ndarray, log_caps: np.ndarray | np.float64) -> np.ndarray:
    """`encoding.log_scale` with log1p(cap) given (one per value or one for all). NaN -> 0 as
    there; infinities are left as they are rather than made the largest float, since either
    way +inf scales past 1 (clipped to 1) and -inf below 0 (clipped to 0)."""
    with np.errstate(invalid="ignore"):
        scaled = np.log1p(np.clip(np.where(np.isnan(values), 0.0, values), 0.0, None)) / log_caps
    return np.clip(scaled, 0.0, 1.0)


# log1p(cap) as log_scale computes them
_LOG_VOLUME_CAPS = [np.log1p(cap) for _, cap in batch.VOLUME]
_LOG_EXTRA_CAP = np.log1p(batch.EXTRA_CAP)
_CAPS: dict[tuple[int, int], np.ndarray] = {}


def _caps(n_volume: int, n_extra: int) -> np.ndarray:
    """The caps of the first `n_volume` volume dims, then of `n_extra` extra fields."""
    caps = _CAPS.get((n_volume, n_extra))
    if caps is None:
        caps = np.array(_LOG_VOLUME_CAPS[:n_volume] + [_LOG_EXTRA_CAP] * n_extra, np.float64)
        if len(_CAPS) < 4096:
            _CAPS[(n_volume, n_extra)] = caps
    return caps


def _time(row: np.ndarray, micros: int | None) -> None:
    if micros is None:
        seconds, weekday = 86_400, 7
    else:
        seconds, weekday = micros // 1_000_000 % 86_400, (micros // batch._US_PER_DAY + 3) % 7
    row[batch.TIME:batch.TIME + 2] = batch._SECONDS_OF_DAY[seconds]
    row[batch.TIME + 2:batch.TIME + 4] = batch._DAYS_OF_WEEK[weekday]


def _basename(text: str) -> str:
    """`layer1._basename` of one value: the file name, lower case."""
    name = text[max(text.rfind("/", 0, _line_end(text)), text.rfind("\\", 0, _line_end(text))) + 1:]
    if name.isascii():
        return name.lower()
    return pc.utf8_lower(pa.array([name], pa.string()))[0].as_py()  # Unicode rules differ


def _line_end(text: str) -> int:
    """Where the batch path's regex `^.*[\\\\/]` stops looking: its `.` does not match a newline."""
    end = text.find("\n")
    return len(text) if end < 0 else end


def _identity_values(values: dict) -> dict[str, str | None]:
    """Each identity field's text as `layer1_rarity.identity_values` reads it."""
    out = {}
    for name, _ in batch.IDENTITY:
        if name == "file":
            value = values.get("file_path")
            value = values.get("file_hash") if value is None else value
        else:
            value = values.get(name)
        if name in ("process", "parent_process") and value is not None:
            value = _basename(value)
        out[name] = value
    for name in SEEN_AT:  # `l1.v5`'s network fields, as text
        value = values.get(name)
        out[name] = None if value is None else str(value)
    return out


def _identity(row: np.ndarray, identity: dict[str, str | None]) -> None:
    at = batch.IDENTITY_AT
    for name, size in batch.IDENTITY:
        _categorical(row, identity[name], at, None, 0, size, name)
        at += size


def _extras(row: np.ndarray, record: CanonicalRecord, label_fields: tuple[str, ...],
            numbers_in_text: bool, behaviour_only: bool) -> list[tuple[int, float]]:
    """Sets the text extra fields' buckets; returns the numeric ones' (bucket, |value|)."""
    numbered = []
    for name, kind, value in record.extras:
        if _skipped(name, label_fields, behaviour_only):
            continue
        if behaviour_only and kind == "text" and not text_is_featurized(name, value):
            continue
        if kind == "text" and numbers_in_text:
            spelled = text_number(value)
            if spelled is not None:
                kind, value = "number", spelled
        if kind == "number":  # abs of the float64 value, as the batch path's np.abs
            numbered.append((batch.EXTRA + bucket_of(name, batch.EXTRA_BUCKETS, "extra"),
                             abs(float(value))))
        elif kind == "text":
            _categorical(row, value, batch.EXTRA, None, 0, batch.EXTRA_BUCKETS, name)
    return numbered


# (name, label fields, behaviour only) -> left out
_SKIPPED: dict[tuple[str, tuple[str, ...], bool], bool] = {}


def _skipped(name: str, label_fields: tuple[str, ...], behaviour_only: bool) -> bool:
    """Whether the batch path leaves extra field `name` out (canonical, id or label field, or
    named for a time, an identifier or free text)."""
    key = (name, label_fields, behaviour_only)
    skipped = _SKIPPED.get(key)
    if skipped is None:
        skipped = not is_featurized(name, label_fields, behaviour_only)
        if len(_SKIPPED) >= _MAX_ADDRESSES:
            _SKIPPED.clear()
        _SKIPPED[key] = skipped
    return skipped
