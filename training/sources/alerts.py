"""Suricata alerts as labels, wherever their fields live: EVE files (`alert.signature`) or
documents indexed by Filebeat's Suricata module (`rule.name`, `suricata.eve.alert.*`).

An alert is a threat: is_threat 1, label = the alert category (else "alert"), attack_type = the
signature, severity from Suricata's level (1 = high .. 3 = low become 1.0 .. 0.33). Rows that
are not alerts get nulls here, so the field and label maps decide for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.sources.coerce import plain, to_float


def first_present(table: pa.Table, candidates: Sequence[str]) -> pa.Array | None:
    """The candidates present in `table`, coalesced row by row (None when none is present)."""
    present = [plain(table[name]) for name in candidates if name in table.column_names]
    if not present:
        return None
    return present[0] if len(present) == 1 else pc.coalesce(*present)


def alert_columns(table: pa.Table, alert: pa.Array, category: Sequence[str],
                  signature: Sequence[str], severity: Sequence[str]) -> dict[str, pa.Array]:
    """label, is_threat, attack_type and severity for the rows where `alert` is true.

    Args:
        table: the raw batch.
        alert: boolean per row, no nulls.
        category, signature, severity: candidate column names for each alert field.
    """
    if not pc.any(alert).as_py():
        return {}
    n = table.num_rows
    derived: dict[str, pa.Array] = {}
    categories = first_present(table, category)
    if categories is None:
        categories = pa.nulls(n, pa.string())
    derived["label"] = pc.if_else(alert, pc.coalesce(categories.cast(pa.string()), "alert"), None)
    derived["is_threat"] = pc.if_else(alert, pa.scalar(1, pa.int8()), pa.scalar(None, pa.int8()))
    signatures = first_present(table, signature)
    if signatures is not None:
        derived["attack_type"] = pc.if_else(alert, signatures.cast(pa.string()), None)
    levels = first_present(table, severity)
    if levels is not None:
        level = to_float(levels, 0.0, "a severity level").values.to_numpy(zero_copy_only=False)
        scaled = np.clip((4.0 - level) / 3.0, 0.0, 1.0)
        derived["severity"] = pc.if_else(alert, pa.array(scaled, type=pa.float32(), from_pandas=True), None)
    return derived
