"""A promotion to production of a version its gate refused: `retrain` and the pipeline record
their gate's decision with every version they register (`details["decision"]`); promoting one
they did not deploy still happens (a person asked for it), with a warning quoting it.

    note = gate_refusal(promoted)   # None when no gate refused it
"""

from __future__ import annotations

from training.registry.metadata import ModelMetadata

__all__ = ["gate_refusal"]


def gate_refusal(promoted: ModelMetadata) -> str | None:
    """In one line, the gate's recorded refusal of `promoted`; None when it records no
    decision, or one that deployed it."""
    decision = promoted.details.get("decision")
    if not isinstance(decision, dict) or decision.get("deploy") is not False:
        return None
    reason = " ".join(str(decision.get("reason") or "no reason recorded").split())
    return (f"{promoted.model_name} {promoted.version} was not deployed by the gate that "
            f"judged it when it was registered: \"{reason}\"; promoting it to production "
            "anyway, as asked")
