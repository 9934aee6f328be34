"""Column names of well-known header-less CSV files, by name.

    maximus-train pipeline --source csv:KDDTrain+.txt --column-names nsl_kdd

A preset gives the columns of a file that has no header line, and the field map that puts
them on the canonical schema (`training.collection.schema`); columns without an entry keep
their names as extra fields. Columns that are labels (NSL-KDD's `label` and `difficulty`)
never become features (`training.collection.schema.LABEL_SOURCE_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from training.errors import ConfigError


@dataclass(frozen=True)
class ColumnPreset:
    """The columns of a header-less file and where they go."""

    names: tuple[str, ...]
    field_map: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


# NSL-KDD (KDDTrain+.txt, KDDTest+.txt, KDDTrain+_20Percent.txt): the 41 KDD Cup 99 features,
# the label (normal or an attack name) and the difficulty (how many of 21 learners got the row
# right). No timestamps and no addresses: only layer 1 can learn from it.
NSL_KDD_COLUMNS = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate", "label",
    "difficulty",
)
NSL_KDD_FIELDS = {"protocol": "protocol_type", "conn_state": "flag", "bytes_sent": "src_bytes",
                  "bytes_received": "dst_bytes"}

PRESETS: dict[str, ColumnPreset] = {
    "nsl_kdd": ColumnPreset(NSL_KDD_COLUMNS, NSL_KDD_FIELDS,
                            "NSL-KDD (KDDTrain+.txt, KDDTest+.txt, ...): 41 features, label, "
                            "difficulty"),
}


def column_names(value: str | Sequence[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Column names (and the preset's field map) from a preset name ("nsl_kdd"), a
    comma-separated list ("a,b,c") or a list of names.

    Raises:
        ConfigError: an empty name, or a single word that is no preset (the message lists
            the presets).
    """
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        if key in PRESETS:
            preset = PRESETS[key]
            return preset.names, dict(preset.field_map)
        if "," not in value:
            raise ConfigError(f"column names: {value!r} is neither a preset ("
                              f"{', '.join(sorted(PRESETS))}) nor a comma-separated list of "
                              "names (a,b,c)")
        value = value.split(",")
    names = tuple(str(name).strip() for name in value)
    if not names or not all(names):
        raise ConfigError(f"column names must be non-empty names, got {list(value)!r}")
    return names, {}
