"""Whether `tune --train-best` already trained and registered a configuration.

A finished study resumed with `--train-best` has the same best trial as before: training it
again on the same data, with the same epochs, seed and threshold rule, gives the same weights
(byte for byte on the CPU), and registering them would add a version that duplicates one the
registry holds. `registered_before` finds that version from what the registry records of every
version: its hyperparameters (the trial's parameters, `num_epochs`, `seed` and the training
config's `threshold_rule`) and the fingerprints of the data it learnt from and was validated on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.errors import NotFoundError
from training.registry.metadata import ModelMetadata
from training.registry.queries import RegistryQueries

__all__ = ["registered_before"]


def registered_before(registry_dir: str | Path | None, model_name: str, layer_name: str,
                      recipe: dict[str, Any], fingerprints: dict[str, str]
                      ) -> ModelMetadata | None:
    """The latest version of `model_name` trained by `recipe` on the data of `fingerprints`;
    None when there is none (or no registry yet).

    Args:
        recipe: hyperparameters that decide the weights (the trial's parameters, num_epochs,
            seed, threshold_rule): a version matches when it recorded every one alike.
        fingerprints: split name -> fingerprint ("train", "val"), as the trainer writes them
            into the sidecar and the registry records them in `dataset_fingerprints`.
    """
    try:
        versions = RegistryQueries(registry_dir, create=False).search_models(
            model_name=model_name, layer_name=layer_name)
    except NotFoundError:  # no registry yet: nothing was registered
        return None
    same = [m for m in versions
            if all(k in m.hyperparameters and m.hyperparameters[k] == v
                   for k, v in recipe.items())
            and all(m.dataset_fingerprints.get(k) == v for k, v in fingerprints.items())]
    return same[-1] if same else None
