"""Layer-1 variational autoencoder: compresses each event's 128-dim vector; events it cannot
reconstruct well are anomalous.

Architecture (defaults): encoder 128 -> 96 -> 96 -> (mean, log-variance) of a 64-dim latent,
decoder 64 -> 96 -> 96 -> 128 with a sigmoid output (features are in [0, 1]); ReLU and dropout
after each hidden layer. Loss per event: reconstruction error summed over features (squared
error, or binary cross-entropy) + beta * KL(q(z|x) || N(0, I)); batch loss is its mean.

Why beta is 0.01 (it was 1; chosen on the detection harness's development captures,
BENCHMARKS.md): a squared error on features in [0, 1] is a likelihood so flat that a KL weight
of 1 wins over it. The code collapsed (0 to 3 of its 64 dims in use), the decoder returned
about the training mean, and the score became the distance to that mean in the few one-hot dims
where benign test events differ from most training events: below chance on IoT-23 42-1 and
44-1 (ROC-AUC 0.11 and 0.49). With beta 0.01 42 to 52 dims are in use and the error is about the
event again (0.53 and 0.99). The weight only shapes training, so models trained with beta 1
load and score as before.

The error weights (`error_floor`, off by default; BENCHMARKS.md "Layer-1 error weights"): with
the plain sum an unexpected one-hot costs at most about 1 per dim, so a connection state or
protocol that benign training never had, or a volume a decade past the largest, can stay under
the 99th percentile of benign scores. With `error_floor` set, each dim's error is divided by
its mean over the benign validation events plus the floor (fitted when training ends), then
all are scaled so that the mean benign score stays the plain sum's: with 0.01 a dim benign
events reconstruct well (a value they never set) weighs up to 100 times one whose mean error is
0.99 or more, and every one-field case of training/tests/test_layer1_reasons.py alerts. They
are off by default because on the development captures they cost the fused score more than
they gave layer 1: benign events that differ from the training events (IoT-23 42-1's) set
those dims too. The training loss is never weighed; a model saved before the weights existed
scores with the plain sum.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training.detectors.base import Detector, register_detector
from training.errors import ConfigError, TrainingError

logger = logging.getLogger(__name__)

RECONSTRUCTIONS = ("mse", "bce")
SCORES = ("reconstruction", "elbo")


def _mlp(sizes: Sequence[int], dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout for each consecutive pair of `sizes`."""
    layers: list[nn.Module] = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def _without_dropout(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The layers in eval mode: Dropout (an identity there) left out, and Linear and ReLU as
    their functions rather than module calls (the same kernels, so the same values; a module
    call's hook handling is a third of a one-event score)."""
    for layer in layers:
        if isinstance(layer, nn.Linear):
            x = F.linear(x, layer.weight, layer.bias)
        elif isinstance(layer, nn.ReLU):
            x = F.relu(x)
        elif not isinstance(layer, nn.Dropout):
            x = layer(x)
    return x


@register_detector
class Layer1VAE(Detector):
    """VAE anomaly detector for layer-1 event vectors.

    Args:
        input_dim: features per event.
        hidden_dim: width of the hidden layers: an int (used `num_hidden_layers` times) or a
            list of widths, encoder order (the decoder mirrors it).
        latent_dim: size of the latent code.
        dropout: dropout probability after each hidden layer, in [0, 1).
        num_hidden_layers: hidden layers on each side when `hidden_dim` is an int (>= 1).
        beta: weight of the KL term (beta-VAE), >= 0.
        reconstruction: "mse" (squared error on the sigmoid output) or "bce" (binary
            cross-entropy on the logits).
        score: `anomaly_score` is the "reconstruction" error of the mean code, or the
            negative "elbo" (reconstruction + KL, beta 1).
        error_floor: None (the default): the score is the plain sum of the dims' errors; a
            number > 0: it weighs each dim's error by 1 / (its mean benign validation error +
            error_floor), fitted by `fit_after_training` (module docstring; 0.01 measured).

    Shapes:
        x: (batch, input_dim), values in [0, 1].
        encode(x): mean and log-variance, each (batch, latent_dim).
        decode(z): (batch, input_dim) in (0, 1).
        forward(x): (recon (batch, input_dim), mean, logvar (batch, latent_dim)).
        anomaly_score(x): (batch,).

    A batch is the feature tensor, or a tuple whose first item is it (e.g. features, labels).
    In train mode the code is sampled (reparameterization); in eval mode the mean is used, so
    validation losses are deterministic. `anomaly_score` always decodes the mean code; call
    `model.eval()` first so that dropout is off too.
    """

    added_state = ("error_weights",)  # files saved before it score with the plain sum
    loss_args = ("beta", "reconstruction")  # the loss is recon + beta * KL

    def __init__(self, input_dim: int = 128, hidden_dim: int | Sequence[int] = 96,
                 latent_dim: int = 64, dropout: float = 0.2, *, num_hidden_layers: int = 2,
                 beta: float = 0.01, reconstruction: str = "mse",
                 score: str = "reconstruction", error_floor: float | None = None) -> None:
        widths = ([hidden_dim] * num_hidden_layers if isinstance(hidden_dim, int)
                  else list(hidden_dim))
        checks = [
            ("input_dim", input_dim >= 1, ">= 1", input_dim),
            ("hidden_dim", bool(widths) and all(w >= 1 for w in widths),
             ">= 1 (or a non-empty list of widths >= 1)", hidden_dim),
            ("latent_dim", latent_dim >= 1, ">= 1", latent_dim),
            ("dropout", 0.0 <= dropout < 1.0, "in [0, 1)", dropout),
            ("num_hidden_layers", num_hidden_layers >= 1, ">= 1", num_hidden_layers),
            ("beta", beta >= 0, ">= 0", beta),
            ("reconstruction", reconstruction in RECONSTRUCTIONS,
             f"one of {', '.join(RECONSTRUCTIONS)}", reconstruction),
            ("score", score in SCORES, f"one of {', '.join(SCORES)}", score),
            ("error_floor", error_floor is None or 0 < error_floor < math.inf,
             "> 0 and finite, or None", error_floor),
        ]
        for name, ok, rule, value in checks:
            if not ok:
                raise ConfigError(f"{name} must be {rule}, got {value!r}")
        super().__init__(input_dim=input_dim,
                         hidden_dim=hidden_dim if isinstance(hidden_dim, int) else widths,
                         latent_dim=latent_dim, dropout=dropout,
                         num_hidden_layers=num_hidden_layers, beta=beta,
                         reconstruction=reconstruction, score=score, error_floor=error_floor)
        self.input_dim, self.latent_dim, self.beta = input_dim, latent_dim, float(beta)
        self.reconstruction, self.score = reconstruction, score
        self.encoder = _mlp([input_dim, *widths], dropout)
        self.fc_mean = nn.Linear(widths[-1], latent_dim)
        self.fc_logvar = nn.Linear(widths[-1], latent_dim)
        self.decoder = _mlp([latent_dim, *reversed(widths)], dropout)
        self.output = nn.Linear(widths[0], input_dim)
        self.error_floor = error_floor
        # Per-dim weights of the score's errors; empty (the plain sum) until fitted.
        self.register_buffer("error_weights", torch.empty(0))

    # ------------------------------------------------------------ the model

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)  # (batch, widths[-1])
        return self.fc_mean(h), self.fc_logvar(h)

    @staticmethod
    def reparameterize(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mean + sigma * eps, eps ~ N(0, I)."""
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.output(self.decoder(z))  # (batch, input_dim)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encode(x)
        z = self.reparameterize(mean, logvar) if self.training else mean
        return self.decode(z), mean, logvar

    def get_latent(self, x: torch.Tensor) -> torch.Tensor:
        """The mean latent code of `x`, (batch, latent_dim)."""
        return self.encode(x)[0]

    # ------------------------------------------------------ Detector contract

    @staticmethod
    def _features(batch: Any) -> torch.Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def _terms(self, x: torch.Tensor, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-event reconstruction error and KL divergence, each (batch,)."""
        mean, logvar = self.encode(x)
        logits = self.decode_logits(self.reparameterize(mean, logvar) if sample else mean)
        kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1)
        return self._reconstruction_error(logits, x), kl

    def _reconstruction_error(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(batch,) error of the decoded `logits` against `x` (the training loss's)."""
        return self._dim_errors(logits, x).sum(dim=1)

    def _dim_errors(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(batch, input_dim) error of each dim of the decoded `logits` against `x`."""
        if self.reconstruction == "mse":
            return (torch.sigmoid(logits) - x).pow(2)
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none")

    def _score_error(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(batch,) the score's error: each dim's weighed by `error_weights` once fitted."""
        errors = self._dim_errors(logits, x)
        if self.error_weights.numel():  # a product and a row sum: no batch size changes a score
            errors = errors * self.error_weights
        return errors.sum(dim=1)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # A file saved before the weights existed has none: the plain sum, as it scored then.
        # Otherwise take the saved size (fitted: input_dim; not fitted: empty) before the copy.
        weights = state_dict.setdefault(prefix + "error_weights", torch.empty(0))
        if weights.numel() not in (0, self.input_dim) or weights.dim() != 1:
            raise ValueError(f"error_weights must have 0 or {self.input_dim} values, got shape "
                             f"{tuple(weights.shape)}")
        self.error_weights = torch.empty_like(weights, device=self.error_weights.device)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def fit_after_training(self, batches: Iterable[Any]) -> None:
        """Fit `error_weights` on benign validation batches (module docstring)."""
        if self.error_floor is None:
            return
        total, count = None, 0
        for batch in batches:
            x = self._features(batch)
            errors = self._dim_errors(self.decode_logits(self.encode(x)[0]), x)
            total = errors.sum(dim=0) if total is None else total + errors.sum(dim=0)
            count += errors.shape[0]
        if not count:
            logger.warning("no validation batches: the score's error weights are not fitted "
                           "(the plain sum)")
            return
        mean = total / count
        if not (torch.isfinite(mean).all() and mean.sum() > 0):
            raise TrainingError(f"the benign validation errors are {mean.sum().item()} in all: "
                                "check the validation data for NaN or inf")
        weights = 1.0 / (mean + self.error_floor)
        # Scaled so that the mean benign score stays the plain sum's: scores keep their size
        # (and float32 its precision), and only their order among dims changes.
        self.error_weights = weights * (mean.sum() / (mean * weights).sum().clamp_min(1e-12))

    def training_step(self, batch: Any) -> torch.Tensor:
        recon, kl = self._terms(self._features(batch), sample=self.training)
        return (recon + self.beta * kl).mean()

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        recon, kl = self._terms(self._features(batch), sample=self.training)
        recon, kl = recon.mean(), kl.mean()
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    def anomaly_score(self, batch: Any) -> torch.Tensor:
        """Per-event reconstruction error (or negative ELBO); higher = more anomalous.

        Shapes:
            returns (batch,), float32.
        """
        x = self._features(batch)
        if self.training or self.score == "elbo":
            mean, logvar = self.encode(x)
            recon = self._score_error(self.decode_logits(mean), x)
            if self.score == "elbo":
                recon = recon - 0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1)
            return recon.float()
        # Scoring in eval mode: the mean code only, no KL term and no Dropout calls (identity
        # here). Same scores; one event's cost is mostly per-call overhead, so this halves it.
        h = _without_dropout(self.encoder, x)  # (batch, widths[-1])
        z = F.linear(h, self.fc_mean.weight, self.fc_mean.bias)  # (batch, latent_dim)
        h = _without_dropout(self.decoder, z)
        logits = F.linear(h, self.output.weight, self.output.bias)  # (batch, input_dim)
        return self._score_error(logits, x).float()

    def feature_terms(self, batch: Any) -> torch.Tensor:
        """The per-feature reconstruction error terms of `anomaly_score` (eval mode: the mean
        code), plus the KL divergence as a last term when the score is the negative ELBO.

        Shapes:
            returns (batch, input_dim), or (batch, input_dim + 1) with score "elbo".
        """
        x = self._features(batch)
        mean, logvar = self.encode(x)
        logits = self.decode_logits(mean)
        terms = self._dim_errors(logits, x)  # (batch, input_dim)
        if self.error_weights.numel():
            terms = terms * self.error_weights
        if self.score == "elbo":
            kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1, keepdim=True)
            terms = torch.cat([terms, kl], dim=1)
        return terms.float()

    def reconstruct(self, batch: Any) -> torch.Tensor:
        """The decoded mean code of each row: what the model expects the input to be.

        Shapes:
            returns (batch, input_dim) in (0, 1).
        """
        return torch.sigmoid(self.decode_logits(self.encode(self._features(batch))[0]))
