"""Names of the layer-1 vector's dims and the source field each comes from, per layout.

`DIM_NAMES[d]` names dim d of the default layout ("protocol=tcp", "dest_port/65535",
"bytes_sent", "bytes_sent>1e+05"); `DIM_FIELDS[d]` is the event field it encodes ("protocol",
"dest_port", "bytes_sent"), so per-dim terms can be added up per field (`field_dims`; a volume
field of `l1.v3` has its magnitude steps apart from its own dim). `decode(field, block)` reads a
field's dims of a vector (a featurized event or a model's reconstruction of it) back as text an
analyst can compare. `l1.v1` and `l1.v2` share their names (`l1.v2` only leaves some dims at 0).
"""

from __future__ import annotations

import math

import numpy as np

from training.features.layer1 import (
    CONN_STATE, CONN_STATES, DEST_ADDRESS, DEST_PORT, DIM, DIRECTION, DIRECTIONS, EVENT,
    EVENT_CATEGORIES, EXTRA, EXTRA_BUCKETS, IDENTITY, IDENTITY_AT, LAYOUTS, NETWORK_SEEN_LAYOUTS,
    PROTOCOL, PROTOCOLS, RARITY_LAYOUTS, SERVICE, SEVERITY, SOURCE_ADDRESS, SOURCE_PORT,
    STEP_EDGES, TIME, VERSION, VOLUME, VOLUME_AT, VOLUME_STEPS,
)
from training.features.layer1_rarity import FIELDS as RARITY_FIELDS
from training.features.layer1_rarity import (
    PAIRS, PAIRS_AT, RARITY_AT, SEEN_AT, WIDTH, pair_name,
)

_SERVICE_NAMES = ("dns", "http", "ssl", "ssh", "smb", "rdp", "kerberos", "ntp")
_ADDRESS_KINDS = ("private", "public", "ipv6", "multicast")
_PORT_KINDS = ("well_known", "registered", "dynamic")
EXTRA_FIELD = "extra fields"  # the 16 buckets every non-canonical field shares
NEVER_SEEN = "never_seen"


def _blocks(layout: str) -> list[tuple[str, int, list[str]]]:
    """(field, first dim, dim names) of every block: the `l1.v1` tiling in dim order, then the
    layout's magnitude steps (which take over dims the tiling names)."""
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
    for (name, cap), at in zip(VOLUME, VOLUME_STEPS.get(layout, ())):
        blocks.append((name, at, [f"{name}>{math.expm1(edge * math.log1p(cap)):.3g}"
                                  for edge in STEP_EDGES[:-1]]))
    if layout in RARITY_LAYOUTS:  # the identity block, by what training saw (`layer1_rarity`)
        for k, field in enumerate(RARITY_FIELDS):
            blocks.append((field, RARITY_AT + WIDTH * k, [f"{field}:present", f"{field}:rarity",
                                                          f"{field}:{NEVER_SEEN}"]))
        for j, pair in enumerate(PAIRS):
            blocks.append((pair_name(pair), PAIRS_AT + j, [f"{pair_name(pair)}:{NEVER_SEEN}"]))
    if layout in NETWORK_SEEN_LAYOUTS:  # a network field's own value never seen: its last dim
        blocks += [(field, at, [f"{field}:{NEVER_SEEN}"]) for field, at in SEEN_AT.items()]
    return blocks


def _named(layout: str) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, np.ndarray]]:
    """(dim names, dim fields, each field's dims: its first block's dims first) of a layout."""
    names, fields = [""] * DIM, [""] * DIM
    dims: dict[str, list[int]] = {}
    for field, at, block in _blocks(layout):
        for d, name in enumerate(block, start=at):
            names[d], fields[d] = name, field
        dims.setdefault(field, []).extend(range(at, at + len(block)))
    owned = {field: np.array(list(dict.fromkeys(d for d in ds if fields[d] == field)), np.int64)
             for field, ds in dims.items()}  # a block over the field's own old dims: once
    owned = {field: ds for field, ds in owned.items() if len(ds)}  # l1.v5: no time dims left
    if sorted(d for ds in owned.values() for d in ds) != list(range(DIM)):
        raise RuntimeError(f"the layer-1 blocks of {layout} do not tile its {DIM} dims")
    return tuple(names), tuple(fields), owned


_NAMED = {layout: _named(layout) for layout in LAYOUTS}
DIM_NAMES, DIM_FIELDS, _ = _NAMED[VERSION]
FIELDS: tuple[str, ...] = tuple(_NAMED[VERSION][2])
_CAPS = dict(VOLUME)
# Fields whose every dim is a hash bucket (identities, the extra fields): no dim names a value.
HASHED = frozenset(f for f, _ in IDENTITY) | {EXTRA_FIELD}


def dim_names(spec: object) -> list[str] | None:
    """The dim names of vectors made by `spec` (a FeatureSpec), or None for another layout."""
    version = getattr(spec, "version", None)
    if version in _NAMED:  # layout versions name their layer ("l1.")
        return list(_NAMED[version][0])
    return None


def field_dims(layout: str = VERSION) -> dict[str, np.ndarray]:
    """Each field's dims in a layout's vector (`FIELDS` order; a volume's own dim first)."""
    return _NAMED[layout][2]


def field_names(field: str, layout: str = VERSION) -> list[str]:
    """The names of a field's dims (`field_dims` order): "protocol=tcp", "user:rarity", ..."""
    return [_NAMED[layout][0][d] for d in field_dims(layout)[field]]


def counted(field: str, layout: str = VERSION) -> bool:
    """Whether the layout encodes `field` only by what training saw (an `l1.v4` identity field
    or pair), not by buckets or values."""
    return field not in SEEN_AT and f"{field}:{NEVER_SEEN}" in field_names(field, layout)


def value_dims(field: str, layout: str = VERSION) -> int:
    """How many of a field's dims (`field_dims` order) encode its value: all but `l1.v5`'s
    never-seen dim of a network field, which comes last."""
    names = field_names(field, layout)
    return len(names) - (field in SEEN_AT and names[-1] == f"{field}:{NEVER_SEEN}")


def decode(field: str, block: np.ndarray, robust: bool = False, layout: str = VERSION) -> str:
    """A field's dims of one vector (values in [0, 1]) as readable text (see `decode_rows`)."""
    return decode_rows(field, np.asarray(block)[None, :], robust, layout)[0]


def decode_rows(field: str, blocks: np.ndarray, robust: bool = False,
                layout: str = VERSION) -> list[str]:
    """A field's dims of many vectors, (rows, `field_dims(layout)[field]`), as readable text.

    One-hot blocks give the strongest dim's value name ("-" when none reaches 0.5); ports
    the port number; volumes the amount (or the robust-scaled value); the time its time of
    day; hashed fields "set" or "-".
    """
    blocks = np.asarray(blocks, np.float64)
    names = field_names(field, layout)
    if counted(field, layout):  # `l1.v4`: whether training saw the value
        never = blocks[:, names.index(f"{field}:{NEVER_SEEN}")] >= 0.5
        present = (blocks[:, names.index(f"{field}:present")] >= 0.5
                   if f"{field}:present" in names else np.ones(len(blocks), bool))
        return ["a value never seen in training" if n else "a value seen in training" if p
                else "-" for n, p in zip(never, present)]
    blocks, names = blocks[:, :value_dims(field, layout)], names[:value_dims(field, layout)]
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
        # A time's (sin+1)/2, (cos+1)/2 lie on a circle of radius 1/2; zeros (a missing time,
        # a layout that leaves the time at 0) and a reconstruction of them lie far off it.
        radius = np.hypot(blocks[:, 0] - 0.5, blocks[:, 1] - 0.5)
        angle = np.arctan2(2 * blocks[:, 0] - 1, 2 * blocks[:, 1] - 1)
        minutes = np.rint((angle / (2 * np.pi)) % 1.0 * 1440).astype(np.int64) % 1440
        return ["-" if abs(r - 0.5) > 0.125 else f"{m // 60:02d}:{m % 60:02d} UTC"
                for m, r in zip(minutes, radius)]
    texts = []
    for name in names:
        if "#" in name:  # a hashed bucket: a value outside the named ones
            texts.append("other" if field in ("event_type", "protocol", "service", "conn_state")
                         else "set")
        else:
            texts.append(name.split("=", 1)[1] if "=" in name else name.split(":", 1)[1])
    best = blocks.argmax(1)
    return ["-" if v < 0.5 else texts[b] for b, v in zip(best, blocks[np.arange(len(best)), best])]
