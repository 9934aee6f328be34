"""Detectors of one feature row per unit, and the views that cut those rows out of a layer's
batches.

A row detector (ECOD, kNN distance, an isolation forest, the plain autoencoder) sees one
feature vector per unit. The layer's batches stay what they are (a tensor of event vectors, a
PyG batch of window graphs, `(history, target, fit)` tuples); the detector's `inputs` names the
view that reads the rows out of one, and the rows training learns from:

| view | layer | batch | row per unit | width |
|---|---|---|---|---|
| vector | 1 (any per-event layer) | (events, dims) tensor, or a tuple whose first item it is | the event vector | dims |
| edge | 2 | PyG Batch | the edge's scaled features | edge_dim |
| edge_context | 2 | PyG Batch | edge features, then its source's and destination's node features | edge_dim + 2 node_dim |
| target | 3 | (history, target[, fit]) | the target bucket's scaled features | F |
| window | 3 | (history, target[, fit]) | the history (oldest first, flattened), then the target | (T + 1) F |

Each layer says which views its units offer and how wide they are (`Layer.row_views`), so
`Layer.build_detector(units, detector="iforest")` sizes any of them for any layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from training.detectors.base import Detector, _import_builtin_detectors
from training.errors import ConfigError, NotSupportedError, SchemaError


@dataclass(frozen=True)
class RowView:
    """How to read one row per unit out of a layer's batch.

    Attributes:
        name: the view's name (a detector's `inputs`).
        rows: batch -> (units, width) tensor, in the batch's unit order.
        fit_mask: batch -> (units,) bool tensor of the units training learns from, or None
            when the batch holds only those (layer 1's training batches).
    """

    name: str
    rows: Callable[[Any], torch.Tensor]
    fit_mask: Callable[[Any], torch.Tensor | None]


def _vector(batch: Any) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _edge_context(batch: Any) -> torch.Tensor:
    ends = batch.edge_index
    return torch.cat([batch.edge_attr, batch.x[ends[0]], batch.x[ends[1]]], dim=1)


def _window(batch: Any) -> torch.Tensor:
    history, target = batch[0], batch[1]  # (units, T, F), (units, F)
    return torch.cat([history.flatten(1), target], dim=1)


def _tuple_mask(batch: Any) -> torch.Tensor | None:
    return batch[2] if len(batch) > 2 else None


VIEWS: dict[str, RowView] = {view.name: view for view in (
    RowView("vector", _vector, lambda batch: None),
    RowView("edge", lambda batch: batch.edge_attr, lambda batch: getattr(batch, "fit_mask", None)),
    RowView("edge_context", _edge_context, lambda batch: getattr(batch, "fit_mask", None)),
    RowView("target", lambda batch: batch[1], _tuple_mask),
    RowView("window", _window, _tuple_mask),
)}

ROW_DETECTORS: dict[str, type[RowDetector]] = {}
BUILTIN_ROWS = ("ecod", "knn", "iforest", "autoencoder")  # modules of the package's own


def row_view(name: str) -> RowView:
    """The view called `name`; an unknown name lists the valid ones."""
    try:
        return VIEWS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"inputs must be one of {', '.join(VIEWS)}, got {name!r}") from None


def register_row_detector(cls: type[RowDetector]) -> type[RowDetector]:
    """Class decorator: make `cls` choosable by its `short_name` for any layer (and loadable
    from a sidecar: it is registered as a detector too)."""
    if not (isinstance(cls, type) and issubclass(cls, RowDetector)):
        raise ConfigError(f"register_row_detector takes a RowDetector subclass, got {cls!r}")
    name = getattr(cls, "short_name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{cls.__name__}.short_name must be a non-empty string, got {name!r}")
    known = ROW_DETECTORS.get(name)
    if known is not None and known is not cls:
        raise ConfigError(f"two row detectors are called {name!r}: {known.__name__} and "
                          f"{cls.__name__}")
    ROW_DETECTORS[name] = cls
    return cls


def row_detector_names() -> list[str]:
    """The short names of every registered row detector, sorted."""
    _import_builtin_detectors(BUILTIN_ROWS)
    return sorted(ROW_DETECTORS)


def row_detector(name: str) -> type[RowDetector]:
    """The row detector class called `name` ("ecod", "knn", "iforest", "autoencoder")."""
    _import_builtin_detectors(BUILTIN_ROWS)
    try:
        return ROW_DETECTORS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown row detector {name!r}; known: "
                          f"{', '.join(sorted(ROW_DETECTORS))}") from None


class RowDetector(Detector):
    """A detector scoring one feature row per unit, read through the view `inputs`.

    Args:
        input_dim: the width of a row (the view's width for the layer's units).
        inputs: the view's name (see the module docstring).
        init_args: the subclass's own constructor arguments (stored in the sidecar).

    Class attributes:
        short_name: the name a layer's config chooses it by (`detector = "ecod"`).

    Shapes:
        rows(batch): (units, input_dim); anomaly_score(batch): (units,);
        feature_terms(batch): (units, input_dim), summing to each unit's score.
    """

    short_name: ClassVar[str]
    loss_args = ("inputs",)  # the rows the error (or the fitted score) is of

    def __init__(self, *, input_dim: int, inputs: str = "vector", **init_args: Any) -> None:
        if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
            raise ConfigError(f"input_dim must be an integer >= 1, got {input_dim!r}")
        view = row_view(inputs)
        super().__init__(input_dim=input_dim, inputs=inputs, **init_args)
        self.input_dim = input_dim
        self.view = view

    def rows(self, batch: Any) -> torch.Tensor:
        """Every unit's row, (units, input_dim).

        Raises:
            SchemaError: the batch's rows are not `input_dim` wide.
        """
        x = self.view.rows(batch)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise SchemaError(f"{type(self).__name__} reads rows of {self.input_dim} "
                              f"{self.view.name!r} features; this batch gives shape "
                              f"{tuple(x.shape)}")
        return x

    def fit_rows(self, batch: Any) -> torch.Tensor:
        """The rows training learns from (those the batch's fit mask marks, when it has one)."""
        x, mask = self.rows(batch), self.view.fit_mask(batch)
        return x if mask is None else x[mask]

    def batch_size_of(self, batch: Any) -> int:
        mask = self.view.fit_mask(batch)
        return int(mask.sum()) if mask is not None else int(self.view.rows(batch).shape[0])

    def feature_terms(self, batch: Any) -> torch.Tensor:
        """Each unit's score split into one additive term per input feature (they sum to
        `anomaly_score`), for explaining an alert; (units, input_dim).

        Raises:
            NotSupportedError: the detector's score has no natural per-feature split.
        """
        raise NotSupportedError(f"{type(self).__name__} has no per-feature terms")
