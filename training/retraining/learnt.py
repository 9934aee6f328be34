"""What a challenger learns from: the training rows of a retraining run, chosen as its champion
chose its own.

A challenger trained on other rows than the production model it challenges is not compared
like with like, and its triggers would judge rows it never learns from. So the rows follow the
champion's recorded data settings (`pipeline --benign-only` and `retrain` record them in the
version's hyperparameters):

* `benign_only`: the benign rows only (`is_threat` 0), plus the unlabeled ones with
  `keep_unknown`; the validation rows the threshold is set on are the same kinds;
* otherwise every row not labeled a threat, unlabeled ones counted as benign.

A threat-labeled row is never learnt from, whatever the champion did (a label-free pipeline
learns from every row): retraining must not teach a model that an attacker's traffic is normal.
The caller's settings (`RetrainingConfig.benign_only`, `keep_unknown`; `retrain --benign-only`,
`--no-benign-only`) win over the recorded ones; with neither, every row not labeled a threat.

    settings = data_settings(champion, benign_only=None, keep_unknown=None)
    selected, data = training_rows(layer, train_units, settings, exclude_alerted=True)
    # ... the triggers count and compare the `selected` rows ...
    keep, data = without_alerted(layer, train_units, champion, selected, data)

The triggers see the rows this label-based selection keeps. With `exclude_alerted`, training
then also leaves out the rows the production model alerts on (`without_alerted`), but the
triggers still see them: a stale model alerting on shifted traffic must not hide the shift from
its own triggers. The champion scores the training rows only when training will happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.evaluation.units import unit_times
from training.layers.base import Layer
from training.layers.registry import layer_for_spec
from training.registry.registry import RegisteredModel
from training.retraining import triggers

__all__ = ["DataSettings", "data_settings", "training_rows", "without_alerted"]


@dataclass(frozen=True)
class DataSettings:
    """Which labeled kinds of training rows a challenger learns from, and where that came from.

    Attributes:
        benign_only: the benign rows only (with `keep_unknown`, the unlabeled ones too).
        keep_unknown: with `benign_only`, the unlabeled rows too (False without it).
        origin: where the settings came from, in words.
    """

    benign_only: bool
    keep_unknown: bool
    origin: str

    @property
    def learns_unknown(self) -> bool:
        """Whether unlabeled rows are learnt from (and count as benign in validation)."""
        return not self.benign_only or self.keep_unknown

    def mask(self, labels: np.ndarray) -> np.ndarray:
        """Mask of the rows of these `labels` (1 threat, 0 benign, -1 unknown) learnt from."""
        labels = np.asarray(labels)
        return (labels == 0) | ((labels < 0) & self.learns_unknown)

    @property
    def text(self) -> str:
        """The rows learnt from, in words."""
        if not self.benign_only:
            return "every row not labeled a threat, unlabeled ones assumed benign"
        return "benign (is_threat 0)" + (" and unlabeled" if self.keep_unknown else "") + " rows"

    def recorded(self) -> dict[str, bool]:
        """The hyperparameters a version records, as the pipeline's: the next challenger
        reads them."""
        return {"benign_only": self.benign_only, "keep_unknown": self.keep_unknown}


def data_settings(champion: RegisteredModel | None, *, benign_only: bool | None,
                  keep_unknown: bool | None) -> DataSettings:
    """The challenger's data settings: the caller's where given (not None), else those the
    champion's hyperparameters record, else every row not labeled a threat."""
    recorded = {} if champion is None else champion.metadata.hyperparameters
    known = {name: recorded[name] for name in ("benign_only", "keep_unknown")
             if isinstance(recorded.get(name), bool)}
    only = benign_only if benign_only is not None else known.get("benign_only", False)
    unknown = keep_unknown if keep_unknown is not None else known.get("keep_unknown", False)
    given = [name for name, value in (("benign_only", benign_only),
                                      ("keep_unknown", keep_unknown)) if value is not None]
    if champion is None:
        origin = "no production model to follow"
    else:
        name = f"the production {champion.metadata.model_name} {champion.metadata.version}"
        origin = name if known else f"{name} records none: the default"
    if given:
        origin = f"{', '.join(given)} as given; the rest from {origin}" \
            if len(given) < 2 else "as given"
    return DataSettings(bool(only), bool(only and unknown), origin)


def training_rows(layer: Layer, train: Any, settings: DataSettings, *, exclude_alerted: bool
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """Mask of the training units `settings` select by their labels (what the triggers count
    and compare), and the `data` record of the run: rows in all, threat and unlabeled rows
    excluded, the settings (`learnt_from` in words) and `triggers.training_record`'s span of
    the selected rows. `excluded_alerted_rows` is None with `exclude_alerted` (not counted
    until `without_alerted` scores them), else 0."""
    labels = layer.labels(train)
    keep = settings.mask(labels)
    data = {"train_rows_total": len(labels), "excluded_threat_rows": int((labels == 1).sum()),
            "excluded_unlabeled_rows": int(((labels < 0) & ~keep).sum()),
            "excluded_alerted_rows": None if exclude_alerted else 0, **settings.recorded(),
            "learnt_from": f"{settings.text} ({settings.origin})"}
    data.update(triggers.training_record(unit_times(layer, train), keep,
                                         layer.unit_features(train)))
    return keep, data


def without_alerted(layer: Layer, train: Any, champion: RegisteredModel | None,
                    selected: np.ndarray, data: dict[str, Any]
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """The `selected` training units less those the production model alerts on (its score at
    or above its threshold; none without a champion or threshold), and `data` with their count
    (`excluded_alerted_rows`) and the span of the rows left. Scores every training unit with
    the champion: call it only when training will happen."""
    keep = selected.copy()
    alerted = np.zeros(len(keep), bool)
    if champion is not None and champion.threshold is not None:
        scorer = layer_for_spec(champion.feature_spec)
        alerted = keep & (scorer.score(champion.model, train) >= champion.threshold)
        keep &= ~alerted
    data = {**data, "excluded_alerted_rows": int(alerted.sum()),
            **triggers.training_record(unit_times(layer, train), keep,
                                       layer.unit_features(train))}
    return keep, data
