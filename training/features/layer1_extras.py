"""Layer 1's extra-field block (dims 112-127): every non-canonical field in 16 shared buckets.

A number (or boolean) adds log1p(abs(x))/log1p(1e9) at the bucket of its field's name; text
sets the bucket of name=value to 1 (max where two meet). Lists, nested values, record
identifiers (`ID_FIELDS`) and label fields are left out.

With `numbers_in_text`, a value is encoded by its text form, not by the Arrow type a reader
gave it: text that spells a number ("277", "-1.5", "1e+20", "nan") or a boolean ("true",
"false", what Arrow writes for one) is encoded as that number. Why: a field's type can depend
on how the events were read, not on the event. Zeek's sip.log declares `request_body_len` a
string; reading a folder into one table (`schema_union.concat_tables`) then turns http.log's
integer 277 into the text "277", while http.log read alone keeps 277. Specs written before
this setting existed encode by Arrow type (their models keep the transform they were trained
with).

With `behaviour_only_extras`, the fields and text values that say when or which one rather
than what are left out too: times, identifiers and free text (`training.features.
layer1_extra_kinds`: the rules, and what they leave out of the real datasets). Specs written
before this setting existed keep every field (their models keep their transform).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import CANONICAL_SCHEMA, is_label_field
from training.features.encoding import as_array, buckets, log_scale, numbers
from training.features.layer1_extra_kinds import name_kind, reads_text_shapes, text_kind

EXTRA, EXTRA_BUCKETS, EXTRA_CAP = 112, 16, 1e9
# Extra fields that identify a record rather than describe it: as features they are noise.
ID_FIELDS = ("uid", "uids", "fuid", "fuids", "conn_uids", "parent_fuid", "id", "trans_id",
             "flow_id", "tx_id", "pcap_cnt", "RecordNumber", "ProcessGuid", "ParentProcessGuid",
             "SourceProcessGUID", "TargetProcessGUID", "LogonGuid", "ActivityID")
# Text Arrow's cast to float64 and Python's float() both read, and read the same: decimal and
# exponent forms, and the words Arrow writes for a float's infinities and NaN.
NUMBER_TEXT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)"
BOOLEAN_TEXT = {"true": 1.0, "false": 0.0}

_CANONICAL = frozenset(CANONICAL_SCHEMA.names)
_NUMBER = re.compile(NUMBER_TEXT)


def is_featurized(name: str, label_fields: Sequence[str], behaviour_only: bool = False) -> bool:
    """Whether extra field `name` can be a feature: not canonical, an id or a label field, nor,
    when `behaviour_only`, named for a time, an identifier or free text (`name_kind`)."""
    return not (name in _CANONICAL or name in ID_FIELDS or is_label_field(name, label_fields)
                or (behaviour_only and name_kind(name) is not None))


def text_is_featurized(name: str, text: str) -> bool:
    """Under `behaviour_only`, whether a text value of field `name` can be a feature: not
    shaped as a time, an identifier or free text (`text_kind`)."""
    return not reads_text_shapes(name) or text_kind(text) is None


def name_bucket(name: str) -> int:
    """The dim offset (0..15) numbers of field `name` go to."""
    return int(buckets(pa.array([name]), EXTRA_BUCKETS, "extra")[0])


def text_number(text: str) -> float | None:
    """The number `text` spells under `numbers_in_text` (see the module docstring), else None."""
    if _NUMBER.fullmatch(text):
        return float(text)
    return BOOLEAN_TEXT.get(text)


def extra_columns(table: pa.Table, label_fields: Sequence[str], behaviour_only: bool = False
                  ) -> Iterator[tuple[str, pa.Array]]:
    """The extra columns of `table` that can be features, as single arrays."""
    for name in table.column_names:
        if is_featurized(name, label_fields, behaviour_only):
            yield name, as_array(table[name])


def extra_dims(name: str, column: pa.Array, numbers_in_text: bool, behaviour_only: bool = False
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row, the offset (0..15, -1: none) of the bucket one extra column sets and the value
    it sets there; None for a column of a type that is never a feature (lists, timestamps).
    With `behaviour_only`, text shaped as a time, an identifier or free text sets none.
    Shapes: column (n,) -> (n,) int64, (n,) float64."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return _numbers(name, numbers(column))
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    encoded = pc.dictionary_encode(column)
    distinct = encoded.dictionary
    codes = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
    dims = np.append(buckets(distinct, EXTRA_BUCKETS, name), -1)
    values = np.append(np.ones(len(distinct)), 0.0)
    if numbers_in_text:  # decided once per distinct text, then gathered
        spelled = [text_number(v) for v in distinct.to_pylist()]
        numeric = np.array([v is not None for v in spelled] + [False])
        if numeric.any():
            read = np.array([np.nan if v is None else v for v in spelled] + [np.nan])
            as_number, at_name = _numbers(name, read)
            dims = np.where(numeric, as_number, dims)
            values = np.where(numeric, at_name, values)
    if behaviour_only and reads_text_shapes(name):  # decided once per distinct text
        left_out = np.array([text_kind(v) is not None for v in distinct.to_pylist()] + [False])
        dims = np.where(left_out, -1, dims)
        values = np.where(left_out, 0.0, values)
    return dims[codes], values[codes]


def _numbers(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scaled = log_scale(np.abs(values), EXTRA_CAP)
    return np.full(len(values), name_bucket(name), dtype=np.int64), scaled


def write_extras(out: np.ndarray, table: pa.Table, label_fields: Sequence[str],
                 numbers_in_text: bool, behaviour_only: bool = False) -> None:
    """Fill the extra block of `out` (n, 128) from `table`'s extra columns, in place."""
    rows = np.arange(table.num_rows)
    for name, column in extra_columns(table, label_fields, behaviour_only):
        found = extra_dims(name, column, numbers_in_text, behaviour_only)
        if found is None:
            continue
        dims, values = found
        where = dims >= 0
        at = EXTRA + dims[where]
        out[rows[where], at] = np.maximum(out[rows[where], at], values[where])
