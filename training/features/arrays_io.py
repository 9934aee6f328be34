"""Feature sets on disk: one .npz of named arrays plus the FeatureSpec, never pickled.

Text columns (event ids, entity names, attack types) are stored the way Arrow holds them: the
UTF-8 bytes (`<name>__utf8`, uint8) and the offsets of each value (`<name>__offsets`, int64),
so writing and reading them costs no per-string Python work. Every file opens with
`np.load(path, allow_pickle=False)`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from training.errors import SchemaError, SourceError
from training.features.encoding import SPEC_FIELD, FeatureSpec
from training.fileio import atomic_write

STATS_FIELD = "stats"  # JSON text of the build statistics


def strings_to_arrays(name: str, values: pa.Array) -> dict[str, np.ndarray]:
    """A string array as its UTF-8 bytes and int64 offsets (no nulls: they become "")."""
    values = values.cast(pa.large_string()).fill_null("")
    _, offsets, data = values.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[values.offset:values.offset + len(values) + 1]
    utf8 = (np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]] if data is not None
            else np.zeros(0, dtype=np.uint8))
    return {f"{name}__utf8": utf8.copy(), f"{name}__offsets": offsets - offsets[0]}


def arrays_to_strings(name: str, arrays: dict[str, np.ndarray]) -> pa.StringArray:
    """The inverse of `strings_to_arrays`.

    Raises:
        KeyError: a part is missing.
        SchemaError: the offsets do not fit the bytes, or the bytes are not UTF-8.
    """
    utf8, offsets = arrays[f"{name}__utf8"], arrays[f"{name}__offsets"]
    try:
        if offsets.ndim != 1 or not len(offsets):
            raise pa.ArrowInvalid("no offsets")
        large = pa.LargeStringArray.from_buffers(
            len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)),
            pa.py_buffer(utf8.astype(np.uint8)))
        large.validate(full=True)  # bad offsets would otherwise read outside the bytes
    except (pa.ArrowInvalid, ValueError, TypeError) as exc:
        raise SchemaError(f"text column {name!r} is damaged: {exc}") from None
    return large.cast(pa.string())


def gather_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Positions starts[0]:ends[0], then starts[1]:ends[1], ... as one int64 array."""
    lengths = np.asarray(ends, dtype=np.int64) - np.asarray(starts, dtype=np.int64)
    firsts = np.cumsum(lengths) - lengths  # where each range begins in the output
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - firsts, lengths)


def offsets_of(lengths: np.ndarray, dtype: np.dtype = np.int64) -> np.ndarray:
    """Offsets (0, l0, l0 + l1, ...) of consecutive parts of the given lengths."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(dtype)


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], spec: FeatureSpec,
             stats: dict | None = None) -> Path:
    """Write `arrays` with the spec (and build statistics) to `path`, atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")  # np.savez would add it to the name anyway
    payload = dict(arrays)
    payload[SPEC_FIELD] = spec.to_npz()
    payload[STATS_FIELD] = np.array(json.dumps(stats or {}, sort_keys=True))
    with atomic_write(path) as handle:
        np.savez(handle, **payload)
    return path


def load_npz(path: str | Path, layer: str, expected: FeatureSpec | None = None
             ) -> tuple[dict[str, np.ndarray], FeatureSpec, dict]:
    """Read a file written by `save_npz`, checking its spec.

    Args:
        path: the .npz file.
        layer: the layer the caller reads ("layer2", "layer3").
        expected: when given, the file must have been made with exactly this spec.

    Returns:
        the arrays, the file's spec, and its build statistics.

    Raises:
        SourceError: the file is missing or not an npz archive.
        SchemaError: no spec, a spec of another layer, or another transform than `expected`.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise SourceError(f"{path}: not a readable .npz file ({exc})") from exc
    spec = FeatureSpec.from_npz(arrays, str(path))
    stats = json.loads(str(arrays.pop(STATS_FIELD))) if STATS_FIELD in arrays else {}
    arrays.pop(SPEC_FIELD)
    if spec.layer != layer:
        raise SchemaError(f"{path} holds {spec.layer} features ({spec.version}), not {layer}")
    if expected is not None:
        expected.require(spec, str(path))
    return arrays, spec, stats
