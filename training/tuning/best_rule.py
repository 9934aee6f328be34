"""Which alert threshold rule a tuned model gets (`tune --train-best`): the rule asked for,
else the one the production model of its registry records, else the pipeline's.

A tuned model that replaces a pipeline model must not alert ten times as often by
construction: the trainer's own default ("auto": the benign 0.99-quantile) is not the
pipeline's ("quantile:0.999"), so `--train-best` never falls back to it.

    rule, origin = best_threshold_rule(registry_dir, "layer1_vae", given=None)
    # ("quantile:0.999", "the production layer1_vae 1.0.0")
"""

from __future__ import annotations

from pathlib import Path

from training.errors import NotFoundError
from training.evaluation.threshold_rules import PIPELINE_RULE, parse_rule
from training.registry.registry import ModelRegistry

__all__ = ["best_threshold_rule"]


def best_threshold_rule(registry_dir: str | Path | None, model_name: str,
                        given: str | None) -> tuple[str, str]:
    """(rule, where it comes from, in words) for the tuned `model_name`.

    Args:
        registry_dir: the registry the tuned model goes to (None: the default one).
        given: the rule asked for (`--threshold`), or None.

    Raises:
        ConfigError: `given` is not a threshold rule.
    """
    if given is not None:
        return str(parse_rule(given)), "--threshold"
    try:  # no registry yet, or no production model in it: nothing to follow
        production = ModelRegistry(registry_dir, create=False).get_metadata(
            model_name, stage="production")
    except NotFoundError:
        production = None
    recorded = None if production is None else production.hyperparameters.get("threshold_rule")
    if recorded:
        return str(parse_rule(recorded)), f"the production {model_name} {production.version}"
    return PIPELINE_RULE, "the pipeline's default (no production model to follow)"
