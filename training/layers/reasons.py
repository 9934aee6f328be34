"""Reasons: the named features behind a unit's score, as the model's own additive terms.

A reason is one field (or aggregate) with its contribution to the score, the value observed in
the unit and what the model takes as typical (for an autoencoder, its reconstruction: the value
it expects after learning benign training data). A unit's contributions sum to its score
(SHAP's additivity; DESIGN.md principle 12). Each layer builds its reasons (`Layer.explain`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

REASON_TYPE = pa.struct([("field", pa.string()), ("contribution", pa.float64()),
                         ("observed", pa.string()), ("typical", pa.string())])
REASONS_KEPT = 5  # reasons an alert row keeps: the top of the ranking


@dataclass(frozen=True)
class Reason:
    """One named feature behind a score.

    Attributes:
        field: the source field or aggregate ("dest_port", "bytes_sent", "peer").
        contribution: its share of the score (the unit's reasons sum to the score).
        observed: its value in the unit, as text (None when unknown).
        typical: what the model takes as typical for it, as text (None when it has no view).
    """

    field: str
    contribution: float
    observed: str | None = None
    typical: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ranked(fields: list[str], contributions: np.ndarray, observed: list[str | None],
           typical: list[str | None]) -> list[Reason]:
    """The reasons of one unit, largest contribution first (ties keep the fields' order)."""
    order = np.argsort(-np.asarray(contributions, np.float64), kind="stable")
    return [Reason(fields[i], float(contributions[i]), observed[i], typical[i]) for i in order]


def reasons_column(reasons: list[list[Reason] | None]) -> pa.Array:
    """Per unit, its top `REASONS_KEPT` reasons as a list<struct> column (null: none given)."""
    rows = [None if r is None else [x.to_dict() for x in r[:REASONS_KEPT]] for r in reasons]
    return pa.array(rows, pa.list_(REASON_TYPE))
