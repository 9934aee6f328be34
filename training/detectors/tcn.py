"""Layer-3 detector: a temporal convolutional network forecasting an entity's next bucket.

Stacked residual blocks of dilated causal 1-D convolutions read the T buckets of history
(oldest first) and forecast the aggregates of the target bucket. Trained on benign windows
only, the forecast error of a bucket measures how little its entity's past explains it:

    score(window) = mean over features of (forecast - target)^2

in standardized units (the FeatureSpec's per-feature scaling, fitted on the training split), so
every feature weighs alike whatever its natural spread.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.detectors.base import Detector, register_detector
from training.errors import ConfigError


class CausalBlock(nn.Module):
    """Two dilated causal convolutions with ReLU and dropout, plus a residual connection.

    Shapes:
        input: (batch, in_channels, T); output: (batch, out_channels, T).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int,
                 dropout: float) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation  # left padding only: step t sees steps <= t
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, dilation=dilation)
        self.dropout = nn.Dropout1d(dropout)  # whole channels, as the TCN paper (and cheap)
        self.skip = (nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))
        h = self.dropout(F.relu(self.conv2(F.pad(h, (self.pad, 0)))))
        return F.relu(h + self.skip(x))


def _positive_ints(name: str, values: object) -> list[int]:
    if (not isinstance(values, Sequence) or isinstance(values, str) or not values
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values)):
        raise ConfigError(f"{name} must be a non-empty list of integers >= 1, got {values!r}")
    return list(values)


@register_detector
class Layer3TCN(Detector):
    """Dilated causal TCN forecasting the target bucket from the history.

    Args:
        input_dim: bucket features F (11).
        channels: output channels of each residual block (16 x 4 did as well as 32 x 4 on the
            development sets, in half the time; see BENCHMARKS.md).
        kernel_size: convolution width (>= 2).
        dilations: dilation of each block (same length as `channels`); default 1, 2, 4, ...
            The receptive field is 1 + 2 * (kernel_size - 1) * sum(dilations) buckets.
        dropout: dropout inside the blocks, in [0, 1).

    Shapes:
        batch: (history (batch, T, input_dim), target (batch, input_dim)[, fit (batch,) bool:
        the windows the loss counts, e.g. the benign ones of a validation batch]);
        forward: (batch, input_dim); anomaly_score: (batch,).
    """

    def __init__(self, *, input_dim: int = 11, channels: Sequence[int] = (16, 16, 16, 16),
                 kernel_size: int = 3, dilations: Sequence[int] | None = None,
                 dropout: float = 0.1) -> None:
        if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
            raise ConfigError(f"input_dim must be an integer >= 1, got {input_dim!r}")
        channels = _positive_ints("channels", channels)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 2:
            raise ConfigError(f"kernel_size must be an integer >= 2, got {kernel_size!r}")
        dilations = (_positive_ints("dilations", dilations) if dilations is not None
                     else [2 ** i for i in range(len(channels))])
        if len(dilations) != len(channels):
            raise ConfigError(f"dilations must have one entry per block ({len(channels)} "
                              f"channels), got {len(dilations)}")
        if (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
                or not 0 <= dropout < 1):
            raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
        super().__init__(input_dim=input_dim, channels=channels, kernel_size=kernel_size,
                         dilations=dilations, dropout=dropout)
        widths = [input_dim, *channels]
        self.blocks = nn.Sequential(*(CausalBlock(widths[i], widths[i + 1], kernel_size,
                                                  dilations[i], dropout)
                                      for i in range(len(channels))))
        self.head = nn.Linear(channels[-1], input_dim)
        self.receptive_field = 1 + 2 * (kernel_size - 1) * sum(dilations)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """Forecast of the target bucket from `history` (batch, T, F) -> (batch, F)."""
        h = self.blocks(history.transpose(1, 2))  # (batch, channels, T)
        return self.head(h[:, :, -1])  # the last step has seen the whole history

    def training_step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean squared forecast error over the batch's windows (those in `fit` when given)."""
        history, target, *fit = batch
        error = (self(history) - target).pow(2).mean(1)
        if not fit:
            return error.mean()
        return (error * fit[0]).sum() / fit[0].sum().clamp(min=1)

    def anomaly_score(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean squared standardized forecast error of each window's target, (batch,)."""
        history, target = batch[0], batch[1]
        return (self(history) - target).pow(2).mean(1)

    def feature_terms(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Each target feature's share of the score: its squared forecast error / features.

        Shapes:
            returns (batch, features).
        """
        history, target = batch[0], batch[1]
        return (self(history) - target).pow(2) / target.shape[1]

    def score_values(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """(observed, expected) per term: the target bucket and its forecast (standardized)."""
        return batch[1], self(batch[0])

    def batch_size_of(self, batch: tuple[torch.Tensor, ...]) -> int:
        return int(batch[2].sum()) if len(batch) > 2 else int(batch[0].shape[0])
