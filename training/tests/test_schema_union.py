"""Tests for training.collection.schema_union: concatenating tables whose extra columns differ."""

from __future__ import annotations

import pyarrow as pa
import pytest

from training.collection.schema import CANONICAL_SCHEMA
from training.collection.schema_union import as_text, concat_tables


def test_different_extra_columns_are_filled_with_nulls() -> None:
    a = pa.table({"event_id": ["a1", "a2"], "zeek_uid": ["C1", None]})
    b = pa.table({"event_id": ["b1"], "signature_id": pa.array([2001], pa.int64())})
    result = concat_tables([a, b])
    assert result.schema == pa.schema(
        [("event_id", pa.string()), ("zeek_uid", pa.string()), ("signature_id", pa.int64())])
    assert result.to_pydict() == {
        "event_id": ["a1", "a2", "b1"],
        "zeek_uid": ["C1", None, None],
        "signature_id": [None, None, 2001],
    }


def test_int64_and_double_widen_to_double() -> None:
    a = pa.table({"score": pa.array([1, None], pa.int64())})
    b = pa.table({"score": pa.array([2.5])})
    result = concat_tables([a, b])
    assert result.schema.field("score").type == pa.float64()
    assert result["score"].to_pylist() == [1.0, None, 2.5]


def test_null_typed_column_takes_the_other_type() -> None:
    a = pa.table({"x": pa.nulls(2)})
    b = pa.table({"x": pa.array([7], pa.int64())})
    result = concat_tables([a, b])
    assert result.schema.field("x").type == pa.int64()
    assert result["x"].to_pylist() == [None, None, 7]


def test_int_and_string_column_becomes_text_everywhere() -> None:
    a = pa.table({"id": ["a", "b"], "app": pa.array([80, None], pa.int64())})
    b = pa.table({"id": ["c"], "app": ["http"]})
    c = pa.table({"id": ["d"], "app": pa.array([443], pa.int32())})
    result = concat_tables([a, b, c])
    assert result.schema == pa.schema([("id", pa.string()), ("app", pa.string())])
    assert result.to_pydict() == {"id": ["a", "b", "c", "d"], "app": ["80", None, "http", "443"]}


def test_compatible_columns_still_widen_when_another_column_conflicts() -> None:
    a = pa.table({"app": pa.array([80], pa.int64()), "score": pa.array([1], pa.int64())})
    b = pa.table({"app": ["http"], "score": [0.5]})
    result = concat_tables([a, b])
    assert result.schema == pa.schema([("app", pa.string()), ("score", pa.float64())])
    assert result.to_pydict() == {"app": ["80", "http"], "score": [1.0, 0.5]}


def test_list_column_conflicting_with_string_becomes_json_text() -> None:
    a = pa.table({"tags": pa.array([["scan", "tcp"], None, [], ["x\"y"]], pa.list_(pa.string()))})
    b = pa.table({"tags": ["plain"]})
    result = concat_tables([a, b])
    assert result.schema.field("tags").type == pa.string()
    assert result["tags"].to_pylist() == ['["scan","tcp"]', None, "[]", '["x\\"y"]', "plain"]


def test_struct_column_conflicting_with_int_becomes_json_text() -> None:
    a = pa.table({"dns": pa.array([{"qtype": 1, "rcode": None}])})
    b = pa.table({"dns": pa.array([5], pa.int64())})
    assert concat_tables([a, b])["dns"].to_pylist() == ['{"qtype":1,"rcode":null}', "5"]


@pytest.mark.parametrize("tables", [[], [pa.table({})], [pa.table({}), pa.table({})]])
def test_no_columns_gives_the_canonical_empty_table(tables: list[pa.Table]) -> None:
    result = concat_tables(tables)
    assert result.schema == CANONICAL_SCHEMA
    assert result.num_rows == 0
    assert result.equals(CANONICAL_SCHEMA.empty_table())


def test_column_less_tables_are_ignored() -> None:
    a = pa.table({"x": pa.array([1], pa.int64())})
    assert concat_tables([pa.table({}), a, pa.table({})]).to_pydict() == {"x": [1]}


def test_as_text() -> None:
    assert as_text(pa.array([1, None, -3], pa.int64())).to_pylist() == ["1", None, "-3"]
    assert as_text(pa.chunked_array([[1.5], [None]])).to_pylist() == ["1.5", None]
    nested = pa.chunked_array([[[1, 2]], [None, []]], pa.list_(pa.int64()))
    assert as_text(nested).to_pylist() == ["[1,2]", None, "[]"]
    assert as_text(pa.array([{"a": "b"}])).to_pylist() == ['{"a":"b"}']
