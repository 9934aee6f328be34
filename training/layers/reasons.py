"""Reasons: the named features behind a unit's score, as the model's own additive terms.

A reason is one field (or aggregate) with its contribution to the score, the value observed in
the unit and what the model takes as typical (for an autoencoder, its reconstruction: the value
it expects after learning benign training data). A unit's contributions sum to its score
(SHAP's additivity; DESIGN.md principle 12). Each layer builds its reasons (`Layer.explain`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from training.errors import NotSupportedError

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
        typical: what the model takes as typical for it, as text (None when it has no view;
            layer 1 writes it for an event's first `REASONS_KEPT` reasons only).
    """

    field: str
    contribution: float
    observed: str | None = None
    typical: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: `asdict` deep-copies field by field, and an alerting batch turns
        # thousands of reasons into rows (it was 40% of a live poll's time at 20% alerts).
        return {"field": self.field, "contribution": self.contribution,
                "observed": self.observed, "typical": self.typical}


def ranking(contributions: np.ndarray) -> np.ndarray:
    """The order of `ranked`: each unit's fields by contribution, largest first (ties keep the
    fields' order); its first `REASONS_KEPT` are the reasons a row keeps.

    Shapes:
        contributions: (fields,) or (units, fields); the result alike (field indices).
    """
    return np.argsort(-np.asarray(contributions, np.float64), axis=-1, kind="stable")


def ranked(fields: list[str], contributions: np.ndarray, observed: list[str | None],
           typical: list[str | None]) -> list[Reason]:
    """The reasons of one unit, largest contribution first (ties keep the fields' order)."""
    values = np.asarray(contributions, np.float64)
    order = ranking(values).tolist()
    values = values.tolist()  # Python floats at once: indexing numpy scalars one by one is slow
    return [Reason(fields[i], values[i], observed[i], typical[i]) for i in order]


def reasons_column(reasons: list[list[Reason] | None]) -> pa.Array:
    """Per unit, its top `REASONS_KEPT` reasons as a list<struct> column (null: none given)."""
    rows = [None if r is None else [x.to_dict() for x in r[:REASONS_KEPT]] for r in reasons]
    return pa.array(rows, pa.list_(REASON_TYPE))


Texts = Callable[[np.ndarray], list[list[str | None]]]  # (units, terms) values -> their texts


def explain_terms(model: Any, batches: Any, rows: np.ndarray, names: list[str],
                  texts: Texts | None = None) -> list[list[Reason]]:
    """Reasons from a detector's own score terms (`Detector.feature_terms`) over the batches a
    layer scores with, in scoring order, for units `rows`. Observed and typical values are the
    detector's `score_values` (for example a forecast and what came): read back by `texts`
    (the layer's, in real units: `training.features.readout.Readout.texts`), else as the
    model's numbers. The contributions are the terms as they are.

    Raises:
        NotSupportedError: the detector does not split its scores.
    """
    import torch

    from training.detectors.base import model_device, to_device

    model.eval()
    device = model_device(model)
    terms, observed, expected = [], [], []
    with torch.no_grad():
        for batch in batches:
            batch = to_device(batch, device)
            terms.append(model.feature_terms(batch).double().cpu().numpy())
            if hasattr(model, "score_values"):
                seen, wanted = model.score_values(batch)
                observed.append(seen.double().cpu().numpy())
                expected.append(wanted.double().cpu().numpy())
    rows = np.asarray(rows, np.int64)
    width = len(names)
    chosen = np.concatenate(terms)[rows] if terms else np.zeros((0, width))
    seen = np.concatenate(observed)[rows] if observed else np.full(chosen.shape, np.nan)
    wanted = np.concatenate(expected)[rows] if expected else np.full(chosen.shape, np.nan)
    if chosen.shape[1] != width:  # e.g. a row detector reading a view the layer does not name
        raise NotSupportedError(f"{type(model).__name__} gives {chosen.shape[1]} score terms "
                                f"on these units; the layer names {width}")
    read = texts or _texts
    seen, wanted = read(seen), read(wanted)
    return [ranked(names, chosen[i], seen[i], wanted[i]) for i in range(len(rows))]


def _texts(values: np.ndarray) -> list[list[str | None]]:
    return [[None if np.isnan(v) else f"{v:.4g}" for v in row] for row in values.tolist()]
