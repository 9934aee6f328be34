"""A registered version's files: the weights and sidecar copied into the version's own folder.

`store` writes both into a temporary sibling folder, fsyncs them, checks that the copy loads
the way every later load will (sha256, `weights_only=True`, a known detector class whose state
fits), and only then renames the folder into place. The registry calls it inside its write
transaction and inserts the version's row after it, so a version either has its row and its
complete folder, or (after a crash) no row at all; leftovers are removed by `clear_leftovers`
the next time that model is written to.

Weights without a sidecar (a plain `torch.save(model.state_dict(), path)`) are stored as an
opaque artifact: checked to be a state_dict readable with `weights_only=True`, recorded by
sha256, and never loaded into a detector; `attach_sidecar` gives one a sidecar later.

`load` re-checks the sidecar's and the weights' sha256 against the database on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import torch

from training.artifacts.atomic import (
    PRIVATE, PRIVATE_FOLDER, fsync_dir, private_folder, read_regular,
)
from training.artifacts.model_files import (
    LoadedModel, declared_model, load_model, read_sidecar, read_weights, sidecar_path,
)
from training.errors import CheckpointError, ConfigError
from training.features.encoding import FeatureSpec
from training.registry.names import check_name

WEIGHTS_FILE = "model.pt"
SIDECAR_FILE = "model.json"
_TMP_PREFIX = ".tmp-"


def _write(path: Path, data: bytes) -> None:
    """A new file `path` holding `data`, readable by this user only (0600)."""
    with open(path, "xb", opener=lambda name, flags: os.open(name, flags, PRIVATE)) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def store(weights: Path, folder: Path, files: Mapping[str, Path] | None = None
          ) -> tuple[str, str, dict | None, dict[str, str]]:
    """Copy `weights`, its sidecar (if it has one) and the attached `files` (name -> path)
    into `folder` (which must not exist), verified.

    Returns:
        (sha256 of the weights, sha256 of the sidecar file ("" without one), the sidecar or
        None, name -> sha256 of each attached file).

    Raises:
        CheckpointError: an unreadable sidecar, weights that do not match its sha256, a file
            that is not a plain state_dict (e.g. a pickle that would run code), or a model
            whose class or state does not fit. Nothing is left behind.
    """
    weights = Path(weights)
    has_sidecar = sidecar_path(weights).exists()
    if has_sidecar:
        # Clear errors naming the user's files, before copying: a field of the sidecar out
        # of its rule, a declared model over the size limit.
        declared_model(weights, read_sidecar(weights))
    try:
        weights_bytes = weights.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{weights}: no such model file") from None
    sidecar_bytes = sidecar_path(weights).read_bytes() if has_sidecar else None
    attached = {check_file_name(name): Path(path).read_bytes() for name, path in (files or {}).items()}
    tmp = folder.parent / f"{_TMP_PREFIX}{folder.name}-{uuid.uuid4().hex[:12]}"
    private_folder(folder.parent)
    tmp.mkdir(PRIVATE_FOLDER)
    try:
        _write(tmp / WEIGHTS_FILE, weights_bytes)
        if sidecar_bytes is not None:
            _write(tmp / SIDECAR_FILE, sidecar_bytes)
        for name, data in attached.items():
            _write(tmp / name, data)
        # The same checks as every later load: sha256 against the sidecar, weights_only=True,
        # a registered detector class, a state_dict that fits it.
        try:
            sidecar = (load_model(tmp / WEIGHTS_FILE).sidecar if sidecar_bytes is not None
                       else check_state_dict(tmp / WEIGHTS_FILE))
        except CheckpointError as exc:
            raise CheckpointError(f"{weights}: not registered: "
                                  f"{_as_given(str(exc), tmp, weights)}") from None
        fsync_dir(tmp)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(folder.parent)
    return (hashlib.sha256(weights_bytes).hexdigest(),
            "" if sidecar_bytes is None else hashlib.sha256(sidecar_bytes).hexdigest(),
            sidecar, {name: hashlib.sha256(data).hexdigest() for name, data in attached.items()})


def _as_given(message: str, tmp: Path, weights: Path) -> str:
    """A message about the checked copy in `tmp` in the names of the user's files (the
    temporary folder is an internal detail, gone by the time it is read), without the
    weights' name again at its start."""
    named = ((tmp / WEIGHTS_FILE, weights), (tmp / SIDECAR_FILE, sidecar_path(weights)),
             (tmp, weights.parent))
    for copy, given in named:
        message = message.replace(str(copy), str(given))
    return message.removeprefix(f"{weights}: ").removeprefix(f"{weights} ")


def check_state_dict(path: Path) -> None:
    """Check that `path` holds a plain state_dict (names -> tensors) that loads with
    `weights_only=True`, as opaque artifacts must."""
    state = read_weights(path, None)
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: not a state_dict (a mapping of names to tensors); "
                              "save one with torch.save(model.state_dict(), path)")


def attach_sidecar(folder: Path, sidecar: dict) -> str:
    """Write `sidecar` as the version's sidecar after checking that the registered weights
    load with it (sha256, class, state); returns the sidecar file's sha256.

    Raises:
        CheckpointError: the weights do not load with it; nothing is written.
    """
    data = json.dumps(sidecar, indent=2, sort_keys=True).encode()
    tmp = folder / f"{_TMP_PREFIX}{SIDECAR_FILE}-{uuid.uuid4().hex[:12]}"
    try:
        _write(tmp, data)
        load_model(folder / WEIGHTS_FILE, sidecar=read_sidecar(folder / WEIGHTS_FILE, data))
        os.rename(tmp, folder / SIDECAR_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(folder)
    return hashlib.sha256(data).hexdigest()


def stored_class(folder: Path) -> str | None:
    """The detector class the version's sidecar in `folder` names (None: no readable
    sidecar), for versions registered before the registry recorded it."""
    try:
        name = json.loads((folder / SIDECAR_FILE).read_text(encoding="utf-8")).get("model_class")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def check_file_name(name: str) -> str:
    """An attached file's name: a plain name that is not one of the model's own files."""
    check_name("attached file name", name)
    if name in (WEIGHTS_FILE, SIDECAR_FILE):
        raise ConfigError(f"attached file name {name!r} is reserved for the model itself")
    return name


def read_verified(path: Path, sha256: str) -> bytes:
    """The bytes of a registered file, refused unless they have the recorded sha256."""
    try:
        data = read_regular(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: the registered file is missing") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: the registered file cannot be read ({exc.strerror})"
                              ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise CheckpointError(f"{path}: sha256 mismatch: the file is {actual[:16]}..., the "
                              f"registry recorded {sha256[:16]}...; it was modified after "
                              "registration")
    return data


def clear_leftovers(model_folder: Path, registered: set[str]) -> None:
    """Remove what crashed registrations left in `model_folder`: temporary folders, and version
    folders without a database row (killed after the rename, before the commit). Call only
    under the write lock, with `registered` the model's versions in the database."""
    if not model_folder.is_dir():
        return
    for child in model_folder.iterdir():
        if child.name.startswith(_TMP_PREFIX) or child.name not in registered:
            shutil.rmtree(child, ignore_errors=True)


def load(folder: Path, weights_sha256: str, sidecar_sha256: str, *,
         map_location: str | torch.device = "cpu",
         expected_spec: FeatureSpec | None = None) -> LoadedModel:
    """Rebuild the model in `folder` after checking both files against the recorded sha256.

    Raises:
        CheckpointError: a file is missing, or was modified after registration (sha256 mismatch).
        SchemaError: `expected_spec` differs from the model's FeatureSpec.
    """
    side = folder / SIDECAR_FILE
    sidecar = read_sidecar(folder / WEIGHTS_FILE, read_verified(side, sidecar_sha256))
    if sidecar["sha256"] != weights_sha256:
        raise CheckpointError(f"{side}: its weights sha256 is not the one the registry recorded")
    # load_model checks the weights against the sidecar's sha256 (== the recorded one).
    return load_model(folder / WEIGHTS_FILE, map_location=map_location,
                      expected_spec=expected_spec, sidecar=sidecar)
