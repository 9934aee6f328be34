"""What a promotion or a rollback changes about alerting: a version whose threshold rule differs
from the production version it replaces alerts at another rate by construction (the trainer's
"auto", the benign 0.99-quantile, alerts ten times as often as the pipeline's
"quantile:0.999").

    note = rule_change(replaced, promoted)   # None when the rule stays, or is not recorded
    note = rule_change(replaced, restored, rollback=True)

The advice fits the action: a promoted version can be trained again with the rule it replaces;
a rollback brings back a version already trained, so the way to keep the replaced rule's rate
is a new version trained with it.
"""

from __future__ import annotations

from training.registry.metadata import ModelMetadata

__all__ = ["rule_change"]


def rule_change(replaced: ModelMetadata | None, promoted: ModelMetadata, *,
                rollback: bool = False) -> str | None:
    """In words, how putting `promoted` in production over the production version `replaced`
    changes the alert threshold's rule, with advice for a promotion or (`rollback`) for a
    rollback to `promoted`; None when it stays (or either records none)."""
    if replaced is None or replaced.version == promoted.version:
        return None
    old, new = (m.hyperparameters.get("threshold_rule") for m in (replaced, promoted))
    if not old or not new or old == new:
        return None
    if rollback:
        return (f"{promoted.model_name} {promoted.version}, back in production, sets its alert "
                f"threshold by rule {new!r}{_words(promoted)}, the production "
                f"{replaced.version} rolled back from by {old!r}{_words(replaced)}: the alert "
                f"rate goes back to what rule {new!r} gives (to keep what {old!r} gives, train a "
                f"new version with threshold rule {old!r} and promote it)")
    return (f"{promoted.model_name} {promoted.version} sets its alert threshold by rule "
            f"{new!r}{_words(promoted)}, the production {replaced.version} it replaces by "
            f"{old!r}{_words(replaced)}: the alert rate changes with the rule (train it with "
            f"threshold rule {old!r} to keep it)")


def _words(metadata: ModelMetadata) -> str:
    words = metadata.details.get("threshold_rule")
    return f" ({words})" if words else ""
