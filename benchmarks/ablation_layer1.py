"""Layer-1 ablations on the harness's development captures only: the layout, then the VAE.

    python benchmarks/ablation_layer1.py                       # both parts, seed 0
    python benchmarks/ablation_layer1.py --part layout --variants l1.v2 l1.v3 --methods VAE
    python benchmarks/ablation_layer1.py --part vae --seeds 0 1

`--part layout`: each variant is a layout, some with blocks of their vector zeroed (a constant
dim carries nothing for any of these detectors); each trains the VAE (as the layer trains it
now, and "VAE beta 1" with its defaults before issue 21, which the first layout tables used),
the isolation forest and kNN through the harness's own `fit_and_score`.

`--part vae`: variants of the VAE on the default layout, against kNN, the isolation forest and
the plain autoencoder on the same vectors. Variants: its own arguments (squared error or
Bernoulli (cross-entropy) reconstruction, the ELBO as the score, a smaller KL weight), the
featurizer's fitted robust volume scaling, the "standardized error": each feature's error
divided by its mean over the benign validation events (computed here, after training, on the
best epoch's weights; floor 1e-4), and the model's own error weights, which do the same with
a floor added to each mean (`Layer1VAE.error_floor`; "plain sum" turns them off). Each prints, besides the figures, the KL divergence per event on
the test events and the latent dims in use (mean KL > 0.05 nat), the signs of posterior
collapse.

Per event ROC-AUC and PR-AUC. Evaluation captures are never run here: this is for choosing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.evaluation.harness.captures import load_capture  # noqa: E402
from training.evaluation.harness.methods import Method, fit_and_score  # noqa: E402
from training.evaluation.harness.units import layer_units  # noqa: E402
from training.evaluation.metrics import pr_auc, roc_auc  # noqa: E402
from training.features.layer1 import Layer1Featurizer  # noqa: E402
from training.layers.layer1 import Layer1  # noqa: E402
from training.layers.training import train_layer  # noqa: E402

DEV = ("iot23-42", "iot23-44", "demo")
# Blocks of l1.v1 (training/features/layer1.py): the hashed /24 buckets of both addresses,
# the time of day/week, the identity hashes.
ADDRESS_HASHES = [*range(53, 57), *range(61, 65)]
TIME = list(range(81, 85))
IDENTITY = list(range(85, 112))
# The VAE's defaults before issue 21 (beta 1); the first layout tables were measured with them.
OLD = {"beta": 1.0, "error_floor": None}  # the VAE before issue 21: no error weights either
# variant -> (layout, dims zeroed)
VARIANTS = {"l1.v1": ("l1.v1", []), "no address hashes": ("l1.v1", ADDRESS_HASHES),
            "no address hashes, no time": ("l1.v1", ADDRESS_HASHES + TIME),
            "no address/identity hashes, no time": ("l1.v1", ADDRESS_HASHES + TIME + IDENTITY),
            "l1.v2": ("l1.v2", []), "l1.v3": ("l1.v3", []), "l1.v4": ("l1.v4", []),
            "l1.v5": ("l1.v5", [])}
METHODS = (Method("VAE", ""), Method("VAE beta 1", "", OLD),
           Method("IF", "iforest", {"n_estimators": 200}),
           Method("kNN", "knn"))
REFERENCES = (Method("kNN", "knn"), Method("IF", "iforest", {"n_estimators": 200}),
              Method("AE", "autoencoder", {"hidden": [64, 16]}))
# The standardized error divides by at least this: a mean benign error below 0.01 squared is a
# dim the model reconstructs exactly, not one whose errors should weigh more.
ERROR_FLOOR = 1e-4


@dataclass(frozen=True)
class VAEVariant:
    """The layer-1 VAE's arguments, its input (the default layout or its robust-volume form)
    and its score (the model's own, or the standardized error)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    robust: bool = False
    standardized: bool = False


VAE_VARIANTS = (
    VAEVariant("mse, beta 1 (the old default)", OLD),
    VAEVariant("score: ELBO", {**OLD, "score": "elbo"}),
    VAEVariant("robust volume scaling", OLD, robust=True),
    VAEVariant("standardized error", OLD, standardized=True),
    VAEVariant("beta 0.1", {"beta": 0.1, "error_floor": None}),
    VAEVariant("beta 0.01, plain sum (the default)", {"error_floor": None}),
    VAEVariant("beta 0.01, error weights, floor 0.1", {"error_floor": 0.1}),
    VAEVariant("beta 0.01, error weights, floor 0.03", {"error_floor": 0.03}),
    VAEVariant("beta 0.01, error weights, floor 0.02", {"error_floor": 0.02}),
    VAEVariant("beta 0.01, error weights, floor 0.01", {"error_floor": 0.01}),
    VAEVariant("beta 0.1, standardized error", {"beta": 0.1, "error_floor": None},
               standardized=True),
    VAEVariant("bce", {**OLD, "reconstruction": "bce"}),
    VAEVariant("bce, beta 0.1", {"reconstruction": "bce", "beta": 0.1, "error_floor": None}),
    VAEVariant("bce, beta 0.01", {"reconstruction": "bce", "beta": 0.01, "error_floor": None}),
    VAEVariant("bce, robust volume scaling", {**OLD, "reconstruction": "bce"}, robust=True),
    VAEVariant("bce, standardized error", {**OLD, "reconstruction": "bce"}, standardized=True),
    VAEVariant("bce, beta 0.1, standardized error",
               {"reconstruction": "bce", "beta": 0.1, "error_floor": None}, standardized=True),
)


def _zeroed(units, dims: list[int]):
    out = type(units)(units.layer, units.spec, dict(units.arrays))
    features = np.array(units.features, copy=True)
    features[:, dims] = 0.0
    out.arrays["features"] = features
    return out


def _row(name: str, variant: str, method: str, scores: np.ndarray, labels: np.ndarray,
         extra: str = "") -> None:
    known = labels >= 0
    y = labels[known] == 1
    print(f"| {name} | {variant} | {method} | {roc_auc(scores[known], y):.3f} "
          f"| {pr_auc(scores[known], y):.3f} |{extra}", flush=True)


def _refeaturized(base: Any, featurizer: Layer1Featurizer) -> Any:
    """`base` (a capture's layer-1 units) made again with `featurizer`."""
    layer = Layer1(featurizer)
    return type(base)(**{**vars(base), "layer": layer,
                         **{part: layer.featurize(getattr(base.capture, part))
                            for part in ("train", "val", "test")}})


def layout_part(name: str, datasets: Path, variants: list[str], methods: list[str], seed: int,
                epochs: int) -> None:
    capture = load_capture(name, datasets)
    featurized = {layout: layer_units(capture, "layer1", Layer1Featurizer(layout=layout))
                  for layout in sorted({VARIANTS[v][0] for v in variants})}
    for variant in variants:
        layout, dims = VARIANTS[variant]
        base = units = featurized[layout]
        if dims:
            units = type(base)(**{**vars(base), **{part: _zeroed(getattr(base, part), dims)
                                                   for part in ("train", "val", "test")}})
        for method in (m for m in METHODS if m.name in methods):
            scores, _ = fit_and_score(units, method, seed, epochs)
            _row(name, variant, method.name, scores, base.labels)


def _terms(model: Any, features: np.ndarray) -> np.ndarray:
    """The VAE's per-feature error terms of `features` (eval mode), (rows, dims)."""
    model.eval()
    with torch.no_grad():
        return model.feature_terms(torch.as_tensor(features, dtype=torch.float32)).numpy()


def _collapse(model: Any, features: np.ndarray) -> str:
    """Mean KL per event and latent dims in use (mean KL > 0.05 nat) on `features`."""
    with torch.no_grad():
        mean, logvar = model.encode(torch.as_tensor(features, dtype=torch.float32))
        kl = (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp())).mean(dim=0)
    return f" KL {float(kl.sum()):.2f}, {int((kl > 0.05).sum())} latent dims"


def vae_scores(base: Any, variant: VAEVariant, seed: int, epochs: int) -> tuple[np.ndarray, str]:
    """Train `variant` on the units' train part and score the test units."""
    units = base
    if variant.robust:
        units = _refeaturized(base, Layer1Featurizer(robust=True).fit(base.capture.train))
    layer = units.layer
    with tempfile.TemporaryDirectory(prefix="ablation-") as folder:
        config = layer.default_config(num_epochs=epochs, seed=seed, num_threads=1,
                                      checkpoint_dir=folder, log_dir=folder, tensorboard=False,
                                      save_last_state=False)
        model, _ = train_layer(layer, units.train, units.val, config,
                               model_args=dict(variant.args))
    test = np.asarray(units.test.features)
    if not variant.standardized:
        return layer.score(model, units.test).astype(np.float64), _collapse(model, test)
    benign_val = np.asarray(units.val.features)[layer.labels(units.val) == 0]
    scale = np.maximum(_terms(model, benign_val).mean(axis=0), ERROR_FLOOR)
    return (_terms(model, test) / scale).sum(axis=1), _collapse(model, test)


def vae_part(name: str, datasets: Path, seeds: list[int], epochs: int,
             variants: list[str], references: bool) -> None:
    base = layer_units(load_capture(name, datasets), "layer1")
    for variant in (v for v in VAE_VARIANTS if v.name in variants):
        for seed in seeds:
            scores, collapse = vae_scores(base, variant, seed, epochs)
            _row(name, variant.name, f"seed {seed}", scores, base.labels, collapse)
    for method in REFERENCES if references else ():
        for seed in seeds:
            scores, _ = fit_and_score(base, method, seed, epochs)
            _row(name, method.name, f"seed {seed}", scores, base.labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captures", nargs="+", default=list(DEV), choices=DEV)
    parser.add_argument("--part", choices=("layout", "vae", "both"), default="both")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:4], choices=VARIANTS,
                        help="layout variants of --part layout")
    parser.add_argument("--methods", nargs="+", default=[m.name for m in METHODS],
                        choices=[m.name for m in METHODS], help="methods of --part layout")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--vae-variants", nargs="+", default=[v.name for v in VAE_VARIANTS],
                        choices=[v.name for v in VAE_VARIANTS], help="variants of --part vae")
    parser.add_argument("--no-references", action="store_true",
                        help="--part vae without kNN, IF and the AE on the same vectors")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    args = parser.parse_args()
    if not args.datasets.is_dir():
        parser.error(f"no datasets folder at {args.datasets} (--datasets)")
    torch.set_num_threads(1)
    print("| capture | variant | method | ROC-AUC | PR-AUC |\n|---|---|---|---:|---:|")
    for name in args.captures:
        if args.part in ("layout", "both"):
            layout_part(name, args.datasets, args.variants, args.methods, args.seeds[0],
                        args.epochs)
        if args.part in ("vae", "both"):
            vae_part(name, args.datasets, args.seeds, args.epochs, args.vae_variants,
                     not args.no_references)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
