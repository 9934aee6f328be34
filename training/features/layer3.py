"""Layer 3 (operational): per-entity sequences of bucket aggregates, for the TCN.

Each entity's events are counted into fixed buckets (`floor(timestamp / bucket)`, default 1
minute, aligned to the epoch). Every bucket in which the entity was active is the forecast
target of one window; the window's history is the T buckets before it (default 30), oldest
first, zero-filled where the entity was silent. So there are as many windows as active
(entity, bucket) pairs, never a dense series per entity.

| entity | its events | peers (for `peers`) |
|---|---|---|
| source_ip (default) | events it originated | dest_ip |
| dest_ip | events it received | source_ip |
| host | events its host logged | dest_ip |
| user | events of the account | host |

Bucket features `l3.v1` (11 dims; "log" is log1p(x) / log1p(cap), clipped to [0, 1]):

| dim | name | value |
|---|---|---|
| 0 | events | log of the number of events (cap 1e6) |
| 1-2 | bytes_sent, bytes_received | log of summed bytes from the event's source / destination (cap 1e12) |
| 3-4 | packets_sent, packets_received | log of summed packets each way (cap 1e9) |
| 5 | peers | log of distinct peers (cap 1e5) |
| 6 | dest_ports | log of distinct destination ports (cap 65536) |
| 7 | failure_ratio | share of events rejected or unanswered (`training.features.traffic`) |
| 8 | alerts | log of alert events: event_type alert, notice, weird or anomaly (cap 1e6) |
| 9 | severity_max | highest severity (0..1; missing counts as 0) |
| 10 | duration_mean | log of the mean duration in seconds, over events that have one (cap 86400) |

A window's label is that of its target bucket: 1 if any event there is a threat, else 0 if any
is benign, else -1. Its attack types are the distinct `attack_type` values of the target
bucket's threat events, sorted and joined with "|" ("" when none). All transforms are data-free.

Layout `l3.v2` (9 dims: the above without `alerts` and `severity_max`), for events whose labels
come from alert events (Suricata alerts: an alert is a threat). Counting the alerts would make
the label a feature, so alert events (event_type alert, notice, weird or anomaly) are no
feature rows at all: the windows are built from the other events, and an alert only labels the
window of its (entity, bucket), with its attack type. An alert whose (entity, bucket) has no
other event labels nothing (counted as `alerts_without_window`). Built with
`alert_labels=True`; models of `l3.v1` load and score as before.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import ConfigError
from training.features.encoding import FeatureSpec, category_codes, log_scale, numbers
from training.features.layer1 import EVENT_CATEGORIES
from training.features.layer3_windows import Layer3Windows
from training.features.traffic import (
    CONN_STATE_CLASSES, FAILED_CLASSES, Groups, amounts, check_period, classes, column,
    entity_codes, floor_div, labels, ratio, timestamps_us, unique, value_codes,
)

logger = logging.getLogger(__name__)

VERSION = "l3.v1"
VERSION_ALERT_LABELS = "l3.v2"
ENTITIES: dict[str, tuple[str, str]] = {
    "source_ip": ("source_ip", "dest_ip"),
    "dest_ip": ("dest_ip", "source_ip"),
    "host": ("host", "dest_ip"),
    "user": ("user", "host"),
}
CAPS = {"count": 1e6, "bytes": 1e12, "packets": 1e9, "ports": 65536.0, "peers": 1e5,
        "duration": 86_400.0}
FEATURES = ("events", "bytes_sent", "bytes_received", "packets_sent", "packets_received", "peers",
            "dest_ports", "failure_ratio", "alerts", "severity_max", "duration_mean")
ALERT_FEATURES = ("alerts", "severity_max")  # left out of l3.v2: they are what labels come from
FEATURES_V2 = tuple(f for f in FEATURES if f not in ALERT_FEATURES)
ALERT_EVENT_TYPES = EVENT_CATEGORIES["alert"]
MAX_HISTORY = 10_000
_FAILED = [list(CONN_STATE_CLASSES).index(c) for c in FAILED_CLASSES]


class Layer3WindowBuilder:
    """Canonical event table -> (windows, T, 11) float32 histories and their targets.

    Args:
        bucket_seconds: bucket length in seconds (> 0).
        history: T, the number of buckets before the target in every window (1..10000).
        entity: whose sequences: "source_ip", "dest_ip", "host" or "user".
        alert_labels: the labels come from alert events: layout `l3.v2` (module docstring).

    Raises:
        ConfigError: an argument breaks its rule.
    """

    def __init__(self, *, bucket_seconds: float = 60.0, history: int = 30,
                 entity: str = "source_ip", alert_labels: bool = False) -> None:
        self._bucket_us = check_period("bucket_seconds", bucket_seconds)
        if (isinstance(history, bool) or not isinstance(history, int)
                or not 1 <= history <= MAX_HISTORY):
            raise ConfigError(f"history must be an integer in 1..{MAX_HISTORY}, got {history!r}")
        if entity not in ENTITIES:
            raise ConfigError(f"entity must be one of {', '.join(ENTITIES)}, got {entity!r}")
        if not isinstance(alert_labels, bool):
            raise ConfigError(f"alert_labels must be True or False, got {alert_labels!r}")
        self.bucket_seconds = bucket_seconds
        self.history = history
        self.entity = entity
        self.alert_labels = alert_labels

    @property
    def unit_fields(self) -> tuple[str, ...]:
        """The event fields a window needs: an event without one of them is in no window."""
        return ("timestamp", ENTITIES[self.entity][0])

    @property
    def features(self) -> tuple[str, ...]:
        """The names of the bucket features, in order."""
        return FEATURES_V2 if self.alert_labels else FEATURES

    @property
    def version(self) -> str:
        return VERSION_ALERT_LABELS if self.alert_labels else VERSION

    @property
    def spec(self) -> FeatureSpec:
        """The recipe: bucket, T, entity kind, caps and feature names."""
        config = {
            "bucket_seconds": float(self.bucket_seconds),
            "history": self.history,
            "entity": self.entity,
            "peer": ENTITIES[self.entity][1],
            "caps": dict(CAPS),
            "alert_event_types": list(ALERT_EVENT_TYPES),
            "conn_state_classes": {k: list(v) for k, v in CONN_STATE_CLASSES.items()},
            "features": list(self.features),
        }
        if self.alert_labels:
            config["alerts_label_only"] = True
        return FeatureSpec("layer3", self.version, config)

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> Layer3WindowBuilder:
        """Rebuild the exact transform a spec describes.

        Raises:
            SchemaError: the spec is for another layer or version, or differs from what this
                code would produce with its settings.
        """
        version = spec.version if spec.version in (VERSION, VERSION_ALERT_LABELS) else VERSION
        return spec.rebuild("layer3", version, "the layer-3 window builder", lambda config: cls(
            bucket_seconds=config["bucket_seconds"], history=config["history"],
            entity=config["entity"], alert_labels=version == VERSION_ALERT_LABELS))

    def featurize(self, table: pa.Table) -> Layer3Windows:
        """Build one window per active (entity, bucket).

        Args:
            table: canonical events (`training.collection.schema.CANONICAL_SCHEMA`; missing columns
                read as null). Not modified.

        Returns:
            the windows, sorted by entity name, then time.

        Shapes:
            X: (windows, T, F); target: (windows, F); labels, entity, time: (windows,), with F
            11 (l3.v1) or 9 (l3.v2).
        """
        name, peer = ENTITIES[self.entity]
        micros, has_time = timestamps_us(table)
        (codes,), names = entity_codes(column(table, name))
        has_entity = codes >= 0
        usable = has_entity & has_time
        is_alert = _alert_rows(table) if self.alert_labels else np.zeros(table.num_rows, bool)
        rows = np.flatnonzero(usable & ~is_alert)
        bucket = floor_div(micros[rows], self._bucket_us)
        order = np.lexsort((bucket, codes[rows]))  # stable: table order within a bucket
        rows, bucket = rows[order], bucket[order]
        entity = codes[rows]
        groups = Groups(entity, bucket)
        target = _bucket_features(table, rows, groups, peer, not self.alert_labels)
        group_entity, group_bucket = entity[groups.starts], bucket[groups.starts]
        x = _histories(target, group_entity, group_bucket, self.history)

        all_threat = labels(table)
        threat = all_threat[rows]
        attack = column(table, "attack_type").take(pa.array(rows, type=pa.int64()))
        stats = {"events": table.num_rows, "used": len(rows),
                 "without_entity": int((~has_entity).sum()),
                 "without_timestamp": int((has_entity & ~has_time).sum()),
                 "windows": groups.size, "entities": len(unique(group_entity))}
        label_rows, label_group = threat, groups.of_row
        if self.alert_labels:
            threat, attack, label_rows, label_group = _alert_labels(
                table, rows, threat, attack, is_alert, groups, group_entity, group_bucket,
                codes, micros, usable, self._bucket_us, stats)
        window_labels = np.full(groups.size, -1, np.int8)
        np.maximum.at(window_labels, label_group, label_rows)
        logger.info("layer 3: %(windows)d windows of %(entities)d entities from %(used)d of "
                    "%(events)d events", stats)
        return Layer3Windows(
            spec=self.spec, X=x, target=target, labels=window_labels,
            entity=names.take(pa.array(group_entity, type=pa.int64())),
            time=(group_bucket * self._bucket_us).astype("datetime64[us]"),
            attack_type=_attack_types(attack, label_group, groups.size, label_rows),
            event_ptr=np.append(groups.starts, len(rows)).astype(np.int64),
            event_row=rows.astype(np.int64),
            event_id=column(table, "event_id").take(pa.array(rows)).fill_null(""),
            stats=stats,
        )


def _alert_rows(table: pa.Table) -> np.ndarray:
    """True for the rows whose event_type is an alert type (alert, notice, weird, anomaly)."""
    alert_types = {event_type: 0 for event_type in ALERT_EVENT_TYPES}
    return category_codes(column(table, "event_type"), alert_types) == 0


def _window_of(entity: np.ndarray, bucket: np.ndarray, group_entity: np.ndarray,
               group_bucket: np.ndarray) -> np.ndarray:
    """The window (group) of each (entity, bucket) pair, -1 where there is none. The groups
    are sorted by (entity, bucket)."""
    if not len(group_entity) or not len(entity):
        return np.full(len(entity), -1, dtype=np.int64)
    keys = np.concatenate([np.stack([group_entity, group_bucket], axis=1),
                           np.stack([entity, bucket], axis=1)]).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    first = np.full(inverse.max() + 1, -1, dtype=np.int64)
    first[inverse[:len(group_entity)]] = np.arange(len(group_entity))
    return first[inverse[len(group_entity):]]


def _bucket_features(table: pa.Table, rows: np.ndarray, groups: Groups, peer: str,
                     with_alerts: bool = True) -> np.ndarray:
    """(groups, 11) float32 aggregates of each (entity, bucket); (groups, 9) without the alert
    features (l3.v2)."""
    events = groups.count().astype(np.float64)
    sums = {name: groups.sum(amounts(table, name)[rows])
            for name in ("bytes_sent", "bytes_received", "packets_sent", "packets_received")}
    state = classes(table, "conn_state", CONN_STATE_CLASSES)[rows]
    alerts = _alert_rows(table)[rows]
    severity = np.nan_to_num(numbers(column(table, "severity"))[rows], nan=0.0)
    duration = numbers(column(table, "duration"))[rows]
    timed = ~np.isnan(duration)
    mean_duration = ratio(groups.sum(np.where(timed, duration, 0.0)), groups.sum(timed.astype(float)))
    peers = groups.count_distinct(value_codes(column(table, peer))[rows])
    ports = groups.count_distinct(value_codes(column(table, "dest_port"))[rows])
    named = dict(zip(FEATURES, [
        log_scale(events, CAPS["count"]),
        log_scale(sums["bytes_sent"], CAPS["bytes"]),
        log_scale(sums["bytes_received"], CAPS["bytes"]),
        log_scale(sums["packets_sent"], CAPS["packets"]),
        log_scale(sums["packets_received"], CAPS["packets"]),
        log_scale(peers, CAPS["peers"]),
        log_scale(ports, CAPS["ports"]),
        groups.sum(np.isin(state, _FAILED).astype(float)) / events,
        log_scale(groups.sum(alerts.astype(float)), CAPS["count"]),
        np.clip(groups.max(severity), 0.0, 1.0),
        log_scale(mean_duration, CAPS["duration"]),
    ]))
    names = FEATURES if with_alerts else FEATURES_V2
    columns = [named[name] for name in names]
    return np.stack(columns, axis=1).astype(np.float32).reshape(groups.size, len(names))


def _histories(features: np.ndarray, entity: np.ndarray, bucket: np.ndarray, steps: int
               ) -> np.ndarray:
    """(groups, steps, F): for each group, the features of its entity's `steps` previous buckets.

    Groups are sorted by (entity, bucket), so a bucket `gap` buckets back is at most `gap`
    groups back: looking `lag` groups back for lag = 1..steps finds every one of them.
    """
    n = len(features)
    out = np.zeros((n, steps, features.shape[1]), dtype=np.float32)  # (windows, T, F)
    for lag in range(1, min(steps, n - 1) + 1):
        gap = bucket[lag:] - bucket[:-lag]
        within = np.flatnonzero((entity[lag:] == entity[:-lag]) & (gap <= steps))
        if not len(within):
            break  # farther back is another entity or further in the past for every group
        out[within + lag, steps - gap[within]] = features[within]
    return out


def _attack_types(attack: pa.Array, group: np.ndarray, n_groups: int, threat: np.ndarray
                  ) -> pa.Array:
    """Distinct attack types of each group's threat rows, sorted, joined with "|".

    Args:
        attack: the attack type of every labeling row; group: the window of each; threat:
            their labels.
    """
    attack = pc.if_else(pa.array(threat == 1), attack, pa.scalar(None, pa.string()))
    (codes,), names = entity_codes(attack)
    keep = codes >= 0
    span = max(len(names), 1)
    pairs = unique(group[keep].astype(np.int64) * span + codes[keep])
    offsets = np.searchsorted(pairs // span, np.arange(n_groups + 1)).astype(np.int32)
    values = names.take(pa.array(pairs % span, type=pa.int64()))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), "|")


def _alert_labels(table: pa.Table, rows: np.ndarray, threat: np.ndarray, attack: pa.Array,
                  is_alert: np.ndarray, groups: Groups, group_entity: np.ndarray,
                  group_bucket: np.ndarray, codes: np.ndarray, micros: np.ndarray,
                  usable: np.ndarray, bucket_us: int, stats: dict
                  ) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray]:
    """l3.v2: the threat alerts label the feature rows of their flow (same Community ID) and
    the window of their own (entity, bucket).

    Returns:
        (threat, attack type) of the feature rows after the flow labels, then the labels and
        windows of every labeling row (feature rows, then alerts matched to a window).
    """
    all_threat = labels(table)
    alerts = np.flatnonzero(is_alert & (all_threat == 1))
    cid = column(table, "community_id").cast(pa.string())
    alert_cid = cid.take(pa.array(alerts, type=pa.int64()))
    alert_attack = column(table, "attack_type").take(pa.array(alerts, type=pa.int64()))
    # The flow's rows: the first alert with the same Community ID gives its attack type.
    at = pc.index_in(cid.take(pa.array(rows, type=pa.int64())), value_set=alert_cid,
                     skip_nulls=True)
    flow = at.is_valid().to_numpy(zero_copy_only=False)
    threat = np.where(flow, 1, threat).astype(np.int8)
    attack = pc.if_else(pa.array(flow), alert_attack.take(at.fill_null(0)) if len(alerts)
                        else attack, attack)
    timed = np.flatnonzero(usable[alerts])  # alerts (by position) with an entity and a time
    window = _window_of(codes[alerts[timed]], floor_div(micros[alerts[timed]], bucket_us),
                        group_entity, group_bucket)
    by_window = timed[window >= 0]
    labeled = pc.unique(cid.take(pa.array(rows[flow], type=pa.int64()))).drop_null()
    by_flow = pc.is_in(alert_cid, value_set=labeled).fill_null(False).to_numpy(
        zero_copy_only=False)
    by_flow[by_window] = True
    stats.update(alert_events=int(is_alert.sum()), threat_alerts=len(alerts),
                 flows_labeled_by_alerts=len(labeled),
                 alerts_without_window=int((~by_flow).sum()))
    label_rows = np.concatenate([threat, all_threat[alerts[by_window]]]).astype(np.int8)
    label_group = np.concatenate([groups.of_row, window[window >= 0]])
    attack = pa.concat_arrays([attack, alert_attack.take(pa.array(by_window, type=pa.int64()))])
    return threat, attack, label_rows, label_group
