"""Arrays on disk: one .npz of named arrays, never pickled, read with its sizes checked first.

Every .npz this package reads goes through `read_arrays`: plain arrays only
(`allow_pickle=False`), one error class (`SourceError`) naming the file for anything that keeps
it from being read, and each member's declared size checked before anything is allocated. A
stored member cannot declare more than it holds; compressed members (which this package never
writes) may inflate to `MAXIMUS_MAX_INFLATED_BYTES` in all (default 256 MiB), so a small hostile
file cannot claim gigabytes of memory.

Feature sets add their FeatureSpec and build statistics (`save_npz`, `load_npz`). Text columns
(event ids, entity names, attack types) are stored the way Arrow holds them: the UTF-8 bytes
(`<name>__utf8`, uint8) and the offsets of each value (`<name>__offsets`, int64), so writing and
reading them costs no per-string Python work.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from training.artifacts.atomic import atomic_write, file_kind
from training.artifacts.limits import byte_limit
from training.errors import SchemaError, SourceError
from training.features.encoding import SPEC_FIELD, FeatureSpec

STATS_FIELD = "stats"  # JSON text of the build statistics
INFLATED_LIMIT_VARIABLE = "MAXIMUS_MAX_INFLATED_BYTES"
DEFAULT_INFLATED_LIMIT = 256 << 20
# What np.load and zipfile raise on a damaged or hostile file: truncated (EOFError,
# BadZipFile), bit-flipped (BadZipFile: bad CRC), a member that is not an array (ValueError).
_UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)


def inflated_limit() -> int:
    """Bytes that the compressed members of one .npz may declare in all."""
    return byte_limit(INFLATED_LIMIT_VARIABLE, DEFAULT_INFLATED_LIMIT)


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` to `path` (.npz, uncompressed, no pickle), atomically."""
    path = Path(path)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)
    return path


def read_arrays(source: str | Path | bytes, name: str | None = None,
                only: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz file (or of its bytes); nothing in it is ever executed.

    Args:
        source: the file, or its content.
        name: how errors name the input (default: the path).
        only: read just these members (those present); None reads every one.

    Raises:
        SourceError: missing, not an .npz of plain arrays, damaged, or declaring more than it
            may hold (see the module docstring).
    """
    where = name or str(source if not isinstance(source, bytes) else "<bytes>")
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    if not isinstance(source, bytes):
        _require_regular(Path(source), where)
    try:
        _check_declared_sizes(handle, where)
        with np.load(handle, allow_pickle=False) as data:
            return {key: data[key] for key in data.files if only is None or key in only}
    except SourceError:
        raise  # the size check's own message (a SourceError is an OSError too)
    except FileNotFoundError:
        raise SourceError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{where}: is a folder, not an .npz file") from None
    except MemoryError:
        raise SourceError(f"{where}: declares arrays too large to load; the file is damaged "
                          "or not written by this package") from None
    except _UNREADABLE as exc:
        raise SourceError(f"{where}: not a readable .npz of plain arrays "
                          f"({type(exc).__name__}: {exc})") from exc


def _require_regular(path: Path, where: str) -> None:
    """Refuse a FIFO, socket or device before opening it (a FIFO with no writer would block
    the read forever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing: np.load names it
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise SourceError(f"{where}: not a regular file (a {file_kind(mode)}); give an .npz "
                          "file")


def _check_declared_sizes(handle: str | Path | io.BytesIO, where: str) -> None:
    """Refuse members whose headers declare more than the file can hold or may inflate to."""
    inflated = 0
    with zipfile.ZipFile(handle) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                major, _ = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
            if dtype.hasobject:
                continue  # np.load refuses it (allow_pickle=False) before allocating
            declared = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
            if declared > info.file_size:
                raise SourceError(f"{where}: member {info.filename} declares {declared:,} bytes "
                                  f"but holds {info.file_size:,}; the file is damaged")
            if info.compress_type != zipfile.ZIP_STORED:
                inflated += info.file_size
    limit = inflated_limit()
    if inflated > limit:
        raise SourceError(f"{where}: compressed members inflate to {inflated:,} bytes, over the "
                          f"limit of {limit:,}; set {INFLATED_LIMIT_VARIABLE} higher if the "
                          "file is genuine")
    if isinstance(handle, io.BytesIO):
        handle.seek(0)


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


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], spec: FeatureSpec,
             stats: dict | None = None, texts: dict[str, pa.Array] | None = None) -> Path:
    """Write `arrays` and the text columns `texts` with the spec (and build statistics) to
    `path`, atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")  # np.savez would add it to the name anyway
    payload = dict(arrays)
    for name, values in (texts or {}).items():
        payload.update(strings_to_arrays(name, values))
    return write_arrays(path, {**payload, SPEC_FIELD: spec.to_npz(),
                               STATS_FIELD: np.array(json.dumps(stats or {}, sort_keys=True))})


def load_npz(path: str | Path, layer: str, expected: FeatureSpec | None = None,
             names: tuple[str, ...] = (), texts: tuple[str, ...] = ()
             ) -> tuple[dict[str, Any], FeatureSpec, dict]:
    """Read a file written by `save_npz`, checking its spec.

    Args:
        path: the .npz file.
        layer: the layer the caller reads ("layer2", "layer3").
        expected: when given, the file must have been made with exactly this spec.
        names: arrays the file must hold; texts: text columns it must hold (decoded into
            Arrow strings).

    Returns:
        the arrays and text columns by name, the file's spec, and its build statistics.

    Raises:
        SourceError: the file is missing or not an npz archive.
        SchemaError: no spec, a spec of another layer, another transform than `expected`, or
            a missing array or text column.
    """
    path = Path(path)
    arrays = read_arrays(path)
    spec = FeatureSpec.from_npz(arrays, str(path))
    stats = json.loads(str(arrays.pop(STATS_FIELD))) if STATS_FIELD in arrays else {}
    arrays.pop(SPEC_FIELD)
    if spec.layer != layer:
        raise SchemaError(f"{path} holds {spec.layer} features ({spec.version}), not {layer}")
    if expected is not None:
        expected.require(spec, str(path))
    try:
        values = {name: arrays[name] for name in names}
        values.update({name: arrays_to_strings(name, arrays) for name in texts})
    except KeyError as exc:
        raise SchemaError(f"{path}: the {layer} file lacks {exc}") from None
    return values, spec, stats
