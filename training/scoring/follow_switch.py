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

Seen events (`follow_dedup`) are the inputs', and are kept. One warning names both models
and what was reset. The state records the new model at the run's first checkpoint.
"""

from __future__ import annotations

import logging

from training.scoring.follow_state import FollowState
from training.scoring.follow_windows import held_events

logger = logging.getLogger(__name__)

# The counts that are the model's (its scores); the others count what the inputs held.
MODEL_COUNTS = ("events", "alerts", "incident_updates", "refused", "late")


def take_over(state: FollowState, model: dict[str, str], layout: str | None) -> bool:
    """Take `state` over for `model` if it holds another model's scoring (see the module
    docstring); `state.saved` is changed in memory, the next commit records it.

    Args:
        state: the follow state, before any output is opened.
        model: {"name", "version", "sha256"} of the model this run scores with.
        layout: the fingerprint of its window layout (`Layer.data_spec`), None for a model
            that scores events one by one.

    Returns:
        Whether it switched (False: a new state, or one of `model` already).
    """
    other = state.other_model(model)
    if other is None:
        return False
    began, now = other
    saved = state.saved
    saved["model"] = dict(model)
    counts = saved.get("counts", {})
    totals = [_many(counts[k], k.replace("_", " ")) for k in MODEL_COUNTS if counts.get(k)]
    saved["counts"] = {k: v for k, v in counts.items() if k not in MODEL_COUNTS}
    incidents = saved.pop("incidents", None) or {}
    said = [f"reset {began}'s totals ({', '.join(totals) or 'none'}) and its "
            f"{_many(len(incidents.get('open', [])), 'open incidents')}"]
    windows = saved.get("windows")
    if windows and windows.get("layout") == layout:
        said.append(f"kept the open windows (the same layout: {now} scores their events)")
    elif windows:
        said.append(f"dropped the {_many(_drop_windows(state), 'events')} held in open "
                    f"windows of {began}'s layout, unscored")
    logger.warning("%s: going on with %s from where %s stopped (--switch-model): %s",
                   state.folder, now, began, "; ".join(said))
    return True


def _drop_windows(state: FollowState) -> int:
    """Remove the held windows from the state and their files; returns their events."""
    windows = state.saved.pop("windows")
    outputs = state.saved.get("outputs", {})
    held = 0
    for kind in ("pending", "history"):
        path = state.folder / f"{kind}-{windows.get('generation', 0)}.arrow"
        if kind == "pending" and path.exists():
            state.output(path, private=True).close()  # cut back to what was committed
            held = held_events(path)
        outputs.pop(str(path), None)
        path.unlink(missing_ok=True)
    return held


def _many(n: int, things: str) -> str:
    return f"{n:,} {things if n != 1 else things.removesuffix('s')}"
