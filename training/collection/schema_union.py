"""Concatenating event tables whose extra columns differ from source to source."""

from __future__ import annotations

import orjson
import pyarrow as pa

from training.collection.schema import CANONICAL_SCHEMA


def as_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as text: scalars cast, nested values as JSON."""
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else orjson.dumps(v, default=str).decode()
                         for v in column.to_pylist()], type=pa.string())


def concat_tables(tables: list[pa.Table]) -> pa.Table:
    """One table from many: missing columns become null, compatible types are widened, and a
    column whose types cannot be reconciled (80 here, "http" there) becomes text everywhere."""
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return CANONICAL_SCHEMA.empty_table()
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    kinds: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for name, type_ in zip(table.column_names, table.schema.types):
            if not pa.types.is_null(type_):
                kinds.setdefault(name, set()).add(type_)
    # Only the columns that cannot be concatenated on their own become text; the others (int64
    # here, double there) are still widened by the final concat.
    conflicting = {name for name, types in kinds.items()
                   if len(types) > 1 and not _concatenates(tables, name)}
    fixed = []
    for table in tables:
        for name in conflicting & set(table.column_names):
            index = table.column_names.index(name)
            table = table.set_column(index, name, as_text(table[name]))
        fixed.append(table)
    return pa.concat_tables(fixed, promote_options="permissive")


def _concatenates(tables: list[pa.Table], name: str) -> bool:
    """Whether column `name` of every table that has it concatenates without turning to text."""
    try:
        pa.concat_tables([t.select([name]) for t in tables if name in t.column_names],
                         promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True
