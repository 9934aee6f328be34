"""A plain autoencoder of one row per unit: the reference baseline "d-64-16-64-d".

    encoder: d -> 64 -> 16, decoder: 16 -> 64 -> d (ReLU after every layer but the output)
    score(x) = mean over features of (decoded - x)^2

Trained with the layer's usual trainer settings on the rows the view marks for fitting (the
benign units). No dropout, no variational code, no graph or sequence context: it is what a
user would write first, which is what makes it a fair yardstick for the layers' own networks.
The per-feature terms are the squared errors divided by d, so they sum to the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from training.detectors.base import register_detector
from training.detectors.rows import RowDetector, register_row_detector
from training.errors import ConfigError


@register_row_detector
@register_detector
class RowAutoencoder(RowDetector):
    """Plain autoencoder of the rows of view `inputs` (see the module docstring).

    Args:
        input_dim, inputs: see `RowDetector`.
        hidden: encoder widths, outermost first (the decoder mirrors them): (64, 16) gives
            d-64-16-64-d.

    Shapes:
        forward(x): (units, input_dim) -> (units, input_dim); anomaly_score: (units,);
        feature_terms: (units, input_dim).
    """

    short_name = "autoencoder"

    def __init__(self, *, input_dim: int, inputs: str = "vector",
                 hidden: Sequence[int] = (64, 16)) -> None:
        if (isinstance(hidden, str) or not isinstance(hidden, Sequence) or not hidden
                or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden)):
            raise ConfigError(f"hidden must be a non-empty list of integers >= 1, got {hidden!r}")
        super().__init__(input_dim=input_dim, inputs=inputs, hidden=list(hidden))
        widths = [input_dim, *hidden, *reversed(hidden[:-1]), input_dim]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])  # linear output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _errors(self, x: torch.Tensor) -> torch.Tensor:
        return (self(x) - x).pow(2) / self.input_dim  # (units, input_dim)

    def training_step(self, batch: Any) -> torch.Tensor:
        x = self.fit_rows(batch)
        if not len(x):  # a batch with nothing to fit adds 0 (it weighs 0)
            return self(x.new_zeros(1, self.input_dim)).sum() * 0
        return self._errors(x).sum(dim=1).mean()

    def anomaly_score(self, batch: Any) -> torch.Tensor:
        """Mean squared reconstruction error of each unit's row, (units,) float32."""
        return self._errors(self.rows(batch)).sum(dim=1).float()

    def feature_terms(self, batch: Any) -> torch.Tensor:
        return self._errors(self.rows(batch)).float()
