"""The grouping and encoding helpers under layers 2 and 3, and the npz text columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from training.artifacts.npz import arrays_to_strings, strings_to_arrays
from training.errors import ConfigError, SchemaError
from training.features.traffic import (
    CONN_STATE_CLASSES, Groups, check_period, classes, count_distinct, entity_codes, timestamps_us,
    unique, unique_inverse,
)


def test_groups_reduce_sorted_rows():
    groups = Groups(np.array([0, 0, 0, 1, 1, 2]), np.array([5, 5, 7, 1, 1, 1]))
    assert groups.starts.tolist() == [0, 2, 3, 5] and groups.of_row.tolist() == [0, 0, 1, 2, 2, 3]
    assert groups.count().tolist() == [2, 1, 2, 1]
    assert groups.sum(np.arange(6.0)).tolist() == [1.0, 2.0, 7.0, 5.0]
    assert groups.max(np.array([-1, 1, 0, 0, -1, -1], dtype=np.int8)).tolist() == [1, 0, 0, -1]
    assert groups.count_distinct(np.array([3, 3, -1, 4, 5, 9])).tolist() == [1, 0, 2, 1]
    empty = Groups(np.zeros(0, dtype=np.int64))
    assert empty.size == 0 and empty.max(np.zeros(0, dtype=np.int8)).tolist() == []


def test_count_distinct_with_huge_codes():
    # group * span would overflow int64: the pairwise fallback gives the same answer
    codes = np.array([2**62, 2**62, 1, 2**61], dtype=np.int64)
    assert count_distinct(np.array([0, 0, 1, 2]), codes, 4).tolist() == [1, 1, 1, 0]


def test_unique_helpers_match_numpy():
    values = np.random.default_rng(0).integers(-50, 50, 1000)
    expected, inverse = np.unique(values, return_inverse=True)
    assert np.array_equal(unique(values), expected)
    got, got_inverse = unique_inverse(values)
    assert np.array_equal(got, expected) and np.array_equal(got_inverse, inverse)


def test_entity_codes_share_a_sorted_code_space():
    (a, b), names = entity_codes(pa.array(["z", None, "b"]), pa.array(["b", "m", None]))
    assert names.to_pylist() == ["b", "m", "z"]
    assert a.tolist() == [2, -1, 0] and b.tolist() == [0, 1, -1]


def test_classes_and_periods():
    table = pa.table({"conn_state": ["SF", "REJ", "new", "RSTO", "SHR", "weird", None]})
    assert classes(table, "conn_state", CONN_STATE_CLASSES).tolist() == [0, 1, 2, 3, 4, 5, 5]
    assert check_period("window_seconds", 1.5) == 1_500_000
    with pytest.raises(ConfigError, match="must be a number of seconds > 0, got nan"):
        check_period("window_seconds", float("nan"))


def test_timestamps_in_any_unit():
    stamps = pa.array([1_500_000_000, None], pa.timestamp("ns", "UTC"))
    micros, valid = timestamps_us(pa.table({"timestamp": stamps}))
    assert micros.tolist()[0] == 1_500_000 and valid.tolist() == [True, False]
    with pytest.raises(SchemaError, match="must be an Arrow timestamp"):
        timestamps_us(pa.table({"timestamp": [1.0]}))


def test_text_columns_round_trip():
    values = pa.array(["conn:a", "", "é→x", None]).slice(1)
    arrays = strings_to_arrays("t", values)
    assert arrays["t__offsets"].tolist() == [0, 0, 6, 6]
    assert arrays_to_strings("t", arrays).to_pylist() == ["", "é→x", ""]
    assert arrays_to_strings("t", strings_to_arrays("t", pa.array([], pa.string()))).to_pylist() == []
    damaged = {"t__utf8": np.frombuffer(b"ab", dtype=np.uint8), "t__offsets": np.array([0, 5])}
    with pytest.raises(SchemaError, match="text column 't' is damaged"):
        arrays_to_strings("t", damaged)
    with pytest.raises(SchemaError, match="damaged"):
        arrays_to_strings("t", {"t__utf8": np.array([0xFF], dtype=np.uint8),
                                "t__offsets": np.array([0, 1])})
