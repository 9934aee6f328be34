"""A layer's tuned hyperparameters in a pipeline run: `[train.<layer>] params = FILE` or
`pipeline --params LAYER=FILE` (`training.tuning.params_file` reads the file).

The file's values replace the [train] defaults; the keys written in the layer's own table
win over the file, and `--epochs`, `--batch-size`, `--lr` over both. The trained model records
the file (`TrainingConfig.params_from`: its sidecar, registry version and MLflow run).
"""

from __future__ import annotations

from typing import Any

from training.errors import ConfigError
from training.tuning.params_file import read_params

PARAMS_KEY = "params"  # the key of a [train.<layer>] table naming the file


def tuned_values(defaults: dict[str, Any], table: dict[str, Any], layer: type,
                 where: str) -> dict[str, Any]:
    """A layer's training values: the [train] `defaults`, then the tuned file the layer's
    `table` names, then the table's own keys; with a file, `params_from` says where its
    values came from.

    Raises:
        ConfigError: the file cannot be read, is another layer's or holds a key the layer
            does not take (see `read_params`), or the table trains another detector than
            the layer's own, whose arguments a tuned file holds.
    """
    path = table.get(PARAMS_KEY)
    if path is None:
        return {**defaults, **table}
    own = {k: v for k, v in table.items() if k != PARAMS_KEY}
    detector = {**defaults, **own}.get("detector", layer.detector_name)
    if detector != layer.detector_name:
        raise ConfigError(f"{where}: params holds hyperparameters of {layer.name}'s own "
                          f"detector ({layer.detector_name}), not of detector {detector!r}; "
                          "leave one of them out")
    try:
        tuned = read_params(path, layer())
    except ConfigError as exc:
        raise ConfigError(f"{where}: params: {exc}") from None
    return {**defaults, **tuned.values, **own, "params_from": tuned.origin}
