"""Names of the layer-1 vector's dims and the source field each comes from (layout `l1.v1`).

`DIM_NAMES[d]` names dim d ("protocol=tcp", "dest_port/65535", "bytes_sent"); `DIM_FIELDS[d]`
is the event field it encodes ("protocol", "dest_port", "bytes_sent"), so per-dim terms can be
added up per field. `decode(field, block)` reads a field's block of a vector (a featurized event
or a model's reconstruction of it) back as text an analyst can compare.
"""

from __future__ import annotations

import math

import numpy as np

from training.features.layer1 import (
    CONN_STATE, CONN_STATES, DEST_ADDRESS, DEST_PORT, DIM, DIRECTION, DIRECTIONS, EVENT,
    EVENT_CATEGORIES, EXTRA, EXTRA_BUCKETS, IDENTITY, IDENTITY_AT, PROTOCOL, PROTOCOLS, SERVICE,
    SEVERITY, SOURCE_ADDRESS, SOURCE_PORT, TIME, VERSION, VOLUME, VOLUME_AT,
)

_SERVICE_NAMES = ("dns", "http", "ssl", "ssh", "smb", "rdp", "kerberos", "ntp")
_ADDRESS_KINDS = ("private", "public", "ipv6", "multicast")
_PORT_KINDS = ("well_known", "registered", "dynamic")
EXTRA_FIELD = "extra fields"  # the 16 buckets every non-canonical field shares


def _blocks() -> list[tuple[str, int, list[str]]]:
    """(field, first dim, dim names) of every block, in dim order."""
    def hashed(field: str, n: int) -> list[str]:
        return [f"{field}#{i}" for i in range(n)]

    blocks = [
        ("event_type", EVENT, [f"event_type={c}" for c in EVENT_CATEGORIES] + hashed("event_type", 4)),
        ("protocol", PROTOCOL, [f"protocol={p}" for p in PROTOCOLS] + hashed("protocol", 2)),
        ("service", SERVICE, [f"service={s}" for s in _SERVICE_NAMES] + hashed("service", 4)),
        ("conn_state", CONN_STATE, [f"conn_state={s}" for s in CONN_STATES] + hashed("conn_state", 2)),
        ("direction", DIRECTION, [f"direction={d}" for d in DIRECTIONS]),
    ]
    for field, at in (("source_ip", SOURCE_ADDRESS), ("dest_ip", DEST_ADDRESS)):
        blocks.append((field, at, [f"{field}:{k}" for k in _ADDRESS_KINDS] + hashed(f"{field}/24", 4)))
    for field, at in (("source_port", SOURCE_PORT), ("dest_port", DEST_PORT)):
        blocks.append((field, at, [f"{field}:{k}" for k in _PORT_KINDS]
                       + [f"{field}/65535", f"{field}:common"]))
    blocks += [(name, VOLUME_AT + i, [name]) for i, (name, _) in enumerate(VOLUME)]
    blocks.append(("severity", SEVERITY, ["severity"]))
    blocks.append(("timestamp", TIME, ["time_of_day_sin", "time_of_day_cos", "day_of_week_sin",
                                       "day_of_week_cos"]))
    at = IDENTITY_AT
    for field, n in IDENTITY:
        blocks.append((field, at, hashed(field, n)))
        at += n
    blocks.append((EXTRA_FIELD, EXTRA, hashed("extra", EXTRA_BUCKETS)))
    return blocks


BLOCKS = _blocks()
DIM_NAMES: tuple[str, ...] = tuple(name for _, _, names in BLOCKS for name in names)
DIM_FIELDS: tuple[str, ...] = tuple(field for field, _, names in BLOCKS for _ in names)
FIELDS: tuple[str, ...] = tuple(field for field, _, _ in BLOCKS)
if len(DIM_NAMES) != DIM:  # the table above must tile the layout exactly
    raise RuntimeError(f"layer-1 dim names cover {len(DIM_NAMES)} dims, the layout has {DIM}")
_CAPS = dict(VOLUME)


def dim_names(spec: object) -> list[str] | None:
    """The dim names of vectors made by `spec` (a FeatureSpec), or None for another layout."""
    if getattr(spec, "version", None) == VERSION:  # layout versions name their layer ("l1.")
        return list(DIM_NAMES)
    return None


def field_slices() -> dict[str, slice]:
    """Each field's dims as a slice of the vector."""
    return {field: slice(at, at + len(names)) for field, at, names in BLOCKS}


def decode(field: str, block: np.ndarray, robust: bool = False) -> str:
    """A field's block of one vector (values in [0, 1]) as readable text (see `decode_rows`)."""
    return decode_rows(field, np.asarray(block)[None, :], robust)[0]


def decode_rows(field: str, blocks: np.ndarray, robust: bool = False) -> list[str]:
    """A field's blocks of many vectors, (rows, dims of the field), as readable text.

    One-hot blocks give the strongest dim's value name ("-" when none reaches 0.5); ports
    the port number; volumes the amount (or the robust-scaled value); the time its time of
    day; hashed fields "set" or "-".
    """
    blocks = np.asarray(blocks, np.float64)
    if field in _CAPS:
        if robust:
            return [f"{v:.3g} (scaled)" for v in blocks[:, 0]]
        return [f"{v:.6g}" for v in np.expm1(blocks[:, 0] * math.log1p(_CAPS[field]))]
    if field == "severity":
        return [f"{v:.3g}" for v in blocks[:, 0]]
    if field in ("source_port", "dest_port"):
        # A missing port leaves the block 0; a reconstruction always reads as some port.
        ports = np.rint(blocks[:, 3] * 65535).astype(np.int64)
        return ["-" if empty else str(p) for p, empty in zip(ports, blocks.max(1) <= 0.0)]
    if field == "timestamp":
        angle = np.arctan2(2 * blocks[:, 0] - 1, 2 * blocks[:, 1] - 1)
        minutes = np.rint((angle / (2 * np.pi)) % 1.0 * 1440).astype(np.int64) % 1440
        return [f"{m // 60:02d}:{m % 60:02d} UTC" for m in minutes]
    names = DIM_NAMES[field_slices()[field]]
    texts = []
    for name in names:
        if "#" in name:  # a hashed bucket: a value outside the named ones
            texts.append("other" if field in ("event_type", "protocol", "service", "conn_state")
                         else "set")
        else:
            texts.append(name.split("=", 1)[1] if "=" in name else name.split(":", 1)[1])
    best = blocks.argmax(1)
    return ["-" if v < 0.5 else texts[b] for b, v in zip(best, blocks[np.arange(len(best)), best])]
