"""A registered version's files: the weights and sidecar copied into the version's own folder.

`store` writes both into a temporary sibling folder, fsyncs them, checks that the copy loads
the way every later load will (sha256, `weights_only=True`, a known detector class whose state
fits), and only then renames the folder into place. The registry calls it inside its write
transaction and inserts the version's row after it, so a version either has its row and its
complete folder, or (after a crash) no row at all; leftovers are removed by `clear_leftovers`
the next time that model is written to.

`load` re-checks the sidecar's and the weights' sha256 against the database on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import torch

from training.errors import CheckpointError
from training.features.encoding import FeatureSpec
from training.fileio import fsync_dir
from training.model_files import LoadedModel, load_model, read_sidecar, sidecar_path

WEIGHTS_FILE = "model.pt"
SIDECAR_FILE = "model.json"
_TMP_PREFIX = ".tmp-"


def _write(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def store(weights: Path, folder: Path) -> tuple[str, str, dict]:
    """Copy `weights` and its sidecar into `folder` (which must not exist), verified.

    Returns:
        (sha256 of the weights, sha256 of the sidecar file, the sidecar).

    Raises:
        CheckpointError: no readable sidecar, the weights do not match its sha256, the file is
            not a plain state_dict (e.g. a pickle that would run code), or the model's class
            or state does not fit. Nothing is left behind.
    """
    weights = Path(weights)
    read_sidecar(weights)  # a clear error for a file that is not a saved model, before copying
    try:
        weights_bytes = weights.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{weights}: no such model file") from None
    sidecar_bytes = sidecar_path(weights).read_bytes()
    tmp = folder.parent / f"{_TMP_PREFIX}{folder.name}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    try:
        _write(tmp / WEIGHTS_FILE, weights_bytes)
        _write(tmp / SIDECAR_FILE, sidecar_bytes)
        # The same checks as every later load: sha256 against the sidecar, weights_only=True,
        # a registered detector class, a state_dict that fits it.
        try:
            loaded = load_model(tmp / WEIGHTS_FILE)
        except CheckpointError as exc:
            raise CheckpointError(f"{weights}: not registered: {exc}") from exc
        fsync_dir(tmp)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(folder.parent)
    return (hashlib.sha256(weights_bytes).hexdigest(), hashlib.sha256(sidecar_bytes).hexdigest(),
            loaded.sidecar)


def clear_leftovers(model_folder: Path, folder: Path) -> None:
    """Remove what a crashed registration left in `model_folder` (temporary folders) and
    `folder` itself when it exists without a database row. Call only under the write lock."""
    if model_folder.is_dir():
        for child in model_folder.iterdir():
            if child.name.startswith(_TMP_PREFIX):
                shutil.rmtree(child, ignore_errors=True)
    if folder.exists():
        shutil.rmtree(folder)


def load(folder: Path, weights_sha256: str, sidecar_sha256: str, *,
         map_location: str | torch.device = "cpu",
         expected_spec: FeatureSpec | None = None) -> LoadedModel:
    """Rebuild the model in `folder` after checking both files against the recorded sha256.

    Raises:
        CheckpointError: a file is missing, or was modified after registration (sha256 mismatch).
        SchemaError: `expected_spec` differs from the model's FeatureSpec.
    """
    side = folder / SIDECAR_FILE
    try:
        sidecar_bytes = side.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{side}: the registered sidecar is missing") from None
    actual = hashlib.sha256(sidecar_bytes).hexdigest()
    if actual != sidecar_sha256:
        raise CheckpointError(f"{side}: sha256 mismatch: the file is {actual[:16]}..., the "
                              f"registry recorded {sidecar_sha256[:16]}...; it was modified "
                              "after registration")
    if json.loads(sidecar_bytes).get("sha256") != weights_sha256:
        raise CheckpointError(f"{side}: its weights sha256 is not the one the registry recorded")
    # load_model checks the weights against the sidecar's sha256 (== the recorded one).
    return load_model(folder / WEIGHTS_FILE, map_location=map_location,
                      expected_spec=expected_spec)
