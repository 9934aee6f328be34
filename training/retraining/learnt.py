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
With `exclude_alerted` the rows the production model alerts on are left out too. The caller's
settings (`RetrainingConfig.benign_only`, `keep_unknown`; `retrain --benign-only`,
`--no-benign-only`) win over the recorded ones; with neither, every row not labeled a threat.

    settings = data_settings(champion, benign_only=None, keep_unknown=None)
    keep, data = training_rows(layer, train_units, champion, settings, exclude_alerted=False)

The triggers count and compare the rows `keep` marks, and training learns from them: one filter.
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

__all__ = ["DataSettings", "data_settings", "training_rows"]


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


def training_rows(layer: Layer, train: Any, champion: RegisteredModel | None,
                  settings: DataSettings, *, exclude_alerted: bool
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """Mask of the training units the challenger learns from, and the `data` record of the
    run: rows in all, threat and alerted rows excluded, the settings (`learnt_from` in words)
    and `triggers.training_record`'s span of the kept rows."""
    labels = layer.labels(train)
    keep = settings.mask(labels)
    data = {"train_rows_total": len(labels), "excluded_threat_rows": int((labels == 1).sum()),
            "excluded_unlabeled_rows": int(((labels < 0) & ~keep).sum()),
            "excluded_alerted_rows": 0, **settings.recorded(),
            "learnt_from": f"{settings.text} ({settings.origin})"}
    if exclude_alerted and champion is not None and champion.threshold is not None:
        scorer = layer_for_spec(champion.feature_spec)
        alerted = keep & (scorer.score(champion.model, train) >= champion.threshold)
        data["excluded_alerted_rows"] = int(alerted.sum())
        keep &= ~alerted
    data.update(triggers.training_record(unit_times(layer, train), keep))
    return keep, data
