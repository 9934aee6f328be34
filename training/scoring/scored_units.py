"""Scored units as incidents read them: a few narrow columns of every unit, whole rows of a few.

Grouping and ranking (`training.scoring.incidents.build_incidents`) read the `NARROW` columns of
every scored unit; the best incidents' flows and top alerts, and the alerts page, read whole
rows, of their alerts only. A batch `score` output of a day of logs does not fit in memory
whole, so a file (`training.scoring.unit_files`) reads its narrow columns, then the few rows
asked for; a table in memory (the Python API, the pipeline's and live scoring's alerts) is the
same thing without the reads (`TableUnits`), so that both give the same incidents.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# What grouping and ranking read of each unit (`incidents.keyed_units`), and what finds a unit's
# row by name (the alerts page).
NARROW = ("unit", "time", "score", "threshold", "percentile", "reference_scores", "is_alert",
          "layer", "source_ip", "host", "user", "first_seen", "last_seen")


class ScoredUnits(ABC):
    """One table of scored units (`training.scoring.alerts.OUTPUT_SCHEMA` rows), in order."""

    @property
    @abstractmethod
    def narrow(self) -> pa.Table:
        """The `NARROW` columns (those it has) of every unit, in order."""

    @abstractmethod
    def take(self, at: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows at positions `at` (ascending, distinct), of `columns` (those it has; None:
        all)."""

    @abstractmethod
    def explained_layers(self) -> set[str]:
        """The layers of which some unit has reasons."""


class TableUnits(ScoredUnits):
    """Scored units held in memory."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    @property
    def narrow(self) -> pa.Table:
        return self.table.select([n for n in NARROW if n in self.table.column_names])

    def take(self, at: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        table = self.table if columns is None else self.table.select(
            [n for n in columns if n in self.table.column_names])
        return table.take(at)

    def explained_layers(self) -> set[str]:
        table = self.table
        if "reasons" not in table.column_names or "layer" not in table.column_names:
            return set()
        explained = table.filter(pc.is_valid(table["reasons"]))["layer"]
        return {x for x in pc.unique(explained).to_pylist() if x is not None}


def as_units(units: pa.Table | ScoredUnits | Sequence[pa.Table | ScoredUnits]
             ) -> list[ScoredUnits]:
    """`units` as a list of `ScoredUnits` (a table, one or several, held in memory)."""
    items = [units] if isinstance(units, (pa.Table, ScoredUnits)) else list(units)
    return [u if isinstance(u, ScoredUnits) else TableUnits(u) for u in items]
