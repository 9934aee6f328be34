"""The scored units of a `score` output file, read as incidents need them (`ScoredUnits`).

Parquet: the `NARROW` columns row group by row group, and of the rows asked for, only the row
groups that hold them. JSON Lines (a .jsonl or .json name): one pass parsing only the narrow
fields (pyarrow's reader with an explicit schema, other fields ignored: no array holds them),
and one that parses only the lines asked for. The narrow pass reads `reasons` along, one part
at a time, to note which layers explain (at most `MAX_EXPLAINED` units of a scored batch have
reasons), and keeps none of it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from training.errors import ConfigError, SchemaError
from training.scoring.alerts import OUTPUT_SCHEMA
from training.scoring.context import conform_structs
from training.scoring.json_blocks import with_long_lines
from training.scoring.scored_units import NARROW, ScoredUnits

# Columns that older score outputs lack (null when read back).
ADDED_LATER = ("reference_scores", "process", "command_line", "sensor_signature",
               "sensor_signature_id", "sensor_category", "sensor_severity")
# The fields every record of each file has: read with the other file's schema, a record
# would be a row of nulls.
_REQUIRED = {"scored units": ("unit", "score", "is_alert"), "incidents": ("rank", "entity")}
_WHAT = "scored units"


def is_jsonl_name(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".json")


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Errors while reading the `what` file `path` as ConfigError (none there) or SchemaError
    (not such a file)."""
    try:
        yield
    except FileNotFoundError:
        raise ConfigError(f"{path}: no {what} file there") from None
    except (pa.ArrowInvalid, KeyError, ValueError) as exc:
        article = "an" if what[0] in "aeiou" else "a"
        raise SchemaError(f"{path}: not {article} {what} file written by score ({exc})") from None


def check_fields(path: Path, what: str) -> None:
    """Refuse a JSON Lines file whose first record lacks a field every `what` record has."""
    with path.open("rb") as handle:
        first = next((line for line in handle if line.strip()), b"{}")
    record = orjson.loads(first)
    if not isinstance(record, dict):
        raise ValueError(f"its first line is a JSON {type(record).__name__}, not an object")
    missing = [name for name in _REQUIRED[what] if name not in record]
    if missing:
        raise ValueError(f"its first record has no {' or '.join(missing)}")


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table`, read from a Parquet file `score` wrote, as `schema`: the columns and struct
    fields added since it was written null."""
    for name in ADDED_LATER:
        if name in schema.names and name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
    for name in ("top_events", "top"):
        if name in schema.names and name in table.column_names:
            at = table.column_names.index(name)
            struct = schema.field(name).type.value_type
            table = table.set_column(at, name, conform_structs(table[name], struct))
    return table.select(schema.names).cast(schema)


def open_units(path: str | Path) -> ScoredUnits:
    """The scored units of the `score` output `path`, their narrow columns read.

    Raises:
        ConfigError: no such file; SchemaError: the file is not a scoring output.
    """
    path = Path(path)
    with reading(path, _WHAT):
        return JsonlUnits(path) if is_jsonl_name(path) else ParquetUnits(path)


def _schema(columns: Sequence[str] | None) -> pa.Schema:
    names = OUTPUT_SCHEMA.names if columns is None else columns
    return pa.schema([OUTPUT_SCHEMA.field(n) for n in names if n in OUTPUT_SCHEMA.names])


_READ_NARROW = _schema((*NARROW, "reasons"))


def _narrow_of(parts: Iterable[pa.Table]) -> tuple[pa.Table, set[str]]:
    """The narrow columns of `parts` (`_READ_NARROW` tables) and the layers with reasons."""
    kept, explained = [], set()
    for part in parts:
        with_reasons = part.filter(pc.is_valid(part["reasons"]))["layer"]
        explained.update(x for x in pc.unique(with_reasons).to_pylist() if x is not None)
        kept.append(part.drop_columns(["reasons"]))
    narrow = _READ_NARROW.remove(_READ_NARROW.get_field_index("reasons"))
    return pa.concat_tables(kept) if kept else narrow.empty_table(), explained


class ParquetUnits(ScoredUnits):
    """The scored units of a Parquet `score` output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with pq.ParquetFile(path) as parquet:
            names = parquet.schema_arrow.names
            missing = [n for n in OUTPUT_SCHEMA.names if n not in names and n not in ADDED_LATER]
            if missing:
                raise ValueError(f"it has no {', '.join(missing)} column")
            have = [n for n in _READ_NARROW.names if n in names]
            self._narrow, self._explained = _narrow_of(
                conform(parquet.read_row_group(i, columns=have), _READ_NARROW)
                for i in range(parquet.num_row_groups))

    @property
    def narrow(self) -> pa.Table:
        return self._narrow

    def take(self, at: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        schema, at = _schema(columns), np.asarray(at, np.int64)
        parts = []
        with reading(self.path, _WHAT), pq.ParquetFile(self.path) as parquet:
            have = [n for n in schema.names if n in parquet.schema_arrow.names]
            sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
            ends = np.cumsum(sizes)
            group = np.searchsorted(ends, at, side="right")  # the row group of each position
            for g in np.unique(group).tolist():
                local = at[group == g] - (ends[g] - sizes[g])
                parts.append(conform(parquet.read_row_group(g, columns=have).take(local), schema))
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def explained_layers(self) -> set[str]:
        return set(self._explained)


class JsonlUnits(ScoredUnits):
    """The scored units of a JSON Lines `score` output (blank lines are no rows, as for
    pyarrow's reader)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.stat().st_size == 0:
            self._narrow, self._explained = _narrow_of([])
            return
        check_fields(path, _WHAT)
        options = pj.ParseOptions(explicit_schema=_READ_NARROW,
                                  unexpected_field_behavior="ignore")
        self._narrow, self._explained = with_long_lines(lambda blocks: _narrow_of(
            pa.Table.from_batches([batch]) for batch in pj.open_json(
                path, read_options=blocks, parse_options=options)), path)

    @property
    def narrow(self) -> pa.Table:
        return self._narrow

    def take(self, at: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        schema, wanted = _schema(columns), set(np.asarray(at).tolist())
        lines = []
        with reading(self.path, _WHAT):
            with self.path.open("rb") as handle:
                row = 0
                for line in handle:
                    if len(lines) == len(wanted):
                        break
                    if not line.strip():
                        continue
                    if row in wanted:
                        lines.append(line if line.endswith(b"\n") else line + b"\n")
                    row += 1
            if not lines:
                return schema.empty_table()
            options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
            data = b"".join(lines)
            return with_long_lines(lambda blocks: pj.read_json(
                io.BytesIO(data), read_options=blocks, parse_options=options), data
            ).select(schema.names)

    def explained_layers(self) -> set[str]:
        return set(self._explained)
