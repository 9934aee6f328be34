"""Alerts and incidents files, read back from Python as Arrow tables (pandas where installed).

    alerts = read_alerts("alerts.parquet", alerts_only=True)    # pyarrow.Table
    incidents = read_incidents(incidents_path("alerts.parquet"))
    frame = as_pandas(incidents)                                 # needs the pandas extra

Both files are Parquet, or JSON Lines when the name ends in .jsonl or .json (as `score` wrote
them); the incidents of `alerts.parquet` are in `alerts.incidents.parquet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from training.artifacts.atomic import atomic_write
from training.errors import ConfigError, SchemaError
from training.scoring.alerts import OUTPUT_SCHEMA
from training.scoring.incidents import INCIDENT_SCHEMA, WINDOW_SECONDS, build_incidents
from training.scoring.json_blocks import with_long_lines
from training.scoring.scored_units import ScoredUnits
from training.scoring.unit_files import check_fields, conform, open_units, reading
from training.scoring.unit_files import is_jsonl_name as _jsonl


def incidents_path(alerts_path: str | Path) -> Path:
    """Where `score` writes the incidents of the alerts file `alerts_path`."""
    path = Path(alerts_path)
    return path.with_name(f"{path.stem}.incidents{path.suffix}")


def _read(path: str | Path, schema: pa.Schema, what: str) -> pa.Table:
    path = Path(path)
    with reading(path, what):
        if _jsonl(path):
            if path.stat().st_size == 0:
                return schema.empty_table()
            check_fields(path, what)
            options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
            return with_long_lines(lambda blocks: pj.read_json(
                path, read_options=blocks, parse_options=options), path).select(schema.names)
        return conform(pq.read_table(path), schema)


def read_alerts(path: str | Path, *, alerts_only: bool = False) -> pa.Table:
    """The scored units of a `score` output file (`training.scoring.alerts.OUTPUT_SCHEMA`,
    then a fused score's `tail_<layer>` columns); `alerts_only` keeps the units that alert.

    Raises:
        ConfigError: no such file; SchemaError: the file is not a scoring output.
    """
    table = _with_tails(_read(path, OUTPUT_SCHEMA, "scored units"), Path(path))
    return table.filter(pc.field("is_alert")) if alerts_only else table


_TAIL = "tail_"  # a fused score's per-layer tail probabilities (`training.scoring.fused`)


def _with_tails(table: pa.Table, path: Path) -> pa.Table:
    """`table` with the file's `tail_<layer>` columns after the schema's (a fused score's)."""
    if _jsonl(path):
        if not table.num_rows:
            return table
        with path.open("rb") as handle:
            first = next(line for line in handle if line.strip())
        names = [name for name in orjson.loads(first) if name.startswith(_TAIL)]
        if not names:
            return table
        schema = pa.schema([pa.field(name, pa.float64()) for name in names])
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        try:
            tails = with_long_lines(lambda blocks: pj.read_json(
                path, read_options=blocks, parse_options=options), path)
        except pa.ArrowInvalid as exc:
            raise SchemaError(f"{path}: not a scored units file written by score ({exc})") \
                from None
        if tails.num_rows != table.num_rows:  # a live run appended between the two reads
            raise SchemaError(f"{path}: it grew while it was read (a live run appending to "
                              "it?); read it again")
    else:
        names = [name for name in pq.read_schema(path).names if name.startswith(_TAIL)]
        if not names:
            return table
        tails = pq.read_table(path, columns=names)
    for name in names:
        table = table.append_column(name, tails[name].cast(pa.float64()))
    return table


def read_incidents(path: str | Path) -> pa.Table:
    """The incidents `score` wrote (`training.scoring.incidents.INCIDENT_SCHEMA`)."""
    return _read(path, INCIDENT_SCHEMA, "incidents")


def write_table(table: pa.Table, path: str | Path) -> Path:
    """`table` to Parquet, or JSON Lines for a .jsonl/.json name, atomically."""
    path = Path(path)
    with atomic_write(path) as handle:
        if _jsonl(path):
            for batch in table.to_batches():
                handle.write(b"".join(orjson.dumps(row) + b"\n" for row in batch.to_pylist()))
        else:
            pq.write_table(table, handle)
    return path


def write_incidents(alerts_path: str | Path,
                    units: Sequence[pa.Table | ScoredUnits] | None = None) -> tuple[int, str]:
    """Group the alerts of a `score` output file (or the scored `units` given, unit rows of
    several layers) into incidents, written beside it (`incidents_path`) with the alerts page
    (`training.scoring.alerts_page`); returns (how many, where). Of the file, only the
    columns that rank units and the rows the incidents and page show are read
    (`training.scoring.unit_files`), not whole rows of every unit."""
    from training.scoring.alerts_page import write_alerts_page

    units = [open_units(alerts_path)] if units is None else units
    incidents = build_incidents(units)
    written = write_table(incidents, incidents_path(alerts_path))
    write_alerts_page(incidents, alerts_path, units)
    return incidents.num_rows, str(written)


def incidents_across_layers(alert_paths: list[str | Path], output: str | Path,
                            window_seconds: float = WINDOW_SECONDS) -> pa.Table:
    """One incidents table from the alerts files of several models (say one per layer),
    written to `output` (Parquet or JSON Lines) with its alerts page beside it.

    Raises:
        ConfigError: no alerts file given, or one is missing; SchemaError: one is not a
            `score` output.
    """
    from training.scoring.alerts_page import write_alerts_page

    if not alert_paths:
        raise ConfigError("alert_paths must name at least one alerts file written by score")
    units = [open_units(p) for p in alert_paths]
    incidents = build_incidents(units, window_seconds)
    write_table(incidents, output)
    write_alerts_page(incidents, output, units)
    return incidents


def as_pandas(table: pa.Table) -> Any:
    """The table as a pandas DataFrame (the optional pandas extra).

    Raises:
        ConfigError: pandas is not installed (the Arrow table works without it).
    """
    try:
        import pandas  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("pandas is not installed: pip install 'maximus-training[pandas]', "
                          "or use the Arrow table as it is") from None
    return table.to_pandas()
