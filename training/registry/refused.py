"""A version its gate refused going into production: `retrain` and the pipeline record their
gate's decision with every version they register (`details["decision"]`); promoting one they
did not deploy, or rolling back to one, still happens (a person asked for it), with a warning
quoting it.

    note = gate_refusal(promoted, "promoting it to production")   # None when no gate refused it
"""

from __future__ import annotations

from training.registry.metadata import ModelMetadata

__all__ = ["gate_refusal"]


def gate_refusal(promoted: ModelMetadata, action: str = "promoting it to production"
                 ) -> str | None:
    """In one line, the gate's recorded refusal of `promoted`, saying it goes into production
    anyway by `action` (in words); None when it records no decision, or one that deployed
    it."""
    decision = promoted.details.get("decision")
    if not isinstance(decision, dict) or decision.get("deploy") is not False:
        return None
    reason = " ".join(str(decision.get("reason") or "no reason recorded").split())
    return (f"{promoted.model_name} {promoted.version} was not deployed by the gate that "
            f"judged it when it was registered: \"{reason}\"; {action} anyway, as asked")
