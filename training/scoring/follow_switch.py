"""`score --follow/--once --switch-model`: a state goes on with another model where it stopped.

    switched = take_over(state, {"name": "vae", "version": "1.2.0", "sha256": ...}, layout)

A follow state belongs to the model it began with (`FollowState.check_model`). After a
promotion the next run scores with the new production version; asked to switch, it takes
the state over from its read positions: no event is read again and none is left out, and
the outputs go on growing (the old model's lines stay in them). What belongs to the old
model starts again:

* its totals (events scored, alerts, incident updates, alerts the cluster refused, late
  events); the counts of the inputs themselves (quarantined records, sensor records,
  duplicates) go on, as the quarantine file does;
* its open incidents: they hold its scores and alerts (their last updates stay in the
  incidents file; the new model's incidents have ids of their own, `live_incidents`);
* the held windows of a window layer, when the new model builds units of another layout
  (window, entity or history), or scores events one by one: their events, read but not yet
  scored, are dropped and counted in the warning. With the same layout they are kept: they
  hold events and the aggregates of closed buckets, which the layout alone determines, and
  the new model scores them when their windows close.

Seen events (`follow_dedup`) are the inputs', and are kept. The state records the new model
at the run's first checkpoint; only then do the dropped windows' files go and one warning name
both models and what was reset, so a run that fails before it (a bad output path, Ctrl-C)
leaves the state as it was, held events included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from training.scoring.follow_state import FollowState
from training.scoring.follow_windows import held_events

logger = logging.getLogger(__name__)

# The counts that are the model's (its scores); the others count what the inputs held.
MODEL_COUNTS = ("events", "alerts", "incident_updates", "refused", "late")


@dataclass
class Switch:
    """A take-over decided in memory; `done` once the state file records it."""

    message: str
    obsolete: list[Path]  # the dropped windows' files

    def done(self) -> None:
        for path in self.obsolete:
            path.unlink(missing_ok=True)
        logger.warning("%s", self.message)


def take_over(state: FollowState, model: dict[str, str], layout: str | None) -> Switch | None:
    """Take `state` over for `model` if it holds another model's scoring (see the module
    docstring); `state.saved` is changed in memory, the next commit records it, and then the
    returned switch is `done`.

    Args:
        state: the follow state, before any output is opened.
        model: {"name", "version", "sha256"} of the model this run scores with.
        layout: the fingerprint of its window layout (`Layer.data_spec`), None for a model
            that scores events one by one.

    Returns:
        The switch, or None for a new state or one of `model` already.
    """
    other = state.other_model(model)
    if other is None:
        return None
    began, now = other
    saved = state.saved
    saved["model"] = dict(model)
    counts = saved.get("counts", {})
    totals = [_many(counts[k], k.replace("_", " ")) for k in MODEL_COUNTS if counts.get(k)]
    saved["counts"] = {k: v for k, v in counts.items() if k not in MODEL_COUNTS}
    incidents = saved.pop("incidents", None) or {}
    said = [f"reset {began}'s totals ({', '.join(totals) or 'none'}) and its "
            f"{_many(len(incidents.get('open', [])), 'open incidents')}"]
    windows, obsolete = saved.get("windows"), []
    if windows and windows.get("layout") == layout:
        said.append(f"kept the open windows (the same layout: {now} scores their events)")
    elif windows:
        held, obsolete = _drop_windows(state)
        said.append(f"dropped the {_many(held, 'events')} held in open windows of {began}'s "
                    "layout, unscored")
    return Switch(f"{state.folder}: going on with {now} from where {began} stopped "
                  f"(--switch-model): {'; '.join(said)}", obsolete)


def _drop_windows(state: FollowState) -> tuple[int, list[Path]]:
    """Remove the held windows from the state (in memory); their events, and their files."""
    windows = state.saved.pop("windows")
    outputs = state.saved.get("outputs", {})
    files = [state.folder / f"{kind}-{windows.get('generation', 0)}.arrow"
             for kind in ("pending", "history")]
    held = held_events(files[0], outputs.get(str(files[0]))) if files[0].exists() else 0
    for path in files:
        outputs.pop(str(path), None)
    return held, files


def _many(n: int, things: str) -> str:
    return f"{n:,} {things if n != 1 else things.removesuffix('s')}"
