"""Layer-1 variational autoencoder: compresses each event's 128-dim vector; events it cannot
reconstruct well are anomalous.

Architecture (defaults): encoder 128 -> 96 -> 96 -> (mean, log-variance) of a 64-dim latent,
decoder 64 -> 96 -> 96 -> 128 with a sigmoid output (features are in [0, 1]); ReLU and dropout
after each hidden layer. Loss per event: reconstruction error summed over features (binary
cross-entropy, or squared error) + beta * KL(q(z|x) || N(0, I)); batch loss is its mean.

The score is each feature's reconstruction error divided by that feature's mean error on the
benign validation events (`error_scale`, fitted in every validation pass, so the best epoch's
weights come with their own scale), summed over features. Why both defaults (chosen on the
detection harness's development captures, BENCHMARKS.md): with squared error the likelihood is
so flat that the KL term wins, the code collapses (0 to 3 latent dims in use) and the decoder
returns about the training mean, so the score was the distance to the mean in the few one-hot
dims where the benign test events differ from most training events; cross-entropy is the
likelihood of [0, 1] features, and the standardized error keeps a dim that is always hard to
reconstruct from outweighing one that never is.

Models saved before `error_scale` existed load with it all ones: their plain summed error, as
before. Their sidecars name their reconstruction; a bare state dict of that time loaded into
`Layer1VAE()` (the seed's quick start) is taken as the default of that time, "mse".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training.detectors.base import Detector, register_detector
from training.errors import ConfigError

logger = logging.getLogger(__name__)

RECONSTRUCTIONS = ("mse", "bce")
SCORES = ("reconstruction", "elbo")
# A feature's standardized error divides by at least this: a mean validation error below it
# (0.01 squared) is a dim the model reconstructs exactly, not one whose errors should weigh more.
ERROR_FLOOR = 1e-4


def _mlp(sizes: Sequence[int], dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout for each consecutive pair of `sizes`."""
    layers: list[nn.Module] = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def _without_dropout(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        if not isinstance(layer, nn.Dropout):
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
        reconstruction: "bce" (binary cross-entropy on the logits) or "mse" (squared error
            on the sigmoid output); None: "bce" (module docstring for old state dicts).
        score: `anomaly_score` is the "reconstruction" error of the mean code, or the
            negative "elbo" (reconstruction + KL, beta 1).
        standardize: divide each feature's error in the score by its mean over the benign
            validation events (module docstring); False: the plain summed error.

    Shapes:
        x: (batch, input_dim), values in [0, 1].
        encode(x): mean and log-variance, each (batch, latent_dim).
        decode(z): (batch, input_dim) in (0, 1).
        forward(x): (recon (batch, input_dim), mean, logvar (batch, latent_dim)).
        anomaly_score(x): (batch,).
        error_scale (buffer): (input_dim,), all ones until a validation pass fits it.

    A batch is the feature tensor, or a tuple whose first item is it (e.g. features, labels).
    In train mode the code is sampled (reparameterization); in eval mode the mean is used, so
    validation losses are deterministic. `anomaly_score` always decodes the mean code; call
    `model.eval()` first so that dropout is off too.
    """

    optional_state = ("error_scale",)

    def __init__(self, input_dim: int = 128, hidden_dim: int | Sequence[int] = 96,
                 latent_dim: int = 64, dropout: float = 0.2, *, num_hidden_layers: int = 2,
                 beta: float = 1.0, reconstruction: str | None = None,
                 score: str = "reconstruction", standardize: bool = True) -> None:
        # Left to the default: a state dict from before the default changed means "mse".
        self._default_reconstruction = reconstruction is None
        reconstruction = "bce" if reconstruction is None else reconstruction
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
            ("standardize", isinstance(standardize, bool), "True or False", standardize),
        ]
        for name, ok, rule, value in checks:
            if not ok:
                raise ConfigError(f"{name} must be {rule}, got {value!r}")
        super().__init__(input_dim=input_dim,
                         hidden_dim=hidden_dim if isinstance(hidden_dim, int) else widths,
                         latent_dim=latent_dim, dropout=dropout,
                         num_hidden_layers=num_hidden_layers, beta=beta,
                         reconstruction=reconstruction, score=score, standardize=standardize)
        self.input_dim, self.latent_dim, self.beta = input_dim, latent_dim, float(beta)
        self.reconstruction, self.score, self.standardize = reconstruction, score, standardize
        self.encoder = _mlp([input_dim, *widths], dropout)
        self.fc_mean = nn.Linear(widths[-1], latent_dim)
        self.fc_logvar = nn.Linear(widths[-1], latent_dim)
        self.decoder = _mlp([latent_dim, *reversed(widths)], dropout)
        self.output = nn.Linear(widths[0], input_dim)
        self.register_buffer("error_scale", torch.ones(input_dim))
        self._val_error_sum: torch.Tensor | None = None  # (input_dim,), this validation pass
        self._val_rows = 0

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
        """Per-feature reconstruction error (batch, input_dim) and KL divergence (batch,)."""
        mean, logvar = self.encode(x)
        logits = self.decode_logits(self.reparameterize(mean, logvar) if sample else mean)
        kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1)
        return self._reconstruction_terms(logits, x), kl

    def _reconstruction_terms(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(batch, input_dim) error of the decoded `logits` against `x`, per feature."""
        if self.reconstruction == "mse":
            return (torch.sigmoid(logits) - x).pow(2)
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none")

    def training_step(self, batch: Any) -> torch.Tensor:
        recon, kl = self._terms(self._features(batch), sample=self.training)
        return (recon.sum(dim=1) + self.beta * kl).mean()

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        terms, kl = self._terms(self._features(batch), sample=self.training)
        if self.standardize:  # the benign validation events' errors, for `error_scale`
            total = terms.detach().float().sum(dim=0)
            seen = self._val_error_sum
            self._val_error_sum = total if seen is None else seen + total
            self._val_rows += len(terms)
        recon, kl = terms.sum(dim=1).mean(), kl.mean()
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    def on_train_epoch_end(self) -> None:
        self._val_error_sum, self._val_rows = None, 0  # the next validation pass starts anew

    def on_validation_epoch_end(self) -> None:
        """Fit `error_scale` on this pass's errors (with `standardize`); the trainer's copy of
        the best epoch's state, taken after validation, then holds the scale of its weights."""
        if self._val_error_sum is not None and self._val_rows:
            mean = self._val_error_sum / self._val_rows
            self.error_scale.copy_(mean.clamp(min=ERROR_FLOOR).to(self.error_scale))
        self._val_error_sum, self._val_rows = None, 0

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        if prefix + "error_scale" not in state_dict:  # saved before the scale existed
            state_dict[prefix + "error_scale"] = torch.ones(self.input_dim)  # the plain error
            if self._default_reconstruction and self.reconstruction != "mse":
                logger.info("a Layer1VAE state dict without error_scale, loaded into a model "
                            "built with the default reconstruction: taken as the default of "
                            "its time, mse")
                self.reconstruction = self.init_args["reconstruction"] = "mse"
        super()._load_from_state_dict(state_dict, prefix, *args)

    def anomaly_score(self, batch: Any) -> torch.Tensor:
        """Per-event reconstruction error, each feature's divided by `error_scale` (or the
        negative ELBO with that error); higher = more anomalous.

        Shapes:
            returns (batch,), float32.
        """
        x = self._features(batch)
        if self.training or self.score == "elbo":
            terms, kl = self._terms(x, sample=False)
            recon = (terms / self.error_scale).sum(dim=1)
            return (recon if self.score == "reconstruction" else recon + kl).float()
        # Scoring in eval mode: the mean code only, no KL term and no Dropout calls (identity
        # here). Same scores; one event's cost is mostly per-call overhead, so this halves it.
        h = _without_dropout(self.encoder, x)  # (batch, widths[-1])
        logits = self.output(_without_dropout(self.decoder, self.fc_mean(h)))  # (batch, input_dim)
        return (self._reconstruction_terms(logits, x) / self.error_scale).sum(dim=1).float()

    def feature_terms(self, batch: Any) -> torch.Tensor:
        """The per-feature reconstruction error terms of `anomaly_score` (eval mode: the mean
        code), plus the KL divergence as a last term when the score is the negative ELBO.

        Shapes:
            returns (batch, input_dim), or (batch, input_dim + 1) with score "elbo".
        """
        x = self._features(batch)
        mean, logvar = self.encode(x)
        terms = self._reconstruction_terms(self.decode_logits(mean), x) / self.error_scale
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
