"""One fused score per event: the layers' tail probabilities, combined by one fixed rule.

    p = np.column_stack([event_tail_probabilities(ids, layer.unit_columns(units)["event_ids"],
                                                  calibration.tail_probability(scores))
                         for layer, units, scores, calibration in layers])   # (events, layers)
    fused = fused_scores(p, rule="min-p+fisher")                             # (events,)

Each layer's score becomes a tail probability against its own benign validation scores (the
model's `Calibration`: a conformal p-value, with an exponential tail past the largest
validation score where enough scores carry one; never 0). An event's p-value in a layer is the
smallest over the units it belongs to (its own vector, the edge it is part of, its hosts'
windows: the largest score, as the harness's flow level takes); NaN where no unit of that layer
covers it (a layer-3 window needs its entity's history).

The combination is the same for every capture, with no weight fitted to anything:

| rule | combined p of the k layers that cover the event |
|---|---|
| `min-p+fisher` (default) | `min-p`, with Fisher's p breaking its ties |
| `min-p` | min(1, k min p_i): the smallest p-value with a Bonferroni factor |
| `fisher` | P(chi2 with 2k degrees of freedom >= -2 sum log p_i): evidence adds up across layers |

The default was chosen on the detection harness's development captures only (BENCHMARKS.md):
Fisher's sum lets one layer that ranks threats as very normal drag every event down (IoT-23
42-1: flow ROC-AUC 0.83 with Fisher, 0.97 with min-p), while min-p follows the layer that sees
the event best. But min-p ties every event whose smallest p comes from one edge or window: on
44-1 a window's 17 flows, 12 of them threats, tie with its 5 benign ones, which the flows' own
layer-1 p tells apart. `min-p+fisher` orders such ties by Fisher's combination of all the
layers (44-1 flow PR-AUC 0.69 -> 0.83, 42-1 0.043 -> 0.050, the demo events the same).

The fused score is -log10 of the combined p (higher = more anomalous; 0 for an event no layer
covers); `min-p+fisher` adds `TIE_BREAK` F / (1 + F), F being Fisher's score: never more than
`TIE_BREAK`, so it only orders events whose min-p scores are within 1e-4 decades (their p
within 0.02%), and still resolved in a float32 score up to 100 (the output column). The layers see the same events, so their p-values are not independent and the
combined p is not itself a calibrated probability: the fused score gets a calibration of its
own on validation events, as every layer's score does, and its threshold comes from that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import gammaln, logsumexp

from training.errors import ConfigError, SchemaError
from training.evaluation.calibration import Calibration
from training.features.encoding import text_array

FORMAT = "maximus.fusion.v1"
RULES = ("min-p+fisher", "min-p", "fisher")
DEFAULT_RULE = "min-p+fisher"
TIE_BREAK = 1e-4  # the most Fisher's score adds to min-p's in `min-p+fisher`
FUSED_NAME = "fused"  # what the fused detector is called in reports and on the command line


def check_rule(rule: str) -> str:
    """`rule` if it is one of `RULES`.

    Raises:
        ConfigError: another rule; the message lists them.
    """
    if rule not in RULES:
        raise ConfigError(f"fusion rule must be one of {', '.join(RULES)}, got {rule!r}")
    return rule


def fused_scores(p: np.ndarray, rule: str = DEFAULT_RULE) -> np.ndarray:
    """-log10 of the combined tail probability of each event (module docstring).

    Shapes:
        p: (events, layers) in (0, 1], NaN where the layer does not cover the event
        -> (events,) float64, >= 0.
    """
    check_rule(rule)
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    covered = ~np.isnan(p)
    k = covered.sum(axis=1)
    # The calibrations never give 0; the clip keeps hand-made inputs finite as well.
    logs = np.where(covered, np.log(np.clip(np.where(covered, p, 1.0), 1e-300, 1.0)), 0.0)
    fisher = np.where(k > 0, _log_chi2_sf_even(-logs.sum(axis=1), k), 0.0)
    fisher = np.maximum(0.0, -fisher / math.log(10.0))
    if rule == "fisher":
        return fisher + 0.0  # + 0.0: no -0.0 in the output
    log_p = np.minimum(0.0, np.log(np.maximum(k, 1)) + logs.min(axis=1, initial=0.0))
    min_p = np.maximum(0.0, -log_p / math.log(10.0))
    if rule == "min-p+fisher":
        min_p += TIE_BREAK * fisher / (1.0 + fisher)
    return min_p + 0.0


def _log_chi2_sf_even(h: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log P(chi2 with 2k degrees of freedom >= 2h), exactly: the survival function of an even
    degree is exp(-h) sum_{j<k} h^j / j!, summed in logs so that it stays finite (and keeps its
    order) where the probability itself underflows."""
    h = np.maximum(np.asarray(h, dtype=np.float64), 1e-300)
    j = np.arange(max(int(np.max(k, initial=1)), 1))
    terms = j * np.log(h)[:, None] - gammaln(j + 1.0)  # (events, max k)
    terms = np.where(j < np.asarray(k)[:, None], terms, -np.inf)
    return -h + logsumexp(terms, axis=1)


def event_tail_probabilities(event_ids: Any, unit_event_ids: pa.Array | pa.ChunkedArray,
                             unit_p: np.ndarray) -> np.ndarray:
    """Each event's smallest tail probability over the units it belongs to.

    Args:
        event_ids: the events' ids, (events,).
        unit_event_ids: list<string> per unit: the events that formed it (`Layer.unit_columns`).
        unit_p: (units,) each unit's tail probability.

    Returns:
        (events,) float64; NaN for events no unit covers. Units' events that are not among
        `event_ids` are ignored (another part of the data).

    Raises:
        SchemaError: as many tail probabilities as units are needed.
    """
    return event_tail_units(event_ids, unit_event_ids, unit_p)[0]


def event_tail_units(event_ids: Any, unit_event_ids: pa.Array | pa.ChunkedArray,
                     unit_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As `event_tail_probabilities`, and which unit gives each event its tail probability
    (the one whose reasons explain the event's evidence in that layer).

    Returns:
        (events,) float64 tail probabilities (NaN where no unit covers the event) and
        (events,) int64 the row of the unit that has it, the first such unit on a tie
        (-1 where none covers it).

    Raises:
        SchemaError: as many tail probabilities as units are needed.
    """
    lists = (unit_event_ids.combine_chunks() if isinstance(unit_event_ids, pa.ChunkedArray)
             else unit_event_ids)
    unit_p = np.asarray(unit_p, dtype=np.float64).reshape(-1)
    if len(lists) != len(unit_p):
        raise SchemaError(f"{len(unit_p)} tail probabilities for {len(lists)} units")
    ids = text_array(np.asarray(event_ids).astype(str))
    rows = pc.index_in(lists.flatten().cast(pa.string()), value_set=ids)
    rows = rows.to_numpy(zero_copy_only=False)
    owner = np.asarray(lists.value_parent_indices(), dtype=np.int64)
    keep = ~np.isnan(rows.astype(np.float64))
    rows, owner = rows[keep].astype(np.int64), owner[keep]
    # Per event, its units by p, then by row: the first of each event's run is its smallest.
    order = np.lexsort((owner, unit_p[owner], rows))
    rows, owner = rows[order], owner[order]
    first = np.ones(len(rows), bool)
    first[1:] = rows[1:] != rows[:-1]
    p, unit = np.full(len(ids), np.nan), np.full(len(ids), -1, np.int64)
    p[rows[first]], unit[rows[first]] = unit_p[owner[first]], owner[first]
    return p, unit


@dataclass(frozen=True)
class Fusion:
    """The fused detector: which layer models it combines, by which rule, and the calibration
    of its score on validation events (threshold, tail probability, percentile).

    Attributes:
        rule: one of `RULES`.
        models: per layer, in order: {"layer", "model_name", "version"}.
        calibration: the fused score's benign validation distribution and threshold.
    """

    rule: str
    models: tuple[dict[str, str], ...]
    calibration: Calibration

    def __post_init__(self) -> None:
        check_rule(self.rule)
        if not self.models:
            raise ConfigError("a fusion needs at least one layer model, got none")

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "rule": self.rule, "models": [dict(m) for m in self.models],
                "calibration": self.calibration.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "the fusion") -> Fusion:
        """Read `to_dict` output back.

        Raises:
            SchemaError: another format or a missing field.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise SchemaError(f"{where}: format {found!r}, expected {FORMAT!r}")
        missing = [k for k in ("rule", "models", "calibration") if k not in data]
        if missing:
            raise SchemaError(f"{where}: missing {', '.join(missing)}")
        models = tuple({k: str(m[k]) for k in ("layer", "model_name", "version")}
                       for m in data["models"])
        return cls(data["rule"], models,
                   Calibration.from_dict(data["calibration"], f"{where}'s calibration"))
