"""Parquet: a file or a directory of files (each file read with its own schema).

Positions count rows, so a resumed read skips whole row groups and slices the first one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.errors import SourceError
from training.sources.base import FileSource, RawBatch
from training.sources.jsonparse import flatten_structs

ROWS_PER_BATCH = 131_072


class ParquetFileSource(FileSource):
    """Apache Parquet files."""

    patterns: ClassVar[tuple[str, ...]] = ("*.parquet", "*.parq", "*.pq")

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        try:
            reader = pq.ParquetFile(stream)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{stream}: not a readable Parquet file: {exc}") from exc
        metadata = reader.metadata
        first_row, skip_groups = 0, 0
        while (skip_groups < metadata.num_row_groups and
               first_row + metadata.row_group(skip_groups).num_rows <= start["record"]):
            first_row += metadata.row_group(skip_groups).num_rows
            skip_groups += 1
        groups = list(range(skip_groups, metadata.num_row_groups))
        row = first_row
        try:
            for batch in reader.iter_batches(batch_size=ROWS_PER_BATCH, row_groups=groups):
                table = flatten_structs(pa.Table.from_batches([batch]))
                skip = max(0, start["record"] - row)
                begin = row + skip
                row += table.num_rows
                table = table.slice(skip)
                if table.num_rows == 0:
                    continue
                records = np.arange(begin, row, dtype=np.int64)
                yield RawBatch(
                    table=table,
                    stream=stream,
                    lines=records + 1,
                    records=records,
                    start={"offset": 0, "line": begin + 1, "record": begin},
                    end={"offset": 0, "line": row + 1, "record": row},
                )
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{stream}: corrupt Parquet data after row {row}: {exc}") from exc
