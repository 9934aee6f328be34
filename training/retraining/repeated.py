"""A retrained challenger that repeats a registered version.

A refused challenger leaves production as it was, so the triggers that fired (new rows, drift)
fire again on the next run, which trains on the same data with the same settings and seed:
byte for byte the same weights on the CPU. Registering them again added a version that
duplicates one the registry holds (1.1.0, 1.2.0, 1.3.0 with one model.pt). As
`tune --train-best` registers no configuration it trained before
(`training.tuning.trained_best`), `retrain` registers no model it holds: `registered_twin`
finds the version with the same weights (sha256), alert threshold and transform, and
`repeated_note` says why nothing was registered and what the gate decided of it then.

The check follows training, not the recipe before it: the weights themselves show that
nothing new was learnt, whatever made them (settings inherited from the champion, the rows
it alerts on, ...), and a run whose weights differ in any bit registers them.
"""

from __future__ import annotations

from typing import Any

from training.artifacts.model_files import LoadedModel
from training.registry.metadata import ModelMetadata
from training.registry.queries import RegistryQueries

__all__ = ["registered_twin", "repeated_note"]


def registered_twin(registry: RegistryQueries, model_name: str,
                    challenger: LoadedModel) -> ModelMetadata | None:
    """The latest version of `model_name` whose weights are `challenger`'s (the same sha256),
    with its alert threshold and transform; None when there is none."""
    spec = challenger.feature_spec
    fingerprint = None if spec is None else spec.fingerprint
    same = [m for m in registry.search_models(model_name=model_name)
            if m.weights_sha256 == challenger.sidecar["sha256"]
            and m.anomaly_threshold == challenger.threshold
            and m.feature_fingerprint == fingerprint]
    return same[-1] if same else None


def repeated_note(twin: ModelMetadata, decision: dict[str, Any]) -> str:
    """Why a challenger identical to `twin` was not registered, with the gate's decision of
    `twin` when it recorded one, and this run's (`decision`)."""
    earlier = twin.details.get("decision")
    if isinstance(earlier, dict) and "reason" in earlier:
        then = (f"the gate {'deployed' if earlier.get('deploy') else 'refused'} it then: "
                f"{earlier['reason']}")
    else:
        then = "no gate decision of it is recorded"
    if isinstance(earlier, dict) and (earlier.get("reason"), bool(earlier.get("deploy"))) \
            == (decision["reason"], bool(decision["deploy"])):
        now = "decides the same"
    else:
        now = f"{'passes' if decision['deploy'] else 'refuses'} it: {decision['reason']}"
    promote = (f"; promote it with maximus-train registry promote "
               f"--model {twin.model_name} --version {twin.version} --stage production"
               if decision["deploy"] and twin.stage != "production" else "")
    return (f"not registered: the challenger's weights are byte for byte those of "
            f"{twin.model_name} {twin.version} ({twin.stage}; sha256 "
            f"{(twin.weights_sha256 or '')[:12]}, the same threshold), trained on the same data "
            f"with the same settings; {then}; this run's gate {now}{promote}. Retraining on "
            "the same splits repeats it: new data, or other settings (--epochs, --lr, "
            "--threshold, ...), train a new version")
