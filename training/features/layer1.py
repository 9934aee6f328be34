"""Layer 1 (sensory): one 128-dim float32 vector in [0, 1] per event, for the VAE.

Layouts `l1.v5` (the default), `l1.v4`, `l1.v3`, `l1.v2` and `l1.v1` (dims are half-open
ranges). "One-hot" dims are 1 for the listed value; a value outside the list sets one of the
block's hashed dims instead; a missing value leaves the block 0.

| dims | block | encoding |
|---|---|---|
| 0-11 | event | 8 categories (network, dns, http, tls, file, auth, process, alert) one-hot, then 4 hashed buckets of the raw event_type for the rest |
| 12-17 | protocol | tcp, udp, icmp, icmpv6 one-hot; 2 hashed |
| 18-29 | service | dns, http, ssl/tls, ssh, smb, rdp, kerberos, ntp one-hot; 4 hashed |
| 30-44 | conn_state | Zeek S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH one-hot; 2 hashed |
| 45-48 | direction | inbound, outbound, internal, external |
| 49-56 | source address | private, public, IPv6, multicast/broadcast; 4 hashed buckets of the /24 (IPv4) or /48 (IPv6) |
| 57-64 | destination address | as source |
| 65-69 | source port | well-known (<1024), registered, dynamic (>=49152) one-hot; port/65535; common service port |
| 70-74 | destination port | as source |
| 75-79 | volume | log1p-scaled bytes sent, bytes received (cap 1e10), packets sent, received (cap 1e7), duration (cap 1 day) |
| 80 | severity | 0..1 as collected |
| 81-84 | time | time of day (to the second), day of week, each as (sin+1)/2 and (cos+1)/2 |
| 85-111 | identity | hashed buckets: user 4, host 4, process 4, parent process 3, command line 4, domain 4, file path or hash 4 (processes by lower-case file name) |
| 112-127 | extra fields | 16 buckets shared by every non-canonical field: numbers (and booleans) add log1p(abs(x))/log1p(1e9) at the bucket of their name, text sets the bucket of name=value to 1 (max when two meet); lists, nested values, record identifiers (`ID_FIELDS`: Zeek uid, Suricata flow_id, ...) and label fields (`label_fields`, by default `training.collection.schema.NOT_FEATURE_FIELDS`: NSL-KDD's difficulty, Suricata's alert.*, the shippers' envelope, ...) are left out; text that spells a number is that number (`numbers_in_text`, `training.features.layer1_extras`); times, identifiers and free text are left out (`behaviour_only_extras`, `training.features.layer1_extra_kinds`) |

Layout `l1.v2` is `l1.v1` with the dims that name *where and when* rather than *what* left at 0:
the hashed /24 (/48) buckets of both addresses (53-56, 61-64) and the time of day and week
(81-84). Hosts and subnets never seen in training, and captures recorded at other hours, then
no longer look anomalous for that alone. Chosen on the detection harness's development
captures only (`benchmarks/ablation_layer1.py`, BENCHMARKS.md): mean per-event ROC-AUC over
IoT-23 42-1, 44-1 and the demo events, one seed, VAE 0.355 -> 0.457, isolation forest 0.528 ->
0.550, kNN 0.755 -> 0.779.

Layout `l1.v3` is `l1.v2` plus two magnitude steps per volume, written into dims `l1.v2`
leaves at 0 (`VOLUME_STEPS`: bytes sent 53-54, bytes received 55-56, packets sent 61-62,
packets received 63-64, duration 81-82; 83-84 stay 0). Step one rises from 0 to 1 as the
volume dim goes from 0.5 to 0.75, step two from 0.75 to 1 (`STEP_EDGES`; in raw units from
1e5 bytes, 3,161 packets or 293 s, to 3.2e7 bytes, 177,827 packets or 1.4 h, to the caps).
Why: a volume is one dim in [0, 1] whose decoder guess is middling, so a byte count never seen
in training costs little more than benign variation: under the VAE's default squared error at
most about 0.5 (IoT-23 42-1, 1e10 bytes sent on `l1.v2`: 0.69 against a 99th-percentile
threshold of 2.23), under its cross-entropy a few nats (4.3 against 10.1). A step that is 0 in
every benign event is one the decoder predicts near 0, and setting it costs about 1 under the
squared error (2.75 against 2.18 on `l1.v3`) and several nats under the cross-entropy (35.9
against 10.4), like a never-seen category. Models of `l1.v1` and `l1.v2` keep their
layout: `from_spec` rebuilds it.

Layout `l1.v4` is `l1.v3` with the identity block (85-111) encoding what training saw instead
of hash buckets: per identity field present, rarity and never seen, and never seen together
for four pairs (parent and process, user and process, host and process, host and user), from
value counts `fit` learns on the training events (`training.features.layer1_rarity`).
Unfitted (no training events to count), it is `l1.v3`, and its spec says so. Chosen on the
demo events' pipeline runs: layer-1 test ROC-AUC 0.71-0.74 -> 0.84-0.86 (BENCHMARKS.md).
Layout `l1.v5` (the default) is `l1.v4` plus a never-seen dim for the connection state (83),
protocol (84) and service (110): a value training never had alerts as a new identity does.

The transform is data-free by default: one event can be featurized with nothing fitted. With
`robust=True`, the five volume dims are instead scaled between the 1st and 99th percentiles of
log1p(value) learned by `fit` on the training split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.schema import (
    ALERT_EVENT_TYPES, CANONICAL_SCHEMA, NOT_FEATURE_FIELDS,
)
from training.errors import ConfigError
from training.features.encoding import (
    FeatureSpec, buckets, column, cyclic, log_scale, numbers,
)
from training.features.layer1_extras import (  # the extra block's names, re-exported
    EXTRA as EXTRA, EXTRA_BUCKETS as EXTRA_BUCKETS, EXTRA_CAP as EXTRA_CAP,
    ID_FIELDS as ID_FIELDS, write_extras,
)
from training.features.layer1_rarity import ValueCounts, identity_values, write_rarity
from training.kernels.netaddr import pack_ips

DIM = 128
VERSION = "l1.v5"

EVENT_CATEGORIES = {
    "network": ("conn", "flow", "network_connection", "netflow", "sysmon:3", "security:5156"),
    "dns": ("dns", "dns_query", "sysmon:22"),
    "http": ("http", "http_request"),
    "tls": ("ssl", "tls", "x509"),
    "file": ("files", "fileinfo", "file_access", "smb_files", "sysmon:11", "security:4663"),
    "auth": ("authentication", "ssh", "kerberos", "ntlm", "security:4624", "security:4625",
             "security:4648", "security:4672"),
    "process": ("process_creation", "sysmon:1", "security:4688"),
    "alert": ALERT_EVENT_TYPES,
}
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6")
SERVICES = {"dns": 0, "http": 1, "ssl": 2, "tls": 2, "ssh": 3, "smb": 4, "rdp": 5,
            "krb": 6, "krb_tcp": 6, "kerberos": 6, "ntp": 7}
CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH",
               "SHR", "OTH")
DIRECTIONS = ("inbound", "outbound", "internal", "external")
COMMON_PORTS = (20, 21, 22, 23, 25, 53, 67, 68, 80, 88, 110, 123, 135, 137, 138, 139, 143, 161,
                389, 443, 445, 465, 587, 636, 993, 995, 1433, 3306, 3389, 5432, 5900, 5985,
                8080, 8443)
VOLUME = (("bytes_sent", 1e10), ("bytes_received", 1e10), ("packets_sent", 1e7),
          ("packets_received", 1e7), ("duration", 86_400.0))
IDENTITY = (("user", 4), ("host", 4), ("process", 4), ("parent_process", 3),
            ("command_line", 4), ("domain", 4), ("file", 4))

# Where each block starts; the blocks tile 0..127 in this order.
EVENT, PROTOCOL, SERVICE, CONN_STATE, DIRECTION = 0, 12, 18, 30, 45
# Each layout and the dims it leaves at 0 (see the module docstring), as runs of adjacent
# dims: zeroing a column slice is ~3x faster than a fancy-indexed list of columns.
LAYOUTS: dict[str, tuple[range, ...]] = {"l1.v1": (), **{  # l1.v4, v5: + counts, once fitted
    layout: (range(53, 57), range(61, 65), range(81, 85))
    for layout in ("l1.v2", "l1.v3", "l1.v4", "l1.v5")}}
RARITY_LAYOUTS = ("l1.v4", "l1.v5")  # identity block: present and rarity dims (`layer1_rarity`)
NETWORK_SEEN_LAYOUTS = ("l1.v5",)  # + never-seen dims of four network fields (`SEEN_AT`)
# Layouts with magnitude steps: the first of each volume's two step dims, in `VOLUME` order.
VOLUME_STEPS = {layout: (53, 55, 61, 63, 81) for layout in ("l1.v3", "l1.v4", "l1.v5")}
STEP_EDGES = (0.5, 0.75, 1.0)  # on the volume dim's scale: step k rises from edge k to k + 1
SOURCE_ADDRESS, DEST_ADDRESS, SOURCE_PORT, DEST_PORT = 49, 57, 65, 70
VOLUME_AT, SEVERITY, TIME, IDENTITY_AT = 75, 80, 81, 85  # EXTRA: `layer1_extras`

_CANONICAL = frozenset(CANONICAL_SCHEMA.names)
_EVENT_VOCABULARY = {name: i for i, names in enumerate(EVENT_CATEGORIES.values()) for name in names}
_US_PER_DAY = 86_400 * 1_000_000
# (column, first dim, vocabulary, known dims, hashed dims) of the one-hot blocks
_CATEGORICAL = (
    ("event_type", EVENT, _EVENT_VOCABULARY, 8, 4),
    ("protocol", PROTOCOL, dict(zip(PROTOCOLS, range(4))), 4, 2),
    ("service", SERVICE, SERVICES, 8, 4),
    ("conn_state", CONN_STATE, {s: i for i, s in enumerate(CONN_STATES)}, 13, 2),
    ("direction", DIRECTION, {d: i for i, d in enumerate(DIRECTIONS)}, 4, 0),
)


class Layer1Featurizer:
    """Canonical event table -> (n, 128) float32 in [0, 1] (see the module docstring).

    Args:
        robust: scale the volume dims by percentiles learned in `fit` instead of fixed caps.
        label_fields: extra fields that are labels (or derived from them), never features;
            None: `NOT_FEATURE_FIELDS` (label and shipping fields). Specs keep their list; those
            written before this setting existed have none
            (their models keep the transform they were trained with).
        layout: `l1.v5` (default), `l1.v4`, `l1.v3`, `l1.v2` or `l1.v1` (module docstring).
        numbers_in_text: encode an extra field's text that spells a number ("277") as that
            number, so a value reads the same whatever Arrow type the reader gave its field
            (`training.features.layer1_extras`). Specs written before this setting existed
            have it off (their models keep the transform they were trained with).
        behaviour_only_extras: leave out the extra fields and text values that are times,
            identifiers or free text (`training.features.layer1_extra_kinds`). Specs written
            before this setting existed have it off (their models keep their transform).
    """

    def __init__(self, robust: bool = False, label_fields: Sequence[str] | None = None,
                 layout: str = VERSION, numbers_in_text: bool = True,
                 behaviour_only_extras: bool = True) -> None:
        for name, flag in (("robust", robust), ("numbers_in_text", numbers_in_text),
                           ("behaviour_only_extras", behaviour_only_extras)):
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be True or False, got {flag!r}")
        if layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.layout = layout
        fields = NOT_FEATURE_FIELDS if label_fields is None else label_fields
        if isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields):
            raise ConfigError(f"label_fields must be a list of field names, got {fields!r}")
        self.robust = robust
        self.label_fields = tuple(fields)
        self.numbers_in_text = numbers_in_text
        self.behaviour_only_extras = behaviour_only_extras
        self.ranges_: dict[str, list[float]] | None = None
        self.counts_: ValueCounts | None = None  # `l1.v4`: how often training saw each value

    # -- fitted state and its spec -------------------------------------------------------------

    def fit(self, table: pa.Table) -> Layer1Featurizer:
        """Learn the volume ranges from the training split (when robust) and, for `l1.v4` and
        `l1.v5`, how often it holds each identity (and `l1.v5` network) value."""
        if self.layout in RARITY_LAYOUTS:
            self.counts_ = ValueCounts.fit(table, network=self.layout in NETWORK_SEEN_LAYOUTS)
        if self.robust:
            ranges = {}
            for name, _ in VOLUME:
                logged = np.log1p(np.clip(numbers(column(table, name, pa.float64())), 0, None))
                logged = logged[np.isfinite(logged)]
                low, high = (np.percentile(logged, [1, 99]) if len(logged) else (0.0, 1.0))
                ranges[name] = [float(low), float(max(high, low + 1e-9))]
            self.ranges_ = ranges
        return self

    @property
    def learns_from_events(self) -> bool:
        """Whether `fit` on the training events changes the transform beyond `robust`."""
        return self.layout in RARITY_LAYOUTS

    def _check_fitted(self) -> None:
        if self.robust and self.ranges_ is None:
            raise ConfigError("this robust Layer1Featurizer is not fitted: call fit(train_table)")

    @property
    def spec(self) -> FeatureSpec:
        self._check_fitted()
        config = {"dim": DIM, "robust": self.robust, "volume_caps": dict(VOLUME),
                  "extra_buckets": EXTRA_BUCKETS, "id_fields": list(ID_FIELDS)}
        if self.label_fields:
            config["label_fields"] = list(self.label_fields)
        for name in ("numbers_in_text", "behaviour_only_extras"):
            if getattr(self, name):  # absent from older specs: their transform is unchanged
                config[name] = True
        fitted = {**({"ranges": self.ranges_} if self.robust else {}),
                  **({"value_counts": self.counts_.to_dict()} if self.counts_ else {})}
        # Unfitted, l1.v4/v5 is l1.v3 (hash buckets; no counts to encode): its spec says so.
        layout = self.layout if self.counts_ or self.layout not in RARITY_LAYOUTS else "l1.v3"
        return FeatureSpec("layer1", layout, config, fitted or None)

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> Layer1Featurizer:
        """Rebuild the exact transform a spec describes."""
        layout = spec.version if spec.version in LAYOUTS else VERSION
        spec.require_kind("layer1", layout, "the layer-1 featurizer")
        featurizer = cls(robust=bool(spec.config.get("robust")),
                         label_fields=spec.config.get("label_fields", ()), layout=layout,
                         numbers_in_text=spec.config.get("numbers_in_text", False),
                         behaviour_only_extras=spec.config.get("behaviour_only_extras", False))
        if featurizer.robust:
            featurizer.ranges_ = (spec.fitted or {}).get("ranges")
        if (spec.fitted or {}).get("value_counts") is not None:
            featurizer.counts_ = ValueCounts.from_dict(spec.fitted["value_counts"])
        featurizer.spec.require(spec, "the spec given")
        return featurizer

    # -- the transform ---------------------------------------------------------------------

    def featurize(self, table: pa.Table) -> np.ndarray:
        """(n, 128) float32 in [0, 1]. Shapes: table (n rows) -> (n, 128)."""
        self._check_fitted()
        n = table.num_rows
        out = np.zeros((n, DIM), dtype=np.float32)
        rows = np.arange(n) * DIM  # flat offset of each row: flat writes are ~3x faster
        for name, at, vocabulary, n_known, n_hashed in _CATEGORICAL:
            _categorical(out, rows, column(table, name, pa.string()), at, vocabulary, n_known,
                         n_hashed, name)
        for name, at in (("source_ip", SOURCE_ADDRESS), ("dest_ip", DEST_ADDRESS)):
            _address(out, column(table, name, pa.string()), at)
        for name, at in (("source_port", SOURCE_PORT), ("dest_port", DEST_PORT)):
            _port(out, column(table, name, pa.int32()), at)
        self._volume(out, table)
        out[:, SEVERITY] = np.clip(np.nan_to_num(numbers(column(table, "severity", pa.float32()))),
                                   0, 1)
        _time(out, column(table, "timestamp", CANONICAL_SCHEMA.field("timestamp").type))
        _identity(out, rows, table)
        write_extras(out, table, self.label_fields, self.numbers_in_text,
                     self.behaviour_only_extras)
        apply_layout(out, self.layout)
        if self.counts_ is not None:  # l1.v4/v5, fitted: what training saw
            write_rarity(out, table, self.counts_)
        return out

    def _volume(self, out: np.ndarray, table: pa.Table) -> None:
        for k, (name, cap) in enumerate(VOLUME):
            values = numbers(column(table, name, pa.float64()))
            if self.robust:
                low, high = self.ranges_[name]
                logged = np.log1p(np.clip(np.nan_to_num(values, nan=0.0), 0, None))
                scaled = np.where(np.isnan(values), 0.0, np.clip((logged - low) / (high - low), 0, 1))
            else:
                scaled = log_scale(values, cap)
            out[:, VOLUME_AT + k] = scaled


def apply_layout(out: np.ndarray, layout: str) -> None:
    """Turn `l1.v1` vectors `out` (n, 128) into `layout`'s in place: its zeroed dims, then its
    magnitude steps (read from the volume dims; all five volumes in one numpy expression, as
    one event's vector pays per call)."""
    for dims in LAYOUTS[layout]:
        out[:, dims.start:dims.stop] = 0.0
    firsts = VOLUME_STEPS.get(layout)
    if firsts:
        steps = volume_steps(out[:, VOLUME_AT:VOLUME_AT + len(firsts)])  # (n, 5, 2)
        out[:, _STEP_DIMS[layout]] = steps.reshape(len(out), 2 * len(firsts))


_STEP_LOW = np.asarray(STEP_EDGES[:-1])
_STEP_SPAN = np.asarray(STEP_EDGES[1:]) - _STEP_LOW
# Per layout with steps: every step dim, in the order `volume_steps` gives them.
_STEP_DIMS = {layout: np.array([[at, at + 1] for at in firsts]).ravel()
              for layout, firsts in VOLUME_STEPS.items()}


def volume_steps(scaled: np.ndarray) -> np.ndarray:
    """The two magnitude steps of volume dims (`STEP_EDGES`), in float32.
    Shapes: (...,) -> (..., 2)."""
    return np.clip((scaled[..., None] - _STEP_LOW) / _STEP_SPAN, 0.0, 1.0).astype(np.float32)


def _set(out: np.ndarray, rows: np.ndarray, dims: np.ndarray, where: np.ndarray,
         values: np.ndarray | float = 1.0) -> None:
    """out[row, dims[row]] = value for the selected rows (`rows`: flat row offsets)."""
    values = values[where] if isinstance(values, np.ndarray) else values
    out.reshape(-1)[(rows + dims)[where]] = values


def _categorical(out: np.ndarray, rows: np.ndarray, column: pa.Array, at: int,
                 vocabulary: dict[str, int] | None, n_known: int, n_hashed: int, salt: str) -> None:
    """Known values one-hot at `at + code`; the rest in `n_hashed` hashed dims after them.
    Decided once per distinct value, then gathered."""
    encoded = pc.dictionary_encode(column)
    distinct = encoded.dictionary
    known = np.array([vocabulary.get(v, -1) for v in distinct.to_pylist()] if vocabulary else
                     np.full(len(distinct), -1), dtype=np.int64)
    hashed = buckets(distinct, n_hashed, salt) if n_hashed else np.full(len(distinct), -1)
    dims = np.where(known >= 0, at + known, np.where(hashed >= 0, at + n_known + hashed, -1))
    per_row = np.append(dims, -1)[encoded.indices.fill_null(len(dims)).to_numpy(zero_copy_only=False)]
    _set(out, rows, per_row, per_row >= 0)


def _gather(out: np.ndarray, at: int, table: np.ndarray, codes: np.ndarray) -> None:
    """out[:, at:at + width] = table[codes] (the table's last row is all zeros: missing)."""
    out[:, at:at + table.shape[1]] = table[codes]


def _address_table(distinct: pa.Array) -> np.ndarray:
    """(k + 1, 8) features of k distinct addresses, plus a zero row for missing ones."""
    packed, version = pack_ips(distinct)
    v4, v6 = version == 4, version == 6
    b0, b1 = packed[:, 0], packed[:, 1]
    private = v4 & ((b0 == 10) | ((b0 == 172) & (b1 >= 16) & (b1 < 32)) | ((b0 == 192) & (b1 == 168))
                    | (b0 == 127) | ((b0 == 169) & (b1 == 254)))
    private |= v6 & (((b0 & 0xFE) == 0xFC) | ((b0 == 0xFE) & ((b1 & 0xC0) == 0x80))
                     | ((packed[:, :15] == 0).all(axis=1) & (packed[:, 15] == 1)))
    multicast = (v4 & ((b0 >= 224) & (b0 < 240) | (packed[:, :4] == 255).all(axis=1))) | (v6 & (b0 == 0xFF))
    valid = v4 | v6
    table = np.zeros((len(distinct) + 1, 8), dtype=np.float32)
    table[:-1, 0], table[:-1, 1] = private, valid & ~private & ~multicast
    table[:-1, 2], table[:-1, 3] = v6, multicast
    # The /24 of IPv4 or /48 of IPv6, with the version, as one integer per address.
    key = np.zeros(len(version), dtype=np.uint64)
    for i in range(6):
        byte = np.where((i < 3) | v6, packed[:, i], 0).astype(np.uint64)
        key = (key << np.uint64(8)) | byte
    key = (key << np.uint64(8)) | version.astype(np.uint8).astype(np.uint64)
    subnet = buckets(pa.array(key), 4, "subnet")
    table[np.flatnonzero(valid), 4 + subnet[valid]] = 1.0
    return table


def _address(out: np.ndarray, column: pa.Array, at: int) -> None:
    encoded = pc.dictionary_encode(column)
    table = _address_table(encoded.dictionary)
    _gather(out, at, table, encoded.indices.fill_null(len(table) - 1).to_numpy(zero_copy_only=False))


def _port_table() -> np.ndarray:
    """Features of every port 0..65535, and a zero row (65536) for a missing port."""
    port = np.arange(65536, dtype=np.float64)
    table = np.zeros((65537, 5), dtype=np.float32)
    table[:-1, 0], table[:-1, 1] = port < 1024, (port >= 1024) & (port < 49152)
    table[:-1, 2], table[:-1, 3] = port >= 49152, port / 65535.0
    table[:-1, 4] = np.isin(port, COMMON_PORTS)
    return table


_PORTS = _port_table()


def _port(out: np.ndarray, column: pa.Array, at: int) -> None:
    ports = column.cast(pa.int32()).fill_null(65536).to_numpy(zero_copy_only=False)
    _gather(out, at, _PORTS, ports)


def _cycle_table(steps: int) -> np.ndarray:
    """(sin+1)/2 and (cos+1)/2 of each step of a cycle, and a zero row for missing."""
    return np.vstack([np.column_stack(cyclic(np.arange(steps) / steps)),
                      np.zeros((1, 2))]).astype(np.float32)


_SECONDS_OF_DAY, _DAYS_OF_WEEK = _cycle_table(86_400), _cycle_table(7)


def _time(out: np.ndarray, column: pa.Array) -> None:
    """Hour of day (to the second) and day of week, cyclic."""
    micros = column.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    missing = micros < 0
    seconds = np.where(missing, 86_400, micros // 1_000_000 % 86_400)
    weekday = np.where(missing, 7, (micros // _US_PER_DAY + 3) % 7)  # 1970-01-01: Thursday
    _gather(out, TIME, _SECONDS_OF_DAY, seconds)
    _gather(out, TIME + 2, _DAYS_OF_WEEK, weekday)


def _identity(out: np.ndarray, rows: np.ndarray, table: pa.Table) -> None:
    at = IDENTITY_AT
    for name, size in IDENTITY:
        _categorical(out, rows, identity_values(table, name), at, None, 0, size, name)
        at += size

