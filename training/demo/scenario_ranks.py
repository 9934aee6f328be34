"""Where each labeled scenario of the demo events ranks among a run's incidents.

A scenario's attacker windows are its events' entity (as incidents take it: the source
address, else the host, else the user) and hour (the incidents' default window); its rank is
the best rank among the incidents of those windows, None when no incident is there. The
demo-scenario test (`training/tests/test_run_alerts.py`) and
`benchmarks/pipeline_scenario_ranks.py` read runs through it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

HOUR_US = 3_600_000_000


def best_incident_ranks(incidents: pa.Table, events: pa.Table) -> dict[str, int | None]:
    """Each scenario (`attack_type`) of `events`: its best incident rank, by name."""
    slots = pc.divide(incidents["window_start"].cast(pa.int64()), HOUR_US).to_pylist()
    rank_of = dict(zip(zip(incidents["entity"].to_pylist(), slots),
                       incidents["rank"].to_pylist()))
    events = events.filter(pc.is_valid(events["attack_type"]))
    entity = pc.coalesce(events["source_ip"], events["host"], events["user"]).to_pylist()
    hour = pc.divide(events["timestamp"].cast(pa.int64()), HOUR_US).to_pylist()
    ranks: dict[str, list[int]] = {}
    for scenario, key in zip(events["attack_type"].to_pylist(), zip(entity, hour)):
        ranks.setdefault(scenario, [])
        if key in rank_of:
            ranks[scenario].append(rank_of[key])
    return {scenario: min(found, default=None) for scenario, found in sorted(ranks.items())}
