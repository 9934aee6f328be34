"""What a promotion changes about alerting: a version whose threshold rule differs from the
production version it replaces alerts at another rate by construction (the trainer's "auto",
the benign 0.99-quantile, alerts ten times as often as the pipeline's "quantile:0.999").

    note = rule_change(replaced, promoted)   # None when the rule stays, or is not recorded
"""

from __future__ import annotations

from training.registry.metadata import ModelMetadata

__all__ = ["rule_change"]


def rule_change(replaced: ModelMetadata | None, promoted: ModelMetadata) -> str | None:
    """In words, how promoting `promoted` over the production version `replaced` changes
    the alert threshold's rule; None when it stays (or either records none)."""
    if replaced is None or replaced.version == promoted.version:
        return None
    old, new = (m.hyperparameters.get("threshold_rule") for m in (replaced, promoted))
    if not old or not new or old == new:
        return None
    return (f"{promoted.model_name} {promoted.version} sets its alert threshold by rule "
            f"{new!r}{_words(promoted)}, the production {replaced.version} it replaces by "
            f"{old!r}{_words(replaced)}: the alert rate changes with the rule (train it with "
            f"threshold rule {old!r} to keep it)")


def _words(metadata: ModelMetadata) -> str:
    words = metadata.details.get("threshold_rule")
    return f" ({words})" if words else ""
